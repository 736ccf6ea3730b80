/**
 * The resolved configuration of kube-proxy-ts: what the daemon works with after flags, the
 * --config file, defaults and validation have been combined (see resolve.ts). Every field has a
 * value; durations are milliseconds. Names follow upstream's KubeProxyConfiguration (v1alpha1),
 * flattened where that reads better; each field names the flag and the file field it comes from.
 */

/** The only mode implemented. Upstream's `ipvs`, `nftables` and `kernelspace` are refused. */
export type ProxyMode = 'iptables';

/** How traffic from local pods is told apart (upstream `--detect-local-mode`). */
export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';
export const DETECT_LOCAL_MODES: readonly DetectLocalMode[] = [
  'ClusterCIDR',
  'NodeCIDR',
  'BridgeInterface',
  'InterfaceNamePrefix',
];

/** Which iptables binaries to run: detected as upstream's image does, or forced. */
export type IptablesBackend = 'auto' | 'legacy' | 'nft';
export const IPTABLES_BACKENDS: readonly IptablesBackend[] = ['auto', 'legacy', 'nft'];

export type LoggingFormat = 'json' | 'text';
export const LOGGING_FORMATS: readonly LoggingFormat[] = ['json', 'text'];

/** The keyword accepted in nodePortAddresses instead of CIDRs: the Node object's primary IPs. */
export const NODE_PORT_ADDRESSES_PRIMARY = 'primary';

/** Upstream ports.ProxyHealthzPort and ports.ProxyStatusPort. */
export const HEALTHZ_PORT = 10256;
export const METRICS_PORT = 10249;

export interface IptablesConfig {
  /** `--iptables-sync-period` / `iptables.syncPeriod` (30s): canary poll, retry delay, cleanup; > 0. */
  readonly syncPeriodMs: number;
  /** `--iptables-min-sync-period` / `iptables.minSyncPeriod` (1s): minimum time between syncs. */
  readonly minSyncPeriodMs: number;
  /** `--iptables-masquerade-bit` / `iptables.masqueradeBit` (14): fwmark bit for SNAT, 0-31. */
  readonly masqueradeBit: number;
  /** `--masquerade-all` / `iptables.masqueradeAll` (false): SNAT all cluster-IP traffic. */
  readonly masqueradeAll: boolean;
  /** `--iptables-localhost-nodeports` / `iptables.localhostNodePorts` (true): NodePorts on 127/8. */
  readonly localhostNodePorts: boolean;
}

export interface ConntrackConfig {
  /**
   * `--conntrack-max-per-core` / `conntrack.maxPerCore` (32768); 0 leaves nf_conntrack_max alone
   * (and `min` is then ignored).
   */
  readonly maxPerCore: number;
  /** `--conntrack-min` / `conntrack.min` (131072). */
  readonly min: number;
  /** `--conntrack-tcp-timeout-established` (24h); 0 leaves the sysctl as it is. */
  readonly tcpEstablishedTimeoutMs: number;
  /** `--conntrack-tcp-timeout-close-wait` (1h). */
  readonly tcpCloseWaitTimeoutMs: number;
  /** `--conntrack-tcp-be-liberal` (false): sets nf_conntrack_tcp_be_liberal=1. */
  readonly tcpBeLiberal: boolean;
  /** `--conntrack-udp-timeout` (0 = as it is): UNREPLIED UDP entries. */
  readonly udpTimeoutMs: number;
  /** `--conntrack-udp-timeout-stream` (0 = as it is): ASSURED UDP entries. */
  readonly udpStreamTimeoutMs: number;
}

/** `clientConnection` settings that upstream has and kube-proxy-ts accepts without acting on them. */
export interface ClientConnectionConfig {
  /** `--kube-api-content-type` (application/vnd.kubernetes.protobuf); we always speak JSON. */
  readonly contentType: string;
  /** `clientConnection.acceptContentTypes` (file only). */
  readonly acceptContentTypes: string;
  /** `--kube-api-qps` (5). */
  readonly qps: number;
  /** `--kube-api-burst` (10). */
  readonly burst: number;
}

