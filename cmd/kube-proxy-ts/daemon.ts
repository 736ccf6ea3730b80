/**
 * The kube-proxy daemon: wiring only. Informer callbacks feed every family's proxier; each
 * proxier owns its sync loop; the health and metrics servers report on them. SIGTERM and SIGINT
 * stop everything in reverse order and leave the rules in place, as upstream does, so traffic
 * keeps flowing while the proxy is down or being replaced.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createConntrackCleaner } from '../../conntrack/cleanup.ts';
import { createConntrackClient } from '../../conntrack/netlink/client.ts';
import type { ConntrackClient } from '../../conntrack/netlink/types.ts';
import type { ProxyConfig } from '../../pkg/config/config.ts';
import { ConfigError } from '../../pkg/config/errors.ts';
import { writeConfigFile } from '../../pkg/config/file.ts';
import { resolveConfig } from '../../pkg/config/resolve.ts';
import { healthTimeoutForSyncPeriod, ProxyHealthServer } from '../../pkg/health/proxy-health.ts';
import { ServiceHealthServer } from '../../pkg/health/service-health.ts';
import { resolveBackend } from '../../pkg/iptables/backend.ts';
import { createIptablesRunner } from '../../pkg/iptables/runner.ts';
import type { Backend } from '../../pkg/iptables/types.ts';
import type { Informer } from '../../pkg/k8s/informer.ts';
import { endpointSliceInformer, nodeInformer, serviceInformer } from '../../pkg/k8s/informers.ts';
import { loadKubeConfig } from '../../pkg/k8s/kubeconfig.ts';
import type { Node } from '../../pkg/k8s/schemas.ts';
import { createLogger, type Logger } from '../../pkg/log/logger.ts';
import { createProxyMetrics } from '../../pkg/metrics/metrics.ts';
import { createMetricsServer } from '../../pkg/metrics/server.ts';
import { applyConntrackSysctls } from '../../pkg/sysctl/conntrack.ts';
import { readTcpBeLiberal, writeSysctl } from '../../pkg/sysctl/sysctl.ts';
import { createCanaryMonitor } from '../../proxier/canary.ts';
import { cleanupLeftovers } from '../../proxier/cleanup.ts';
import { Proxier } from '../../proxier/proxier.ts';
import { localInterfaceAddresses, nodeIPsOf, proxiedFamilies } from './node-info.ts';
import { localhostNodePortsEnabled, staticRenderConfigFor } from './render-config.ts';

export interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** How long start-up waits for the Node object before going on without node IPs. */
const NODE_WAIT_MS = 15_000;

