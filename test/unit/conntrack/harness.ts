/**
 * A node for the cleanup tests: the real Service and EndpointSlice trackers and maps, the
 * in-memory conntrack client, a manual clock, and the cleaner under test. A test changes API
 * objects, puts flows in the table as the kernel would have created them, calls `sync()` (what
 * the sync loop does after a successful restore) and compares the table before and after as sets.
 */
import type { CleanupReport, ConntrackCleaner } from '../../../conntrack/cleanup.ts';
import { createConntrackCleaner } from '../../../conntrack/cleanup.ts';
import { createFakeConntrackClient, type FakeConntrackClient } from '../../../conntrack/netlink/fake.ts';
import { formatFlow } from '../../../conntrack/netlink/flow.ts';
import type { ConntrackFlow, ConntrackProtocol } from '../../../conntrack/netlink/types.ts';
import type { EndpointSlice, Service } from '../../../pkg/k8s/schemas.ts';
import { type Logger, silentLogger } from '../../../pkg/log/logger.ts';
import { createProxyMetrics, type ProxyMetrics } from '../../../pkg/metrics/metrics.ts';
import { createEndpointsChangeTracker } from '../../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../../proxier/endpointsmap.ts';
import { createServiceChangeTracker } from '../../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../../proxier/servicemap.ts';
import type { Protocol } from '../../../proxier/types.ts';
import { type EndpointSpec, makeService, makeSlice, type PortSpec } from '../proxier/trackers/fixtures.ts';

export const NODE = 'node-a';
export const OTHER_NODE = 'node-b';
/** This node's address (NodePorts answer here) and another host's. */
export const NODE_IP = '192.168.0.2';
export const OTHER_HOST_IP = '192.168.0.3';
export const CLIENT = '10.0.0.5';

export interface NodeHarnessOptions {
  readonly disabled?: boolean;
  readonly minReconcileIntervalMs?: number;
  /** Reuse a table (and its call log) from a previous harness: a proxy restart. */
  readonly client?: FakeConntrackClient;
  /** Reuse the API objects of a previous harness: the restarted proxy lists them again. */
  readonly objects?: ApiObjects;
  readonly logger?: Logger;
}

export interface ApiObjects {
  readonly services: Map<string, Service>;
  readonly slices: Map<string, EndpointSlice>;
}

export interface NodeHarness {
  readonly ct: FakeConntrackClient;
  readonly metrics: ProxyMetrics;
  readonly cleaner: ConntrackCleaner;
  readonly objects: ApiObjects;
  /** Milliseconds on the cleaner's clock. */
  time: number;
  /** Creates or replaces a Service (`undefined` spec deletes it). */
  service(
    name: string,
    spec: (Record<string, unknown> & { ports?: PortSpec[] }) | undefined,
    status?: Record<string, unknown>,
  ): void;
  /** Sets the only slice of a Service (`undefined` deletes it); port named `p`. */
  endpoints(name: string, endpoints: EndpointSpec[] | undefined, port?: number, protocol?: Protocol): void;
  /** Applies pending changes to the maps and runs cleanup, as the sync loop does. */
  sync(opts?: { forceReconcile?: boolean }): Promise<CleanupReport>;
  /** The table as a set of printable flows. */
  table(): Set<string>;
  /** Number of calls of each kind so far. */
  count(kind: 'dump' | 'delete'): number;
}