export interface ProxyConfig {
  /** `--kubeconfig` / `clientConnection.kubeconfig`; undefined: in-cluster (or the daemon's choice). */
  readonly kubeconfig: string | undefined;
  /** `--master`: overrides the kubeconfig's server URL. Command line only. */
  readonly master: string | undefined;
  /** `--config`: the KubeProxyConfiguration file this came from, if any. */
  readonly configFile: string | undefined;
  /** `--write-config-to`: write the defaulted configuration there (serializeConfig) and exit. */
  readonly writeConfigTo: string | undefined;
  /** `--cleanup`: remove our rules and exit. */
  readonly cleanup: boolean;
  /** `--init-only`: do the privileged setup (sysctls) and exit. */
  readonly initOnly: boolean;

  /**
   * The node name: `--hostname-override` (wins over the file), else `hostnameOverride` from the
   * file, else os.hostname(); trimmed and lower-cased. Never empty.
   */
  readonly hostnameOverride: string;
  /** True when the name came from --hostname-override or the file, not from os.hostname(). */
  readonly hostnameOverridden: boolean;

  /** `--bind-address` / `bindAddress` (0.0.0.0): the node's primary IP; no socket binds to it. */
  readonly bindAddress: string;
  /** `--healthz-bind-address` (0.0.0.0:10256, or [::]:10256 for an IPv6 bindAddress); '' disables. */
  readonly healthzBindAddress: string;
  /** `--metrics-bind-address` (127.0.0.1:10249, or [::1]:10249); '' disables. */
  readonly metricsBindAddress: string;
  /** `--bind-address-hard-fail` (false): exit when the healthz or metrics port cannot be bound. */
  readonly bindAddressHardFail: boolean;

  /** `--proxy-mode` / `mode`: iptables (empty means iptables, as upstream on Linux). */
  readonly proxyMode: ProxyMode;
  readonly iptables: IptablesConfig;

  /** `--detect-local-mode` / `detectLocalMode` (ClusterCIDR). */
  readonly detectLocalMode: DetectLocalMode;
  /** `--cluster-cidr` / `clusterCIDR`, split at commas: at most one CIDR per IP family. */
  readonly clusterCIDRs: readonly string[];
  /** `--pod-bridge-interface` / `detectLocal.bridgeInterface` (for BridgeInterface mode). */
  readonly bridgeInterface: string;
  /** `--pod-interface-name-prefix` / `detectLocal.interfaceNamePrefix` (for InterfaceNamePrefix). */
  readonly interfaceNamePrefix: string;

  /** `--nodeport-addresses` / `nodePortAddresses`: CIDRs, or ['primary']; [] means all local IPs. */
  readonly nodePortAddresses: readonly string[];

  readonly conntrack: ConntrackConfig;
  /** `--config-sync-period` / `configSyncPeriod` (15m): informer resync period. */
  readonly configSyncPeriodMs: number;
  /** `--oom-score-adj` / `oomScoreAdj` (-999), -1000..1000. Accepted; not applied by kube-proxy-ts. */
  readonly oomScoreAdj: number;
  /** `--feature-gates` / `featureGates`. Accepted; kube-proxy-ts has no gated behaviour yet. */
  readonly featureGates: Readonly<Record<string, boolean>>;
  readonly clientConnection: ClientConnectionConfig;
  /** `--profiling` / `enableProfiling`. Accepted; no /debug/pprof in kube-proxy-ts. */
  readonly enableProfiling: boolean;
  /** `--show-hidden-metrics-for-version` / `showHiddenMetricsForVersion`. Accepted, unused. */
  readonly showHiddenMetricsForVersion: string;

  /** `-v` / `logging.verbosity` (0). The command line wins over the file. */
  readonly verbosity: number;
  /** `--logging-format` / `logging.format`: json (our default; upstream's is text) or text. */
  readonly loggingFormat: LoggingFormat;

  /** Ours, command line only: `--iptables-backend` (auto). */
  readonly iptablesBackend: IptablesBackend;
  /**
   * Ours, command line only, hidden from --help: `--debug-disable-conntrack-cleanup`. Skips
   * deleting stale conntrack entries, so tests can show the blackholed UDP flow it prevents.
   */
  readonly debugDisableConntrackCleanup: boolean;
}
