/**
 * Command-line flags: upstream kube-proxy's names, defaults and syntax (spf13/pflag), driven by
 * one table. Each entry knows how to parse its value, where the value goes in the draft, which
 * KubeProxyConfiguration field it corresponds to (to name it in errors and to report it when a
 * --config file overrides it), and whether it survives a --config file.
 *
 * Syntax accepted, as pflag: `--name=value`, `--name value`, booleans as `--flag` or
 * `--flag=false` (not `--flag false`), `-v=4`, `-v 4`, `-v4`, `--v=4`, `_` and `-` alike in names
 * (upstream's WordSepNormalizeFunc), `--` ends the flags. Positional arguments are refused, as
 * upstream's command does.
 */
import { isIPText, splitHostPort } from './address.ts';
import { IPTABLES_BACKENDS, LOGGING_FORMATS } from './config.ts';
import type { ConfigDraft } from './draft.ts';
import { formatGoDuration, parseGoDuration } from './duration.ts';
import { ConfigError } from './errors.ts';

/**
 * Where a flag's value ends up when a --config file is given:
 * - `command-line`: not a file setting (upstream's Options fields), always applies;
 * - `logging`: applies on top of the file, as upstream's copyLogsFromFlags does;
 * - `config`: the file replaces it; setting it anyway earns a warning.
 */
export type FlagScope = 'command-line' | 'logging' | 'config';

/** `implemented`: acted on; `ignored`: accepted (and checked) for compatibility, no effect. */
export type FlagSupport = 'implemented' | 'ignored';

type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

interface ValueType<T> {
  /** Shown in --help after the flag name, as pflag does; '' for booleans. */
  readonly name: string;
  readonly isBool: boolean;
  parse(raw: string): Parsed<T>;
}

export interface FlagSpec {
  readonly name: string;
  readonly shorthand?: string;
  readonly typeName: string;
  readonly isBool: boolean;
  /** Default as shown in --help ('' shows none). */
  readonly defaultText: string;
  readonly usage: string;
  readonly scope: FlagScope;
  readonly support: FlagSupport;
  /** The KubeProxyConfiguration field (dotted path) this flag sets, if any. */
  readonly configPath?: string;
  /** Hidden flags work but are not listed in --help. */
  readonly hidden?: boolean;
  /** Set for deprecated flags: hidden from --help, and using one earns this warning. */
  readonly deprecated?: string;
  /**
   * Parses `raw` and returns the assignment to run on a draft, or the reason it is invalid.
   * `repeated` is true from the flag's second occurrence on (lists and maps accumulate then).
   */
  bind(raw: string): Parsed<(draft: ConfigDraft, repeated: boolean) => void>;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(reason: string): Parsed<T> => ({ ok: false, reason });

// ---- value types -------------------------------------------------------------------------------

const stringType: ValueType<string> = { name: 'string', isBool: false, parse: (raw) => ok(raw) };

/** strconv.ParseBool. */
function parseBool(raw: string): Parsed<boolean> {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return ok(true);
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return ok(false);
  return fail(`"${raw}" is not a boolean (true or false)`);
}
const boolType: ValueType<boolean> = { name: '', isBool: true, parse: parseBool };

/** strconv.ParseInt(s, 0, 32): decimal, or 0x / 0o / 0 / 0b prefixed, within int32. */
function intType(name: string, min: number, max: number): ValueType<number> {
  return {
    name,
    isBool: false,
    parse(raw) {
      const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|[1-9][0-9]*|0)$/.exec(raw);
      if (!m) return fail(`"${raw}" is not an integer`);
      const body = m[2]!;
      let n: number;
      if (/^0[oO]/.test(body)) n = Number.parseInt(body.slice(2), 8);
      else if (/^0[0-7]/.test(body)) n = Number.parseInt(body.slice(1), 8);
      else n = Number(body);
      if (m[1] === '-') n = -n;
      if (n < min || n > max) return fail(`${raw} is out of range [${min}, ${max}]`);
      return ok(n);
    },
  };
}
const int32Type = intType('int32', -2147483648, 2147483647);
/** klog's verbosity level. */
const levelType = intType('Level', 0, 2147483647);

