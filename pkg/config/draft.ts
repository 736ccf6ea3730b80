/**
 * The configuration while it is being assembled: flags write into a draft, a --config file
 * produces one, and resolve.ts validates it and turns it into a ProxyConfig. It plays the part of
 * upstream's internal KubeProxyConfiguration plus the Options fields that are not in the file,
 * so values are still raw (a mode is any string, the hostname is not yet resolved).
 */
import {
  type ClientConnectionConfig,
  type ConntrackConfig,
  HEALTHZ_PORT,
  type IptablesConfig,
  METRICS_PORT,
} from './config.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface ConfigDraft {
  // Command-line-only settings (upstream's Options fields): a config file never sets these.
  configFile: string;
  writeConfigTo: string;
  cleanup: boolean;
  initOnly: boolean;
  master: string;
  iptablesBackend: string;
  debugDisableConntrackCleanup: boolean;
  /** Deprecated --healthz-port / --metrics-port (only used without --config, as upstream). */
  healthzPort: number;
  metricsPort: number;

  // KubeProxyConfiguration settings.
  kubeconfig: string;
  hostnameOverride: string;
  bindAddress: string;
  /** undefined: derive from bindAddress's family once everything is known (upstream defaulting). */
  healthzBindAddress: string | undefined;
  metricsBindAddress: string | undefined;
  bindAddressHardFail: boolean;
  mode: string;
  iptables: Mutable<IptablesConfig>;
  detectLocalMode: string;
  clusterCIDRs: string[];
  bridgeInterface: string;
  interfaceNamePrefix: string;
  nodePortAddresses: string[];
  conntrack: Mutable<ConntrackConfig>;
  configSyncPeriodMs: number;
  oomScoreAdj: number;
  featureGates: Record<string, boolean>;
  clientConnection: Mutable<ClientConnectionConfig>;
  enableProfiling: boolean;
  showHiddenMetricsForVersion: string;
  verbosity: number;
  loggingFormat: string;
}

/**
 * Upstream's defaults (v1alpha1 SetDefaults_KubeProxyConfiguration plus the Linux platform
 * defaults), and ours for the settings upstream lacks. Durations in milliseconds.
 */
export function defaultDraft(): ConfigDraft {
  return {
    configFile: '',
    writeConfigTo: '',
    cleanup: false,
    initOnly: false,
    master: '',
    iptablesBackend: 'auto',
    debugDisableConntrackCleanup: false,
    healthzPort: HEALTHZ_PORT,
    metricsPort: METRICS_PORT,

    kubeconfig: '',
    hostnameOverride: '',
    bindAddress: '0.0.0.0',
    healthzBindAddress: undefined,
    metricsBindAddress: undefined,
    bindAddressHardFail: false,
    mode: '',
    iptables: {
      syncPeriodMs: 30_000,
      minSyncPeriodMs: 1_000,
      masqueradeBit: 14,
      masqueradeAll: false,
      localhostNodePorts: true,
    },
    detectLocalMode: '',
    clusterCIDRs: [],
    bridgeInterface: '',
    interfaceNamePrefix: '',
    nodePortAddresses: [],
    conntrack: {
      maxPerCore: 32 * 1024,
      min: 128 * 1024,
      tcpEstablishedTimeoutMs: 24 * 3600_000,
      tcpCloseWaitTimeoutMs: 3600_000,
      tcpBeLiberal: false,
      udpTimeoutMs: 0,
      udpStreamTimeoutMs: 0,
    },
    configSyncPeriodMs: 15 * 60_000,
    // qos.KubeProxyOOMScoreAdj
    oomScoreAdj: -999,
    featureGates: {},
    clientConnection: {
      contentType: 'application/vnd.kubernetes.protobuf',
      acceptContentTypes: '',
      qps: 5,
      burst: 10,
    },
    enableProfiling: false,
    showHiddenMetricsForVersion: '',
    verbosity: 0,
    loggingFormat: 'json',
  };
}
