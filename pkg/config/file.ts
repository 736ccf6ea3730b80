/**
 * The --config file: a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) in YAML or JSON,
 * read with the client library's loadYaml, checked with zod, defaulted as upstream's
 * SetDefaults_KubeProxyConfiguration does, and written back by serializeConfig for
 * --write-config-to.
 *
 * Unknown fields, as upstream: kube-proxy decodes strictly first and, when only the strictness
 * fails, decodes again leniently and logs "Using lenient decoding as strict decoding failed"
 * (cmd/kube-proxy/app/options.go loadConfig). So an unknown field is a warning naming it, while a
 * wrong type is an error.
 *
 * Zero values mean "default", as in Go: `syncPeriod: 0s` becomes 30s and `minSyncPeriod: 0s`
 * becomes 1s, an empty healthzBindAddress or metricsBindAddress becomes the default address
 * (so a file cannot disable those servers), while fields that are pointers upstream
 * (masqueradeBit, oomScoreAdj, conntrack.maxPerCore/min, the two TCP timeouts,
 * localhostNodePorts) keep an explicit 0 or false.
 */
import { writeFileSync } from 'node:fs';
import { dumpYaml, loadYaml } from '@kubernetes/client-node';
import { z } from 'zod';
import type { ProxyConfig } from './config.ts';
import { type ConfigDraft, defaultDraft } from './draft.ts';
import { formatGoDuration, parseGoDuration } from './duration.ts';
import { ConfigError, type ConfigIssue } from './errors.ts';

export const CONFIG_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
export const CONFIG_KIND = 'KubeProxyConfiguration';

/**
 * The v1alpha1 document. `strict` rejects unknown fields (used only to name them in warnings);
 * every field may be absent or null, which Go decodes as the zero value.
 */
function documentSchema(strict: boolean) {
  const obj = <T extends z.core.$ZodLooseShape>(shape: T) =>
    strict ? (z.strictObject(shape) as unknown as ReturnType<typeof z.object<T>>) : z.object(shape);
  const str = z.string().nullish();
  const bool = z.boolean().nullish();
  const int32 = z.number().int().min(-2147483648).max(2147483647).nullish();
  const uint32 = z.number().int().min(0).max(4294967295).nullish();
  const duration = z
    .string({ error: 'expected a Go duration string such as "30s" or "1m0s"' })
    .transform((s, ctx) => {
      const d = parseGoDuration(s);
      if ('ms' in d) return d.ms;
      ctx.addIssue({ code: 'custom', message: d.error });
      return z.NEVER;
    })
    .nullish();
  return obj({
    apiVersion: z.string(),
    kind: z.string(),
    featureGates: z.record(z.string(), z.boolean()).nullish(),
    clientConnection: obj({
      kubeconfig: str,
      acceptContentTypes: str,
      contentType: str,
      qps: z.number().nullish(),
      burst: int32,
    }).nullish(),
    logging: obj({
      format: str,
      // component-base accepts a duration string or a number of nanoseconds here.
      flushFrequency: z.union([duration, z.number()]),
      verbosity: uint32,
      vmodule: z.array(z.object({ filePattern: z.string(), verbosity: uint32 })).nullish(),
      options: z.record(z.string(), z.unknown()).nullish(),
    }).nullish(),
    hostnameOverride: str,
    bindAddress: str,
    healthzBindAddress: str,
    metricsBindAddress: str,
    bindAddressHardFail: bool,
    enableProfiling: bool,
    showHiddenMetricsForVersion: str,
    mode: str,
    iptables: obj({
      masqueradeBit: int32,
      masqueradeAll: bool,
      localhostNodePorts: bool,
      syncPeriod: duration,
      minSyncPeriod: duration,
    }).nullish(),
    ipvs: obj({
      syncPeriod: duration,
      minSyncPeriod: duration,
      scheduler: str,
      excludeCIDRs: z.array(z.string()).nullish(),
      strictARP: bool,
      tcpTimeout: duration,
      tcpFinTimeout: duration,
      udpTimeout: duration,
    }).nullish(),
    nftables: obj({
      masqueradeBit: int32,
      masqueradeAll: bool,
      syncPeriod: duration,
      minSyncPeriod: duration,
    }).nullish(),
    winkernel: obj({
      networkName: str,
      sourceVip: str,
      enableDSR: bool,
      rootHnsEndpointName: str,
      forwardHealthCheckVip: bool,
    }).nullish(),
    detectLocalMode: str,
    detectLocal: obj({ bridgeInterface: str, interfaceNamePrefix: str }).nullish(),
    clusterCIDR: str,
    nodePortAddresses: z.array(z.string()).nullish(),
    oomScoreAdj: int32,
    conntrack: obj({
      maxPerCore: int32,
      min: int32,
      tcpEstablishedTimeout: duration,
      tcpCloseWaitTimeout: duration,
      tcpBeLiberal: bool,
      udpTimeout: duration,
      udpStreamTimeout: duration,
    }).nullish(),
    configSyncPeriod: duration,
    portRange: str,
    windowsRunAsService: bool,
  });
}