const float32Type: ValueType<number> = {
  name: 'float32',
  isBool: false,
  parse(raw) {
    const n = raw.trim() === raw && raw !== '' ? Number(raw) : Number.NaN;
    return Number.isFinite(n) ? ok(n) : fail(`"${raw}" is not a number`);
  },
};

const durationType: ValueType<number> = {
  name: 'duration',
  isBool: false,
  parse(raw) {
    const d = parseGoDuration(raw);
    return 'ms' in d ? ok(d.ms) : fail(d.error);
  },
};

/** utilflag.IPVar: an IP address; empty clears it (validation then complains). */
const ipType: ValueType<string> = {
  name: 'ip',
  isBool: false,
  parse(raw) {
    if (raw === '') return ok('');
    return isIPText(raw) ? ok(raw) : fail(`"${raw}" is not a valid IP address`);
  },
};

/** utilflag.IPPortVar: `IP`, `IP:port` or `[IPv6]:port`; empty (or blank) means disabled. */
const ipPortType: ValueType<string> = {
  name: 'ipport',
  isBool: false,
  parse(raw) {
    if (raw.trim() === '') return ok('');
    if (isIPText(raw)) return ok(raw);
    const hp = splitHostPort(raw);
    if (!hp) return fail(`"${raw}" is not in a valid format (ip or ip:port)`);
    if (!isIPText(hp.host)) return fail(`"${hp.host}" is not a valid IP address`);
    if (!/^[0-9]+$/.test(hp.port) || Number(hp.port) > 65535) return fail(`"${hp.port}" is not a valid port`);
    return ok(raw);
  },
};

/** pflag's StringSlice: comma-separated; the first use replaces the default, later ones append. */
const stringSliceType: ValueType<string[]> = {
  name: 'strings',
  isBool: false,
  parse: (raw) => ok(raw === '' ? [] : raw.split(',')),
};

/** cliflag.MapStringBool: `key=bool,key2=bool`; repeated uses merge. */
const mapStringBoolType: ValueType<Record<string, boolean>> = {
  name: 'mapStringBool',
  isBool: false,
  parse(raw) {
    const out: Record<string, boolean> = {};
    if (raw === '') return ok(out);
    for (const pair of raw.split(',')) {
      const eq = pair.indexOf('=');
      if (eq === -1) return fail(`malformed pair "${pair}", expected key=true|false`);
      const key = pair.slice(0, eq).trim();
      const value = parseBool(pair.slice(eq + 1).trim());
      if (!value.ok) return fail(`invalid value of ${key}: ${value.reason}`);
      out[key] = value.value;
    }
    return ok(out);
  },
};

function enumType(values: readonly string[]): ValueType<string> {
  return {
    name: 'string',
    isBool: false,
    parse: (raw) =>
      values.includes(raw)
        ? ok(raw)
        : fail(`"${raw}" is not one of ${values.map((v) => `"${v}"`).join(', ')}`),
  };
}

// ---- the table ---------------------------------------------------------------------------------

interface FlagDef<T> {
  name: string;
  shorthand?: string;
  type: ValueType<T>;
  defaultText: string;
  usage: string;
  scope: FlagScope;
  support?: FlagSupport;
  configPath?: string;
  hidden?: boolean;
  deprecated?: string;
  set(draft: ConfigDraft, value: T, repeated: boolean): void;
}

function flag<T>(def: FlagDef<T>): FlagSpec {
  const spec: FlagSpec = {
    name: def.name,
    typeName: def.type.name,
    isBool: def.type.isBool,
    defaultText: def.defaultText,
    usage: def.usage,
    scope: def.scope,
    support: def.support ?? 'implemented',
    ...(def.shorthand !== undefined ? { shorthand: def.shorthand } : {}),
    ...(def.configPath !== undefined ? { configPath: def.configPath } : {}),
    ...(def.hidden ? { hidden: true } : {}),
    ...(def.deprecated !== undefined ? { deprecated: def.deprecated } : {}),
    bind(raw) {
      const parsed = def.type.parse(raw);
      if (!parsed.ok) return parsed;
      return ok((draft: ConfigDraft, repeated: boolean) => def.set(draft, parsed.value, repeated));
    },
  };
  return spec;
}

