/**
 * The one entry point: argv (and optionally a config file) in, a validated ProxyConfig out.
 *
 * Precedence, as upstream's Options.Complete (cmd/kube-proxy/app/options.go):
 * 1. Without --config, flags apply over the defaults.
 * 2. With --config, the file replaces every setting that has a file field; flags for those are
 *    ignored (and reported, so the daemon can warn). What still applies from the command line:
 *    the settings the file has no place for (--config, --write-config-to, --cleanup,
 *    --init-only, --master and our own flags), the logging flags (-v, --logging-format; upstream's
 *    copyLogsFromFlags), and a non-empty --hostname-override (processHostnameOverrideFlag).
 * 3. Defaults that depend on other values (healthz/metrics addresses on the bindAddress family,
 *    the Linux platform defaults for mode and detect-local mode) are filled in, then everything is
 *    validated at once and the node name is resolved.
 */

import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { parseIP } from '../net/ip.ts';
import { appendPortIfNeeded } from './address.ts';
import type { DetectLocalMode, IptablesBackend, LoggingFormat, ProxyConfig } from './config.ts';
import type { ConfigDraft } from './draft.ts';
import { defaultDraft } from './draft.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';
import { parseConfigFile } from './file.ts';
import { applyFlags, FLAGS, type FlagSpec, flagForConfigPath, helpText, parseArgs } from './flags.ts';
import { validateDraft } from './validate.ts';

/** What resolveConfig needs from the machine; tests replace both. */
export interface ResolveEnv {
  /** The system hostname (default: os.hostname()). */
  readonly hostname?: () => string;
  /** Reads the --config file as UTF-8 (default: fs.readFileSync). */
  readonly readFile?: (path: string) => string;
}

export interface ResolvedConfig {
  readonly config: ProxyConfig;
  /** One line each, for the daemon to log at warning level. */
  readonly warnings: readonly string[];
  /** Flags given on the command line whose values the --config file replaced (`--name`). */
  readonly overriddenFlags: readonly string[];
}

export type ResolveResult = ResolvedConfig | { readonly help: string };

/** Modes upstream has that kube-proxy-ts deliberately does not implement. */
const UNSUPPORTED_MODES = ['ipvs', 'nftables', 'kernelspace'];

const flagsByName = new Map(FLAGS.map((f) => [f.name, f]));

/**
 * Resolves argv (without node and script paths) into the configuration.
 * @returns `{ help }` when -h/--help was given, else the configuration and warnings
 * @throws ConfigError 'invalid-flag' | 'invalid-config' | 'unreadable-config' | 'unsupported-mode'
 */
export function resolveConfig(argv: readonly string[], env: ResolveEnv = {}): ResolveResult {
  const args = parseArgs(argv);
  if (args.help) return { help: helpText() };
  const changed = [...args.changed].map((n) => flagsByName.get(n)!);

  // All flags over the defaults: this is the whole story without --config, and tells us --config.
  const fromFlags = defaultDraft();
  applyFlags(fromFlags, args.assignments);

  const warnings: string[] = [];
  let draft: ConfigDraft;
  let overriddenFlags: string[] = [];
  /** Flags whose values are in the result, to name them (not the file field) in errors. */
  let effectiveFlags: FlagSpec[];
  if (fromFlags.configFile === '') {
    draft = fromFlags;
    effectiveFlags = changed;
  } else {
    const file = parseConfigFile(readConfig(fromFlags.configFile, env));
    draft = file.draft;
    warnings.push(...file.warnings.map((w) => `config file ${fromFlags.configFile}: ${w}`));
    applyFlags(draft, args.assignments, (spec) => spec.scope !== 'config');
    effectiveFlags = changed.filter((f) => f.scope !== 'config');
    overriddenFlags = changed.filter((f) => f.scope === 'config').map((f) => `--${f.name}`);
    if (overriddenFlags.length > 0) {
      warnings.push(
        `flags ignored because --config is given (the config file's values apply): ${overriddenFlags.join(', ')}`,
      );
    }
  }
  for (const f of changed) if (f.deprecated !== undefined) warnings.push(f.deprecated);
  const ignoredGiven = effectiveFlags.filter((f) => f.support === 'ignored');
  if (ignoredGiven.length > 0) {
    warnings.push(
      `flags accepted for compatibility but without effect in kube-proxy-ts: ${ignoredGiven.map((f) => `--${f.name}`).join(', ')}`,
    );
  }

  const fieldName = (path: string): string => {
    const flag = flagForConfigPath(path);
    if (!flag) return path;
    return effectiveFlags.includes(flag) || fromFlags.configFile === '' ? `--${flag.name}` : path;
  };

  if (UNSUPPORTED_MODES.includes(draft.mode)) {
    throw ConfigError.of(
      'unsupported-mode',
      fieldName('mode'),
      `proxy mode "${draft.mode}" is not supported: kube-proxy-ts implements iptables mode only`,
    );
  }

  fillDependentDefaults(draft);

  const issues = validateDraft(draft);
  if (issues.length > 0) {
    const named: ConfigIssue[] = issues.map((i) => ({ field: fieldName(i.path), reason: i.reason }));
    const allFlags = named.every((i) => i.field.startsWith('--'));
    throw new ConfigError(allFlags ? 'invalid-flag' : 'invalid-config', named);
  }

  const node = resolveNodeName(draft.hostnameOverride, env, fieldName('hostnameOverride'));
  return { config: toProxyConfig(draft, node), warnings, overriddenFlags };
}