const lenientSchema = documentSchema(false);
const strictSchema = documentSchema(true);
type Document = z.output<typeof lenientSchema>;

function issuePath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? CONFIG_KIND : path.map(String).join('.');
}

function invalidConfig(field: string, reason: string): ConfigError {
  return ConfigError.of('invalid-config', field, reason);
}

export interface ParsedConfigFile {
  readonly draft: ConfigDraft;
  /** Unknown fields (lenient decoding) and zero values replaced by defaults. */
  readonly warnings: readonly string[];
}

/**
 * Parses the text of a KubeProxyConfiguration file into a draft with upstream's defaults.
 * Command-line-only settings in the draft keep their defaults.
 * @throws ConfigError code 'invalid-config', each issue naming the field by its dotted path
 */
export function parseConfigFile(text: string): ParsedConfigFile {
  let raw: unknown;
  try {
    raw = loadYaml<unknown>(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    throw invalidConfig(CONFIG_KIND, `not valid YAML or JSON: ${reason}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalidConfig(CONFIG_KIND, 'the file must hold one object (a KubeProxyConfiguration)');
  }
  const head = raw as { apiVersion?: unknown; kind?: unknown };
  if (head.apiVersion !== CONFIG_API_VERSION) {
    throw invalidConfig(
      'apiVersion',
      head.apiVersion === undefined
        ? `missing; expected ${CONFIG_API_VERSION}`
        : `${JSON.stringify(head.apiVersion)} is not supported; kube-proxy-ts reads ${CONFIG_API_VERSION}`,
    );
  }
  if (head.kind !== CONFIG_KIND) {
    throw invalidConfig(
      'kind',
      head.kind === undefined
        ? `missing; expected ${CONFIG_KIND}`
        : `${JSON.stringify(head.kind)}, expected ${CONFIG_KIND}`,
    );
  }
  const parsed = lenientSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      'invalid-config',
      parsed.error.issues.map(
        (i): ConfigIssue => ({ field: issuePath(i.path), reason: i.message.replace(/^Invalid input: /, '') }),
      ),
    );
  }
  const warnings: string[] = [];
  const strict = strictSchema.safeParse(raw);
  if (!strict.success) {
    for (const issue of strict.error.issues) {
      if (issue.code !== 'unrecognized_keys') continue;
      for (const key of issue.keys) {
        warnings.push(
          `${issuePath([...issue.path, key])}: unknown field, ignored (kube-proxy also decodes such files leniently)`,
        );
      }
    }
  }
  return { draft: documentToDraft(parsed.data, warnings), warnings };
}

/** Upstream's defaulting of a decoded v1alpha1 document, then its conversion to our draft. */
function documentToDraft(doc: Document, warnings: string[]): ConfigDraft {
  const d = defaultDraft();
  /** Go zero value means default for these (non-pointer) fields. */
  const zeroMeansDefault = (path: string, value: number | null | undefined, fallback: number): number => {
    if (value === undefined || value === null) return fallback;
    if (value !== 0) return value;
    warnings.push(
      `${path}: 0 means the default (${formatGoDuration(fallback)}) in a config file, as in kube-proxy`,
    );
    return fallback;
  };
  const cc = doc.clientConnection;
  d.kubeconfig = cc?.kubeconfig ?? '';
  d.clientConnection = {
    contentType: cc?.contentType || d.clientConnection.contentType,
    acceptContentTypes: cc?.acceptContentTypes ?? '',
    qps: cc?.qps || d.clientConnection.qps,
    burst: cc?.burst || d.clientConnection.burst,
  };
  d.featureGates = { ...(doc.featureGates ?? {}) };
  // Our default format is json; an empty or absent format keeps it.
  d.loggingFormat = doc.logging?.format || d.loggingFormat;
  d.verbosity = doc.logging?.verbosity ?? 0;
  d.hostnameOverride = doc.hostnameOverride ?? '';
  d.bindAddress = doc.bindAddress || d.bindAddress;
  d.healthzBindAddress = doc.healthzBindAddress || undefined;
  d.metricsBindAddress = doc.metricsBindAddress || undefined;
  d.bindAddressHardFail = doc.bindAddressHardFail ?? false;
  d.enableProfiling = doc.enableProfiling ?? false;
  d.showHiddenMetricsForVersion = doc.showHiddenMetricsForVersion ?? '';
  d.mode = doc.mode ?? '';
  const ipt = doc.iptables;
  d.iptables = {
    masqueradeBit: ipt?.masqueradeBit ?? d.iptables.masqueradeBit,
    masqueradeAll: ipt?.masqueradeAll ?? false,
    localhostNodePorts: ipt?.localhostNodePorts ?? true,
    syncPeriodMs: zeroMeansDefault('iptables.syncPeriod', ipt?.syncPeriod, d.iptables.syncPeriodMs),
    minSyncPeriodMs: zeroMeansDefault(
      'iptables.minSyncPeriod',
      ipt?.minSyncPeriod,
      d.iptables.minSyncPeriodMs,
    ),
  };
  d.detectLocalMode = doc.detectLocalMode ?? '';
  d.bridgeInterface = doc.detectLocal?.bridgeInterface ?? '';
  d.interfaceNamePrefix = doc.detectLocal?.interfaceNamePrefix ?? '';
  // v1alpha1 conversion: the comma-separated string becomes the internal list.
  d.clusterCIDRs = doc.clusterCIDR ? doc.clusterCIDR.split(',') : [];
  d.nodePortAddresses = [...(doc.nodePortAddresses ?? [])];
  d.oomScoreAdj = doc.oomScoreAdj ?? d.oomScoreAdj;
  const ct = doc.conntrack;
  d.conntrack = {
    maxPerCore: ct?.maxPerCore ?? d.conntrack.maxPerCore,
    min: ct?.min ?? d.conntrack.min,
    tcpEstablishedTimeoutMs: ct?.tcpEstablishedTimeout ?? d.conntrack.tcpEstablishedTimeoutMs,
    tcpCloseWaitTimeoutMs: ct?.tcpCloseWaitTimeout ?? d.conntrack.tcpCloseWaitTimeoutMs,
    tcpBeLiberal: ct?.tcpBeLiberal ?? false,
    udpTimeoutMs: ct?.udpTimeout ?? 0,
    udpStreamTimeoutMs: ct?.udpStreamTimeout ?? 0,
  };
  d.configSyncPeriodMs = zeroMeansDefault('configSyncPeriod', doc.configSyncPeriod, d.configSyncPeriodMs);
  return d;
}

/**
 * The configuration as a KubeProxyConfiguration v1alpha1 YAML document (upstream field names,
 * Go duration strings, keys sorted as upstream's encoder writes them), for --write-config-to.
 * Reading it back with --config gives the same ProxyConfig, apart from the command-line-only
 * settings (kubeconfig aside, the file has no place for them) and what Go's zero-value defaulting
 * cannot express: a 0 minimum sync period reads back as 1s and a disabled healthz or metrics
 * server reads back as the default address, exactly as with kube-proxy.
 */
export function serializeConfig(cfg: ProxyConfig): string {
  const dur = formatGoDuration;
  const doc = {
    apiVersion: CONFIG_API_VERSION,
    kind: CONFIG_KIND,
    bindAddress: cfg.bindAddress,
    bindAddressHardFail: cfg.bindAddressHardFail,
    clientConnection: {
      acceptContentTypes: cfg.clientConnection.acceptContentTypes,
      burst: cfg.clientConnection.burst,
      contentType: cfg.clientConnection.contentType,
      kubeconfig: cfg.kubeconfig ?? '',
      qps: cfg.clientConnection.qps,
    },
    clusterCIDR: cfg.clusterCIDRs.join(','),
    configSyncPeriod: dur(cfg.configSyncPeriodMs),
    conntrack: {
      maxPerCore: cfg.conntrack.maxPerCore,
      min: cfg.conntrack.min,
      tcpBeLiberal: cfg.conntrack.tcpBeLiberal,
      tcpCloseWaitTimeout: dur(cfg.conntrack.tcpCloseWaitTimeoutMs),
      tcpEstablishedTimeout: dur(cfg.conntrack.tcpEstablishedTimeoutMs),
      udpStreamTimeout: dur(cfg.conntrack.udpStreamTimeoutMs),
      udpTimeout: dur(cfg.conntrack.udpTimeoutMs),
    },
    detectLocal: { bridgeInterface: cfg.bridgeInterface, interfaceNamePrefix: cfg.interfaceNamePrefix },
    detectLocalMode: cfg.detectLocalMode,
    enableProfiling: cfg.enableProfiling,
    // omitempty upstream
    ...(Object.keys(cfg.featureGates).length > 0 ? { featureGates: { ...cfg.featureGates } } : {}),
    healthzBindAddress: cfg.healthzBindAddress,
    // The resolved node name is written only when it was given; otherwise the reader's hostname applies.
    hostnameOverride: cfg.hostnameOverridden ? cfg.hostnameOverride : '',
    iptables: {
      localhostNodePorts: cfg.iptables.localhostNodePorts,
      masqueradeAll: cfg.iptables.masqueradeAll,
      masqueradeBit: cfg.iptables.masqueradeBit,
      minSyncPeriod: dur(cfg.iptables.minSyncPeriodMs),
      syncPeriod: dur(cfg.iptables.syncPeriodMs),
    },
    logging: { flushFrequency: '5s', format: cfg.loggingFormat, verbosity: cfg.verbosity },
    metricsBindAddress: cfg.metricsBindAddress,
    mode: cfg.proxyMode,
    nodePortAddresses: cfg.nodePortAddresses.length > 0 ? [...cfg.nodePortAddresses] : null,
    oomScoreAdj: cfg.oomScoreAdj,
    portRange: '',
    showHiddenMetricsForVersion: cfg.showHiddenMetricsForVersion,
  };
  return dumpYaml(doc, { sortKeys: true, lineWidth: -1 });
}

/** Writes serializeConfig(cfg) to `path` (the --write-config-to action). */
export function writeConfigFile(path: string, cfg: ProxyConfig): void {
  writeFileSync(path, serializeConfig(cfg), { mode: 0o644 });
}