const IGNORED_NOTE = 'Accepted for compatibility with kube-proxy; kube-proxy-ts ignores it.';
const FILE_NOTE = 'Ignored if a config file is given by --config.';

function ignoredFlag<T>(
  def: Omit<FlagDef<T>, 'set' | 'scope' | 'support'> & { scope?: FlagScope },
): FlagSpec {
  return flag<T>({
    scope: 'config',
    ...def,
    support: 'ignored',
    usage: `${def.usage} ${IGNORED_NOTE}`,
    set() {},
  });
}

const dur = (ms: number) => formatGoDuration(ms);

/** Every flag kube-proxy-ts accepts, upstream's names and defaults. */
export const FLAGS: readonly FlagSpec[] = [
  flag({
    name: 'config',
    type: stringType,
    defaultText: '',
    usage: 'The path to a KubeProxyConfiguration file (YAML or JSON). Most other flags are then ignored.',
    scope: 'command-line',
    set: (d, v) => {
      d.configFile = v;
    },
  }),
  flag({
    name: 'write-config-to',
    type: stringType,
    defaultText: '',
    usage: 'If set, write the configuration (defaults plus the flags given) to this file and exit.',
    scope: 'command-line',
    set: (d, v) => {
      d.writeConfigTo = v;
    },
  }),
  flag({
    name: 'cleanup',
    type: boolType,
    defaultText: '',
    usage: 'If true, remove the iptables rules kube-proxy installed and exit.',
    scope: 'command-line',
    set: (d, v) => {
      d.cleanup = v;
    },
  }),
  flag({
    name: 'init-only',
    type: boolType,
    defaultText: '',
    usage:
      'If true, do the setup that needs full root privileges (sysctls) and exit; a later run then needs only CAP_NET_ADMIN.',
    scope: 'command-line',
    set: (d, v) => {
      d.initOnly = v;
    },
  }),
  flag({
    name: 'kubeconfig',
    type: stringType,
    defaultText: '',
    usage: 'Path to a kubeconfig file with authorization information (--master overrides its server).',
    scope: 'config',
    configPath: 'clientConnection.kubeconfig',
    set: (d, v) => {
      d.kubeconfig = v;
    },
  }),
  flag({
    name: 'master',
    type: stringType,
    defaultText: '',
    usage: 'The address of the Kubernetes API server (overrides any value in kubeconfig).',
    scope: 'command-line',
    set: (d, v) => {
      d.master = v;
    },
  }),
  ignoredFlag({
    name: 'kube-api-content-type',
    type: stringType,
    defaultText: 'application/vnd.kubernetes.protobuf',
    usage: 'Content type of requests sent to the API server.',
    configPath: 'clientConnection.contentType',
  }),
  flag({
    name: 'kube-api-qps',
    type: float32Type,
    defaultText: '5',
    usage: `QPS to use while talking with the API server. ${IGNORED_NOTE}`,
    scope: 'config',
    support: 'ignored',
    configPath: 'clientConnection.qps',
    set: (d, v) => {
      d.clientConnection.qps = v;
    },
  }),
  flag({
    name: 'kube-api-burst',
    type: int32Type,
    defaultText: '10',
    usage: `Burst to use while talking with the API server. ${IGNORED_NOTE}`,
    scope: 'config',
    support: 'ignored',
    configPath: 'clientConnection.burst',
    set: (d, v) => {
      d.clientConnection.burst = v;
    },
  }),
  flag({
    name: 'hostname-override',
    type: stringType,
    defaultText: '',
    usage:
      'If non-empty, the name of the Node kube-proxy runs on (trimmed, lower-cased); otherwise the hostname. Wins over the config file.',
    scope: 'command-line',
    configPath: 'hostnameOverride',
    // Upstream applies it only when non-empty, so `--hostname-override=` leaves the file's value.
    set: (d, v) => {
      if (v.length > 0) d.hostnameOverride = v;
    },
  }),
  flag({
    name: 'bind-address',
    type: ipType,
    defaultText: '0.0.0.0',
    usage: `Overrides kube-proxy's idea of its node's primary IP (no socket binds to it); an IPv6 address makes the healthz and metrics defaults IPv6. ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'bindAddress',
    set: (d, v) => {
      d.bindAddress = v;
    },
  }),
  flag({
    name: 'healthz-bind-address',
    type: ipPortType,
    defaultText: '0.0.0.0:10256',
    usage: `The IP address and port for the health check server ([::]:10256 by default if --bind-address is IPv6). Empty disables it. ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'healthzBindAddress',
    set: (d, v) => {
      d.healthzBindAddress = v;
    },
  }),
  flag({
    name: 'metrics-bind-address',
    type: ipPortType,
    defaultText: '127.0.0.1:10249',
    usage: `The IP address and port for the metrics server ([::1]:10249 by default if --bind-address is IPv6; 0.0.0.0:10249 or [::]:10249 for all interfaces). Empty disables it. ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'metricsBindAddress',
    set: (d, v) => {
      d.metricsBindAddress = v;
    },
  }),
  flag({
    name: 'bind-address-hard-fail',
    type: boolType,
    defaultText: '',
    usage: 'If true, failing to bind the healthz or metrics port is fatal.',
    scope: 'config',
    configPath: 'bindAddressHardFail',
    set: (d, v) => {
      d.bindAddressHardFail = v;
    },
  }),
  flag({
    name: 'healthz-port',
    type: int32Type,
    defaultText: '10256',
    usage: 'The port of the health check server; 0 disables it.',
    scope: 'config',
    configPath: 'healthzBindAddress',
    deprecated: 'flag --healthz-port is deprecated, use --healthz-bind-address instead',
    set: (d, v) => {
      d.healthzPort = v;
    },
  }),
  flag({
    name: 'metrics-port',
    type: int32Type,
    defaultText: '10249',
    usage: 'The port of the metrics server; 0 disables it.',
    scope: 'config',
    configPath: 'metricsBindAddress',
    deprecated: 'flag --metrics-port is deprecated, use --metrics-bind-address instead',
    set: (d, v) => {
      d.metricsPort = v;
    },
  }),
  flag({
    name: 'profiling',
    type: boolType,
    defaultText: '',
    usage: `If true, enable /debug/pprof on the metrics server. ${IGNORED_NOTE}`,
    scope: 'config',
    support: 'ignored',
    configPath: 'enableProfiling',
    set: (d, v) => {
      d.enableProfiling = v;
    },
  }),
  flag({
    name: 'show-hidden-metrics-for-version',
    type: stringType,
    defaultText: '',
    usage: `The previous version for which to show hidden metrics. ${IGNORED_NOTE}`,
    scope: 'config',
    support: 'ignored',
    configPath: 'showHiddenMetricsForVersion',
    set: (d, v) => {
      d.showHiddenMetricsForVersion = v;
    },
  }),
  flag({
    name: 'proxy-mode',
    type: stringType,
    defaultText: 'iptables',
    usage: `Which proxy mode to use. kube-proxy-ts implements 'iptables' only ('ipvs', 'nftables' and 'kernelspace' are refused). ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'mode',
    set: (d, v) => {
      d.mode = v;
    },
  }),
  flag({
    name: 'iptables-sync-period',
    type: durationType,
    defaultText: dur(30_000),
    usage:
      "How often re-synchronizing and cleanup operations are performed (e.g. '5s', '1m', '2h22m'). Must be greater than 0.",
    scope: 'config',
    configPath: 'iptables.syncPeriod',
    set: (d, v) => {
      d.iptables.syncPeriodMs = v;
    },
  }),
  flag({
    name: 'iptables-min-sync-period',
    type: durationType,
    defaultText: dur(1_000),
    usage:
      "The minimum period between iptables rule syncs (e.g. '5s', '1m', '2h22m'). 0 means every Service or EndpointSlice change syncs at once.",
    scope: 'config',
    configPath: 'iptables.minSyncPeriod',
    set: (d, v) => {
      d.iptables.minSyncPeriodMs = v;
    },
  }),
  flag({
    name: 'iptables-masquerade-bit',
    type: int32Type,
    defaultText: '14',
    usage: 'The bit of the fwmark space that marks packets needing SNAT. Must be within [0, 31].',
    scope: 'config',
    configPath: 'iptables.masqueradeBit',
    set: (d, v) => {
      d.iptables.masqueradeBit = v;
    },
  }),
  flag({
    name: 'iptables-localhost-nodeports',
    type: boolType,
    defaultText: 'true',
    usage:
      'If false, NodePort services cannot be reached via localhost (IPv4 only; never allowed with IPv6).',
    scope: 'config',
    configPath: 'iptables.localhostNodePorts',
    set: (d, v) => {
      d.iptables.localhostNodePorts = v;
    },
  }),
  flag({
    name: 'masquerade-all',
    type: boolType,
    defaultText: '',
    usage: 'SNAT all traffic sent via Service cluster IPs. Some CNI plugins need this.',
    scope: 'config',
    configPath: 'iptables.masqueradeAll',
    set: (d, v) => {
      d.iptables.masqueradeAll = v;
    },
  }),
  flag({
    name: 'detect-local-mode',
    type: stringType,
    defaultText: 'ClusterCIDR',
    usage: `How to detect traffic from local pods: ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix. ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'detectLocalMode',
    set: (d, v) => {
      d.detectLocalMode = v;
    },
  }),
  flag({
    name: 'cluster-cidr',
    type: stringType,
    defaultText: '',
    usage: `The CIDR range of the pods in the cluster (a comma-separated pair for dual stack, one per IP family). With --detect-local-mode=ClusterCIDR, traffic from it counts as local. ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'clusterCIDR',
    set: (d, v) => {
      // Upstream (1.31+) turns an empty value into one empty CIDR and fails; an empty flag means none here.
      d.clusterCIDRs = v === '' ? [] : v.split(',');
    },
  }),
  flag({
    name: 'pod-bridge-interface',
    type: stringType,
    defaultText: '',
    usage:
      'A bridge interface name; with --detect-local-mode=BridgeInterface, traffic from it counts as local.',
    scope: 'config',
    configPath: 'detectLocal.bridgeInterface',
    set: (d, v) => {
      d.bridgeInterface = v;
    },
  }),
  flag({
    name: 'pod-interface-name-prefix',
    type: stringType,
    defaultText: '',
    usage:
      'An interface name prefix; with --detect-local-mode=InterfaceNamePrefix, traffic from interfaces with this prefix counts as local.',
    scope: 'config',
    configPath: 'detectLocal.interfaceNamePrefix',
    set: (d, v) => {
      d.interfaceNamePrefix = v;
    },
  }),
  flag({
    name: 'nodeport-addresses',
    type: stringSliceType,
    defaultText: '',
    usage: `CIDR ranges containing the node IPs that accept NodePort connections, or the single word 'primary' (the Node's primary IPs). Unset: all local IPs. ${FILE_NOTE}`,
    scope: 'config',
    configPath: 'nodePortAddresses',
    set: (d, v, repeated) => {
      d.nodePortAddresses = repeated ? [...d.nodePortAddresses, ...v] : v;
    },
  }),
  flag({
    name: 'oom-score-adj',
    type: int32Type,
    defaultText: '-999',
    usage: `The oom-score-adj value for the process, within [-1000, 1000]. ${IGNORED_NOTE}`,
    scope: 'config',
    support: 'ignored',
    configPath: 'oomScoreAdj',
    set: (d, v) => {
      d.oomScoreAdj = v;
    },
  }),
  flag({
    name: 'conntrack-max-per-core',
    type: int32Type,
    defaultText: '32768',
    usage:
      'Maximum number of NAT connections to track per CPU core (0 leaves the limit as it is and ignores --conntrack-min).',
    scope: 'config',
    configPath: 'conntrack.maxPerCore',
    set: (d, v) => {
      d.conntrack.maxPerCore = v;
    },
  }),
  flag({
    name: 'conntrack-min',
    type: int32Type,
    defaultText: '131072',
    usage: 'Minimum number of conntrack entries to allocate, whatever --conntrack-max-per-core gives.',
    scope: 'config',
    configPath: 'conntrack.min',
    set: (d, v) => {
      d.conntrack.min = v;
    },
  }),
  flag({
    name: 'conntrack-tcp-timeout-established',
    type: durationType,
    defaultText: dur(24 * 3600_000),
    usage: 'Idle timeout for established TCP connections (0 leaves it as it is).',
    scope: 'config',
    configPath: 'conntrack.tcpEstablishedTimeout',
    set: (d, v) => {
      d.conntrack.tcpEstablishedTimeoutMs = v;
    },
  }),
  flag({
    name: 'conntrack-tcp-timeout-close-wait',
    type: durationType,
    defaultText: dur(3600_000),
    usage: 'NAT timeout for TCP connections in the CLOSE_WAIT state.',
    scope: 'config',
    configPath: 'conntrack.tcpCloseWaitTimeout',
    set: (d, v) => {
      d.conntrack.tcpCloseWaitTimeoutMs = v;
    },
  }),
  flag({
    name: 'conntrack-tcp-be-liberal',
    type: boolType,
    defaultText: '',
    usage: 'Track TCP liberally by setting nf_conntrack_tcp_be_liberal to 1.',
    scope: 'config',
    configPath: 'conntrack.tcpBeLiberal',
    set: (d, v) => {
      d.conntrack.tcpBeLiberal = v;
    },
  }),
  flag({
    name: 'conntrack-udp-timeout',
    type: durationType,
    defaultText: dur(0),
    usage: 'Idle timeout for UNREPLIED UDP connections (0 leaves it as it is).',
    scope: 'config',
    configPath: 'conntrack.udpTimeout',
    set: (d, v) => {
      d.conntrack.udpTimeoutMs = v;
    },
  }),
  flag({
    name: 'conntrack-udp-timeout-stream',
    type: durationType,
    defaultText: dur(0),
    usage: 'Idle timeout for ASSURED UDP connections (0 leaves it as it is).',
    scope: 'config',
    configPath: 'conntrack.udpStreamTimeout',
    set: (d, v) => {
      d.conntrack.udpStreamTimeoutMs = v;
    },
  }),
  flag({
    name: 'config-sync-period',
    type: durationType,
    defaultText: dur(15 * 60_000),
    usage: 'How often configuration from the API server is refreshed. Must be greater than 0.',
    scope: 'config',
    configPath: 'configSyncPeriod',
    set: (d, v) => {
      d.configSyncPeriodMs = v;
    },
  }),
  flag({
    name: 'feature-gates',
    type: mapStringBoolType,
    defaultText: '',
    usage: `Feature gates as key=value pairs (e.g. Foo=true,Bar=false). ${FILE_NOTE} ${IGNORED_NOTE}`,
    scope: 'config',
    support: 'ignored',
    configPath: 'featureGates',
    set: (d, v, repeated) => {
      d.featureGates = repeated ? { ...d.featureGates, ...v } : v;
    },
  }),
  ignoredFlag({
    name: 'ipvs-sync-period',
    type: durationType,
    defaultText: dur(30_000),
    usage: 'IPVS mode only.',
    configPath: 'ipvs.syncPeriod',
  }),
  ignoredFlag({
    name: 'ipvs-min-sync-period',
    type: durationType,
    defaultText: dur(0),
    usage: 'IPVS mode only.',
    configPath: 'ipvs.minSyncPeriod',
  }),
  ignoredFlag({
    name: 'ipvs-scheduler',
    type: stringType,
    defaultText: '',
    usage: 'IPVS mode only.',
    configPath: 'ipvs.scheduler',
  }),
  ignoredFlag({
    name: 'ipvs-exclude-cidrs',
    type: stringSliceType,
    defaultText: '',
    usage: 'IPVS mode only.',
    configPath: 'ipvs.excludeCIDRs',
  }),
  ignoredFlag({
    name: 'ipvs-strict-arp',
    type: boolType,
    defaultText: '',
    usage: 'IPVS mode only.',
    configPath: 'ipvs.strictARP',
  }),
  ignoredFlag({
    name: 'ipvs-tcp-timeout',
    type: durationType,
    defaultText: dur(0),
    usage: 'IPVS mode only.',
    configPath: 'ipvs.tcpTimeout',
  }),
  ignoredFlag({
    name: 'ipvs-tcpfin-timeout',
    type: durationType,
    defaultText: dur(0),
    usage: 'IPVS mode only.',
    configPath: 'ipvs.tcpFinTimeout',
  }),
  ignoredFlag({
    name: 'ipvs-udp-timeout',
    type: durationType,
    defaultText: dur(0),
    usage: 'IPVS mode only.',
    configPath: 'ipvs.udpTimeout',
  }),
  flag({
    name: 'v',
    shorthand: 'v',
    type: levelType,
    defaultText: '0',
    usage: 'Log verbosity: 0 info, 1-3 debug, 4 and more trace. Wins over the config file.',
    scope: 'logging',
    configPath: 'logging.verbosity',
    set: (d, v) => {
      d.verbosity = v;
    },
  }),
  flag({
    name: 'logging-format',
    type: enumType(LOGGING_FORMATS),
    defaultText: 'json',
    usage: "Log format, 'json' or 'text' (kube-proxy's default is text). Wins over the config file.",
    scope: 'logging',
    configPath: 'logging.format',
    set: (d, v) => {
      d.loggingFormat = v;
    },
  }),
  ignoredFlag({
    name: 'vmodule',
    type: stringType,
    defaultText: '',
    usage: 'Per-file log verbosity (pattern=N,...).',
    scope: 'logging',
    configPath: 'logging.vmodule',
  }),
  ignoredFlag({
    name: 'log-flush-frequency',
    type: durationType,
    defaultText: dur(5_000),
    usage: 'Maximum number of seconds between log flushes.',
    scope: 'logging',
    configPath: 'logging.flushFrequency',
  }),
  ignoredFlag({
    name: 'log-text-split-stream',
    type: boolType,
    defaultText: '',
    usage: 'Text format: write error messages to stderr and info messages to stdout.',
    scope: 'logging',
  }),
  ignoredFlag({
    name: 'log-text-info-buffer-size',
    type: stringType,
    defaultText: '0',
    usage: 'Text format with split streams: buffer size of the info stream.',
    scope: 'logging',
  }),
  ignoredFlag({
    name: 'log-json-split-stream',
    type: boolType,
    defaultText: '',
    usage: 'JSON format: write error messages to stderr and info messages to stdout.',
    scope: 'logging',
  }),
  ignoredFlag({
    name: 'log-json-info-buffer-size',
    type: stringType,
    defaultText: '0',
    usage: 'JSON format with split streams: buffer size of the info stream.',
    scope: 'logging',
  }),
  flag({
    name: 'iptables-backend',
    type: enumType(IPTABLES_BACKENDS),
    defaultText: 'auto',
    usage:
      "Which iptables binaries to use: 'legacy', 'nft', or 'auto' to pick the one already holding rules, as kube-proxy's image does. kube-proxy-ts only.",
    scope: 'command-line',
    set: (d, v) => {
      d.iptablesBackend = v;
    },
  }),
  flag({
    name: 'debug-disable-conntrack-cleanup',
    type: boolType,
    defaultText: '',
    usage:
      'Debugging only: never delete stale conntrack entries (shows the blackholed UDP flows cleanup prevents).',
    scope: 'command-line',
    hidden: true,
    set: (d, v) => {
      d.debugDisableConntrackCleanup = v;
    },
  }),
];

