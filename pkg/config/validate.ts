/**
 * Upstream's KubeProxyConfiguration validation (pkg/proxy/apis/config/validation), applied to a
 * fully assembled draft whatever its source. Issues name the field by its KubeProxyConfiguration
 * path (`iptables.masqueradeBit`); resolve.ts renames them to the flag when the value came from
 * the command line.
 *
 * One deliberate difference: an empty metricsBindAddress passes (it disables the metrics server,
 * as the flag's help says); upstream's validation rejects it although its help offers it.
 */
import { parseCIDR } from '../net/ip.ts';
import { isIPText as isIP, splitHostPort } from './address.ts';
import {
  DETECT_LOCAL_MODES,
  IPTABLES_BACKENDS,
  LOGGING_FORMATS,
  NODE_PORT_ADDRESSES_PRIMARY,
} from './config.ts';
import type { ConfigDraft } from './draft.ts';

export interface ValidationIssue {
  /** KubeProxyConfiguration dotted path, or a `--flag` for command-line-only settings. */
  readonly path: string;
  readonly reason: string;
}

const cidrOf = (s: string) => (s.trim() === s ? parseCIDR(s) : undefined);

function hostPortIssue(value: string): string | undefined {
  const hp = splitHostPort(value);
  if (!hp) return `"${value}" must be IP:port`;
  if (!isIP(hp.host)) return `"${hp.host}" must be a valid IP`;
  if (!/^[0-9]+$/.test(hp.port) || Number(hp.port) < 1 || Number(hp.port) > 65535) {
    return `"${hp.port}" must be a valid port (1-65535)`;
  }
  return undefined;
}

function clusterCIDRIssues(cidrs: readonly string[]): ValidationIssue[] {
  const path = 'clusterCIDR';
  if (cidrs.length > 2) {
    return [
      { path, reason: 'must be a single CIDR or a dual-stack pair (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)' },
    ];
  }
  const issues: ValidationIssue[] = [];
  const parsed = cidrs.map((c) => {
    const p = cidrOf(c);
    if (!p)
      issues.push({ path, reason: `"${c}" is not a valid CIDR (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)` });
    return p;
  });
  const [a, b] = parsed;
  if (a && b && a.family === b.family) {
    issues.push({
      path,
      reason: `at most one CIDR per IP family (got two ${a.family} CIDRs: ${cidrs.join(',')})`,
    });
  }
  return issues;
}

function nodePortAddressIssues(list: readonly string[]): ValidationIssue[] {
  const path = 'nodePortAddresses';
  const issues: ValidationIssue[] = [];
  for (const entry of list) {
    if (entry === NODE_PORT_ADDRESSES_PRIMARY) {
      if (list.length !== 1)
        issues.push({ path, reason: `can't use both '${NODE_PORT_ADDRESSES_PRIMARY}' and CIDRs` });
      continue;
    }
    if (!cidrOf(entry))
      issues.push({ path, reason: `"${entry}" must be a valid CIDR or '${NODE_PORT_ADDRESSES_PRIMARY}'` });
  }
  return issues;
}

/** All problems of `d`, in a stable order; empty when the configuration is valid. */
export function validateDraft(d: ConfigDraft): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const check = (bad: boolean, path: string, reason: string) => {
    if (bad) issues.push({ path, reason });
  };

  if (d.mode !== '' && d.mode !== 'iptables') {
    issues.push({ path: 'mode', reason: `"${d.mode}" is not a proxy mode; must be "iptables" or blank` });
  }

  const ipt = d.iptables;
  check(
    ipt.masqueradeBit < 0 || ipt.masqueradeBit > 31,
    'iptables.masqueradeBit',
    'must be between 0 and 31',
  );
  check(!(ipt.syncPeriodMs > 0), 'iptables.syncPeriod', 'must be greater than 0');
  check(!(ipt.minSyncPeriodMs >= 0), 'iptables.minSyncPeriod', 'must be greater than or equal to 0');
  check(
    ipt.minSyncPeriodMs > ipt.syncPeriodMs && ipt.syncPeriodMs > 0,
    'iptables.syncPeriod',
    'must be greater than or equal to iptables.minSyncPeriod',
  );

  const ct = d.conntrack;
  check(ct.maxPerCore < 0, 'conntrack.maxPerCore', 'must be greater than or equal to 0');
  check(ct.min < 0, 'conntrack.min', 'must be greater than or equal to 0');
  check(
    ct.tcpEstablishedTimeoutMs < 0,
    'conntrack.tcpEstablishedTimeout',
    'must be greater than or equal to 0',
  );
  check(ct.tcpCloseWaitTimeoutMs < 0, 'conntrack.tcpCloseWaitTimeout', 'must be greater than or equal to 0');
  check(ct.udpTimeoutMs < 0, 'conntrack.udpTimeout', 'must be greater than or equal to 0');
  check(ct.udpStreamTimeoutMs < 0, 'conntrack.udpStreamTimeout', 'must be greater than or equal to 0');

  check(d.oomScoreAdj < -1000 || d.oomScoreAdj > 1000, 'oomScoreAdj', 'must be between -1000 and 1000');
  check(!(d.configSyncPeriodMs > 0), 'configSyncPeriod', 'must be greater than 0');
  check(d.clientConnection.burst < 0, 'clientConnection.burst', 'must be greater than or equal to 0');

  check(!isIP(d.bindAddress), 'bindAddress', `"${d.bindAddress}" is not a valid IP address`);
  for (const [path, value] of [
    ['healthzBindAddress', d.healthzBindAddress],
    ['metricsBindAddress', d.metricsBindAddress],
  ] as const) {
    const reason = value ? hostPortIssue(value) : undefined;
    if (reason) issues.push({ path, reason });
  }

  issues.push(...nodePortAddressIssues(d.nodePortAddresses));

  const mode = d.detectLocalMode;
  if (mode !== '' && !(DETECT_LOCAL_MODES as readonly string[]).includes(mode)) {
    issues.push({
      path: 'detectLocalMode',
      reason: `unsupported value "${mode}": supported values are ${DETECT_LOCAL_MODES.map((m) => `"${m}"`).join(', ')}`,
    });
  }
  // Each interface mode needs its companion setting; the CIDRs only matter in ClusterCIDR mode,
  // and only then are they checked (upstream validateDetectLocalConfiguration).
  check(
    mode === 'BridgeInterface' && d.bridgeInterface === '',
    'detectLocal.bridgeInterface',
    'must not be empty when the detect-local mode is BridgeInterface',
  );
  check(
    mode === 'InterfaceNamePrefix' && d.interfaceNamePrefix === '',
    'detectLocal.interfaceNamePrefix',
    'must not be empty when the detect-local mode is InterfaceNamePrefix',
  );
  if ((mode === 'ClusterCIDR' || mode === '') && d.clusterCIDRs.length > 0) {
    issues.push(...clusterCIDRIssues(d.clusterCIDRs));
  }

  check(
    !(LOGGING_FORMATS as readonly string[]).includes(d.loggingFormat),
    'logging.format',
    `unsupported value "${d.loggingFormat}": must be "json" or "text"`,
  );
  check(!(d.verbosity >= 0), 'logging.verbosity', 'must be greater than or equal to 0');
  check(
    !(IPTABLES_BACKENDS as readonly string[]).includes(d.iptablesBackend),
    '--iptables-backend',
    `must be one of ${IPTABLES_BACKENDS.join(', ')}`,
  );
  return issues;
}