function readConfig(path: string, env: ResolveEnv): string {
  try {
    return env.readFile ? env.readFile(path) : readFileSync(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw ConfigError.of('unreadable-config', '--config', `cannot read ${path}: ${reason}`);
  }
}

/** IPv4 (or IPv4-mapped IPv6) bind address → IPv4 defaults; anything else → IPv6, as upstream. */
function isIPv4Bind(bindAddress: string): boolean {
  const ip = parseIP(bindAddress);
  if (!ip) return false;
  if (ip.family === 'IPv4') return true;
  return ip.bytes.slice(0, 10).every((b) => b === 0) && ip.bytes[10] === 0xff && ip.bytes[11] === 0xff;
}

/**
 * Upstream's getDefaultAddresses and AppendPortIfNeeded, plus the Linux platform defaults
 * (platformApplyDefaults). The deprecated --healthz-port / --metrics-port (only applied without a
 * config file, as upstream): 0 disables the server, another port applies where no port was given
 * (upstream only appends it to a bare IP).
 */
function fillDependentDefaults(d: ConfigDraft): void {
  const v4 = isIPv4Bind(d.bindAddress);
  const address = (given: string | undefined, defaultHost: string, port: number): string => {
    if (given === '' || port === 0) return '';
    return appendPortIfNeeded(given ?? defaultHost, port);
  };
  d.healthzBindAddress = address(d.healthzBindAddress, v4 ? '0.0.0.0' : '::', d.healthzPort);
  d.metricsBindAddress = address(d.metricsBindAddress, v4 ? '127.0.0.1' : '::1', d.metricsPort);
  if (d.mode === '') d.mode = 'iptables';
  if (d.detectLocalMode === '') d.detectLocalMode = 'ClusterCIDR';
}

/**
 * The node name: a given override (flag or file) trimmed and lower-cased, else the hostname
 * likewise (upstream processHostnameOverrideFlag and nodeutil.GetHostname). Empty is an error.
 */
function resolveNodeName(
  override: string,
  env: ResolveEnv,
  field: string,
): { name: string; overridden: boolean } {
  if (override.length > 0) {
    const name = override.trim().toLowerCase();
    if (name === '') throw ConfigError.of('invalid-config', field, 'must not be empty or blank');
    return { name, overridden: true };
  }
  const name = (env.hostname ?? osHostname)().trim().toLowerCase();
  if (name === '') {
    throw ConfigError.of(
      'invalid-config',
      'hostname',
      'the system hostname is empty; set --hostname-override',
    );
  }
  return { name, overridden: false };
}

/** The validated draft as the final, read-only configuration. */
function toProxyConfig(d: ConfigDraft, node: { name: string; overridden: boolean }): ProxyConfig {
  const orUndefined = (s: string) => (s === '' ? undefined : s);
  return {
    kubeconfig: orUndefined(d.kubeconfig),
    master: orUndefined(d.master),
    configFile: orUndefined(d.configFile),
    writeConfigTo: orUndefined(d.writeConfigTo),
    cleanup: d.cleanup,
    initOnly: d.initOnly,
    hostnameOverride: node.name,
    hostnameOverridden: node.overridden,
    bindAddress: d.bindAddress,
    healthzBindAddress: d.healthzBindAddress ?? '',
    metricsBindAddress: d.metricsBindAddress ?? '',
    bindAddressHardFail: d.bindAddressHardFail,
    proxyMode: 'iptables',
    iptables: { ...d.iptables },
    // validateDraft has checked the literal unions below.
    detectLocalMode: d.detectLocalMode as DetectLocalMode,
    clusterCIDRs: [...d.clusterCIDRs],
    bridgeInterface: d.bridgeInterface,
    interfaceNamePrefix: d.interfaceNamePrefix,
    nodePortAddresses: [...d.nodePortAddresses],
    conntrack: { ...d.conntrack },
    configSyncPeriodMs: d.configSyncPeriodMs,
    oomScoreAdj: d.oomScoreAdj,
    featureGates: { ...d.featureGates },
    clientConnection: { ...d.clientConnection },
    enableProfiling: d.enableProfiling,
    showHiddenMetricsForVersion: d.showHiddenMetricsForVersion,
    verbosity: d.verbosity,
    loggingFormat: d.loggingFormat as LoggingFormat,
    iptablesBackend: d.iptablesBackend as IptablesBackend,
    debugDisableConntrackCleanup: d.debugDisableConntrackCleanup,
  };
}