const byName = new Map(FLAGS.map((f) => [f.name, f]));
const byShorthand = new Map(FLAGS.filter((f) => f.shorthand).map((f) => [f.shorthand!, f]));

/** The flag whose value lands in a KubeProxyConfiguration field, to name it in errors. */
export function flagForConfigPath(path: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.configPath === path && f.deprecated === undefined);
}

// ---- parsing -----------------------------------------------------------------------------------

export interface FlagAssignment {
  readonly spec: FlagSpec;
  readonly raw: string;
  readonly apply: (draft: ConfigDraft, repeated: boolean) => void;
}

export type ParsedArgs =
  | { readonly help: true }
  | {
      readonly help: false;
      /** In command-line order; apply them with applyFlags. */
      readonly assignments: readonly FlagAssignment[];
      /** Names of the flags given explicitly (pflag's Changed). */
      readonly changed: ReadonlySet<string>;
    };

const invalid = (field: string, reason: string) => ConfigError.of('invalid-flag', field, reason);

/** Upstream's cliflag.WordSepNormalizeFunc: `_` and `-` are the same in flag names. */
const normalize = (name: string) => name.replaceAll('_', '-');

/**
 * Parses argv (without the node and script paths). Every value is checked here, as pflag does,
 * so a malformed value is an error even when a --config file would override it.
 * @throws ConfigError code 'invalid-flag'
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const assignments: FlagAssignment[] = [];
  const changed = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let value: string | undefined;
    let shown: string;
    if (arg.startsWith('--')) {
      const body = arg.slice(2);
      const eq = body.indexOf('=');
      const name = normalize(eq === -1 ? body : body.slice(0, eq));
      if (eq !== -1) value = body.slice(eq + 1);
      if (name === 'help') return { help: true };
      shown = `--${name}`;
      spec = byName.get(name);
      if (!spec || name === '') throw invalid(arg, 'unknown flag');
    } else if (arg.startsWith('-') && arg.length > 1) {
      const short = arg[1]!;
      if (short === 'h') return { help: true };
      spec = byShorthand.get(short);
      if (!spec) throw invalid(arg, `unknown shorthand flag '${short}'`);
      shown = `-${short}`;
      const rest = arg.slice(2);
      if (rest.startsWith('=')) value = rest.slice(1);
      else if (rest !== '') value = rest;
    } else {
      if (arg !== '') positional.push(arg);
      continue;
    }
    if (value === undefined) {
      if (spec.isBool) value = 'true';
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw invalid(shown, 'flag needs an argument');
    }
    const bound = spec.bind(value);
    if (!bound.ok) throw invalid(`--${spec.name}`, `invalid value "${value}": ${bound.reason}`);
    assignments.push({ spec, raw: value, apply: bound.value });
    changed.add(spec.name);
  }
  const extra = positional.filter((p) => p !== '');
  if (extra.length > 0) {
    throw invalid(extra[0]!, `kube-proxy-ts takes no arguments, only flags (got ${JSON.stringify(extra)})`);
  }
  return { help: false, assignments, changed };
}

/** Runs the assignments that `include` accepts, in order, on `draft`. */
export function applyFlags(
  draft: ConfigDraft,
  assignments: readonly FlagAssignment[],
  include: (spec: FlagSpec) => boolean = () => true,
): void {
  const seen = new Set<string>();
  for (const a of assignments) {
    if (!include(a.spec)) continue;
    a.apply(draft, seen.has(a.spec.name));
    seen.add(a.spec.name);
  }
}

// ---- help --------------------------------------------------------------------------------------

/** The --help text: every listed flag with its type, default and description, sorted by name. */
export function helpText(program = 'kube-proxy-ts'): string {
  const rows = FLAGS.filter((f) => !f.hidden && f.deprecated === undefined)
    .slice()
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => {
      const left = `${f.shorthand ? `-${f.shorthand}, ` : '    '}--${f.name}${f.typeName ? ` ${f.typeName}` : ''}`;
      const dflt = f.defaultText !== '' ? ` (default ${f.defaultText})` : '';
      return { left, right: `${f.usage}${dflt}` };
    });
  rows.push({ left: '-h, --help', right: `help for ${program}` });
  const width = Math.max(...rows.map((r) => r.left.length));
  const lines = rows.map((r) => `  ${r.left.padEnd(width)}   ${r.right}`);
  return [
    `${program}: a reimplementation of Kubernetes kube-proxy (iptables mode) in TypeScript.`,
    '',
    'Usage:',
    `  ${program} [flags]`,
    '',
    'Flags:',
    ...lines,
    '',
  ].join('\n');
}