export function createNodeHarness(opts: NodeHarnessOptions = {}): NodeHarness {
  const svcTracker = createServiceChangeTracker('IPv4');
  const epTracker = createEndpointsChangeTracker({
    family: 'IPv4',
    nodeName: NODE,
    startTime: new Date(0),
  });
  const serviceMap = createServiceMap();
  const endpointsMap = createEndpointsMap();
  const ct = opts.client ?? createFakeConntrackClient();
  const metrics = createProxyMetrics();
  const objects: ApiObjects = opts.objects ?? { services: new Map(), slices: new Map() };
  // A restarted proxy lists every object again: each is an add.
  for (const svc of objects.services.values()) svcTracker.update(undefined, svc);
  for (const slice of objects.slices.values()) epTracker.endpointSliceUpdate(slice, false);

  const h: NodeHarness = {
    ct,
    metrics,
    objects,
    time: 1_000_000,
    cleaner: undefined as unknown as ConntrackCleaner,
    service(name, spec, status) {
      const old = objects.services.get(name);
      if (spec === undefined) {
        objects.services.delete(name);
        svcTracker.update(old, undefined);
        return;
      }
      const svc = makeService('ns', name, spec, status ? { status } : {});
      objects.services.set(name, svc);
      svcTracker.update(old, svc);
    },
    endpoints(name, endpoints, port = 5353, protocol = 'UDP') {
      const slice = makeSlice('ns', name, 1, {
        endpoints: endpoints ?? [],
        ports: [{ name: 'p', port, protocol }],
      });
      if (endpoints === undefined) objects.slices.delete(name);
      else objects.slices.set(name, slice);
      epTracker.endpointSliceUpdate(slice, endpoints === undefined);
    },
    sync(syncOpts = {}) {
      const serviceResult = serviceMap.update(svcTracker);
      const endpointsResult = endpointsMap.update(epTracker);
      return h.cleaner.afterSync({
        serviceMap: serviceMap.ports,
        endpointsMap: endpointsMap.endpoints,
        serviceResult,
        endpointsResult,
        node: { name: NODE, labels: {}, localIPs: [NODE_IP, '127.0.0.1'] },
        ...(syncOpts.forceReconcile ? { forceReconcile: true } : {}),
      });
    },
    table: () => flowSet(ct.flows()),
    count: (kind) => ct.calls.filter((c) => c.kind === kind).length,
  };
  (h as { cleaner: ConntrackCleaner }).cleaner = createConntrackCleaner({
    client: ct,
    family: 'IPv4',
    metrics,
    logger: opts.logger ?? silentLogger(),
    now: () => h.time,
    ...(opts.minReconcileIntervalMs !== undefined
      ? { minReconcileIntervalMs: opts.minReconcileIntervalMs }
      : {}),
    ...(opts.disabled ? { disabled: true } : {}),
  });
  return h;
}

export function flowSet(flows: Iterable<ConntrackFlow>): Set<string> {
  return new Set([...flows].map(formatFlow));
}

/** A flow as the kernel records it when a packet to `dst:dport` was DNATed to `ep:epPort`. */
export function dnat(
  dst: string,
  dport: number,
  ep: string,
  epPort: number,
  opts: { client?: string; sport?: number; protocol?: ConntrackProtocol } = {},
): ConntrackFlow {
  const client = opts.client ?? CLIENT;
  const sport = opts.sport ?? 40000;
  return {
    family: 'IPv4',
    protocol: opts.protocol ?? 'UDP',
    original: { src: client, dst, srcPort: sport, dstPort: dport },
    reply: { src: ep, dst: client, srcPort: epPort, dstPort: sport },
    status: 0x8,
    mark: 0,
  };
}

/**
 * A flow created while no DNAT rule matched: the answer is expected from the address the
 * client sent to (the #48370 blackhole entry).
 */
export function unNATed(
  dst: string,
  dport: number,
  opts: { client?: string; sport?: number; protocol?: ConntrackProtocol } = {},
): ConntrackFlow {
  return dnat(dst, dport, dst, dport, opts);
}

/** Reads a counter value from the registry's text exposition (0 when the series is absent). */
export async function counterValue(
  metrics: ProxyMetrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await metrics.registry.metrics();
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const close = line.indexOf('}');
    const got = line
      .slice(name.length + 1, close)
      .split(',')
      .sort();
    if (got.join(',') === want.join(',')) return Number(line.slice(close + 1).trim());
  }
  return 0;
}