export async function daemonCommand(argv: readonly string[], io: Io): Promise<number> {
  let resolved: ReturnType<typeof resolveConfig>;
  try {
    resolved = resolveConfig(argv, { readFile: (p) => readFileSync(p, 'utf8') });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`kube-proxy-ts: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if ('help' in resolved) {
    io.stdout.write(resolved.help);
    return 0;
  }
  const config = resolved.config;
  const logger = createLogger({ verbosity: config.verbosity, format: config.loggingFormat });
  for (const w of resolved.warnings) logger.warn(w);

  if (config.writeConfigTo) {
    writeConfigFile(config.writeConfigTo, config);
    logger.info({ path: config.writeConfigTo }, 'wrote configuration');
    return 0;
  }

  const backend = await resolveBackend(config.iptablesBackend, { logger });
  logger.info({ backend, flag: config.iptablesBackend }, 'iptables backend');

  if (config.cleanup) return runCleanup(backend, logger);
  return runProxy(config, backend, logger);
}

async function runCleanup(backend: Backend, logger: Logger): Promise<number> {
  let ok = true;
  for (const family of ['IPv4', 'IPv6'] as const) {
    const iptables = createIptablesRunner({ family, backend, logger });
    const result = await cleanupLeftovers(iptables, logger);
    ok &&= result.ok;
  }
  logger.info({ ok }, 'cleanup done');
  return ok ? 0 : 1;
}

async function runProxy(config: ProxyConfig, backend: Backend, logger: Logger): Promise<number> {
  const log = logger.child({ component: 'daemon' });
  const nodeName = config.hostnameOverride;
  const kc = loadKubeConfig({ kubeconfig: config.kubeconfig, master: config.master });
  const metrics = createProxyMetrics();
  const health = new ProxyHealthServer({
    bindAddress: config.healthzBindAddress,
    healthTimeoutMs: healthTimeoutForSyncPeriod(config.iptables.syncPeriodMs),
    metrics,
    logger,
  });
  const metricsServer = createMetricsServer({
    bindAddress: config.metricsBindAddress,
    registry: metrics.registry,
    proxyMode: 'iptables',
    config,
    logger,
  });
  for (const [name, server] of [
    ['healthz', health],
    ['metrics', metricsServer],
  ] as const) {
    await server.start().catch((err: unknown) => {
      if (config.bindAddressHardFail) throw err;
      log.error({ err }, `cannot start the ${name} server; going on without it`);
    });
  }

  await applyConntrackSysctls(config.conntrack, { numCPU: cpus().length, logger }).catch((err: unknown) =>
    log.warn({ err }, 'conntrack sysctls not applied'),
  );

  if (localhostNodePortsEnabled(config)) {
    // NodePorts on 127.0.0.1 are DNATed to pod IPs, which the kernel routes from loopback only
    // with route_localnet (upstream sets it too; KUBE-FIREWALL guards the hole it opens, #90259).
    await writeSysctl('net/ipv4/conf/all/route_localnet', 1).catch((err: unknown) =>
      log.warn({ err }, 'cannot set net.ipv4.conf.all.route_localnet; localhost NodePorts will not work'),
    );
  }

  // The node comes first: its IPs decide the families and the rules that name node addresses.
  let proxiers: Proxier[] = [];
  const onInvalid = (kind: string) =>
    metrics.invalidObjectsSkippedTotal.inc({ kind: kind as 'Service' | 'EndpointSlice' | 'Node' });
  const nodes: Informer<Node> = nodeInformer(
    kc,
    nodeName,
    {
      onAdd: (n) => onNode(n),
      onUpdate: (_o, n) => onNode(n),
      onDelete: () => onNode(undefined),
      onInvalid,
    },
    { logger },
  );
  function onNode(n: Node | undefined): void {
    health.syncNode(n);
    for (const p of proxiers) p.onNodeUpdate(n);
  }
  const abort = new AbortController();
  const nodeStarted = nodes.start(abort.signal).catch(() => {});
  await Promise.race([nodeStarted, new Promise((r) => setTimeout(r, NODE_WAIT_MS).unref())]);
  const node = nodes.get(nodeName);
  if (!node)
    log.warn({ nodeName }, 'Node object not found; NodePort and LB rules use no node IP until it appears');
  const nodeIPs = nodeIPsOf(node, config.bindAddress);
  const families = proxiedFamilies(nodeIPs, config.clusterCIDRs);
  log.info({ nodeName, nodeIPs, families }, 'starting proxier');

  const tcpBeLiberal = readTcpBeLiberal();
  const ctClient: ConntrackClient | undefined = config.debugDisableConntrackCleanup
    ? undefined
    : createConntrackClient({ logger });
  const serviceHealth = new ServiceHealthServer({ proxyHealth: health, logger });
  const monitors: { start(): void; stop(): Promise<void> | void }[] = [];
  proxiers = families.map((family, i) => {
    const iptables = createIptablesRunner({ family, backend, logger });
    const proxier: Proxier = new Proxier(nodeName, {
      family,
      iptables,
      syncPeriodMs: config.iptables.syncPeriodMs,
      minSyncPeriodMs: config.iptables.minSyncPeriodMs,
      logger,
      metrics,
      health,
      // One health-check listener per Service: the primary family's proxier owns them.
      ...(i === 0 ? { serviceHealth } : {}),
      ...(ctClient
        ? { conntrack: createConntrackCleaner({ client: ctClient, family, metrics, logger }) }
        : {}),
      localAddresses: localInterfaceAddresses,
      render: staticRenderConfigFor(
        config,
        family,
        { name: nodeName, object: node, ips: nodeIPs },
        // nfacct counters need NFNL_SUBSYS_ACCT, not implemented yet: rules without them, as
        // upstream writes them when the counters cannot be created.
        { tcpBeLiberal, nfacctCounters: new Set() },
      ),
    });
    const canary = createCanaryMonitor({
      iptables,
      intervalMs: config.iptables.syncPeriodMs,
      onFlushed: () => {
        log.warn({ family }, 'iptables canary gone: tables were flushed; full resync');
        proxier.forceFullSync();
      },
      logger,
    });
    monitors.push(canary);
    return proxier;
  });
  if (node) for (const p of proxiers) p.onNodeUpdate(node);

  const each = (fn: (p: Proxier) => void) => {
    for (const p of proxiers) fn(p);
  };
  const services = serviceInformer(
    kc,
    {
      onAdd: (s) => each((p) => p.onServiceUpdate(undefined, s)),
      onUpdate: (o, s) => each((p) => p.onServiceUpdate(o, s)),
      onDelete: (s) => each((p) => p.onServiceUpdate(s, undefined)),
      onSynced: () => each((p) => p.onServicesSynced()),
      onInvalid,
    },
    { logger },
  );
  const slices = endpointSliceInformer(
    kc,
    {
      onAdd: (s) => each((p) => p.onEndpointSliceUpdate(s, false)),
      onUpdate: (_o, s) => each((p) => p.onEndpointSliceUpdate(s, false)),
      onDelete: (s) => each((p) => p.onEndpointSliceUpdate(s, true)),
      onSynced: () => each((p) => p.onEndpointSlicesSynced()),
      onInvalid,
    },
    { logger },
  );
  for (const p of proxiers) p.start();
  for (const m of monitors) m.start();
  void services.start(abort.signal).catch(() => {});
  void slices.start(abort.signal).catch(() => {});

  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal }, 'stopping; rules stay in place');
  abort.abort();
  services.stop();
  slices.stop();
  nodes.stop();
  for (const m of monitors) await m.stop();
  for (const p of proxiers) await p.stop();
  await serviceHealth.stop();
  ctClient?.close();
  await metricsServer.stop();
  await health.stop();
  return 0;
}
