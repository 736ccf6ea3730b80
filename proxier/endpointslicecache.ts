/**
 * EndpointSlices of one IP family, kept per Service and per slice name (upstream's
 * EndpointSliceCache, pkg/proxy/endpointslicecache.go). Each Service has two maps: `applied`
 * (the slices as of the last sync) and `pending` (slices changed since, or a removal marker).
 * Slices are tracked by name, not merged on arrival, because an endpoint can move from one slice
 * to another: the removal from the old slice and the addition to the new one arrive as separate
 * events, and merging per event would drop the endpoint in between.
 *
 * Only what the proxy needs is copied out of a slice (canonical IP, locality, conditions, hints,
 * ports), so the caller's object is never retained or modified, an update that changes nothing
 * we use (resourceVersion, labels, an endpoint we would ignore) stores nothing, and reordering
 * a slice's endpoints or ports is no change.
 */
import { isDeepStrictEqual } from 'node:util';
import type { EndpointSlice } from '../pkg/k8s/schemas.ts';
import { SERVICE_NAME_LABEL } from '../pkg/k8s/schemas.ts';
import { joinHostPort, parseIP } from '../pkg/net/ip.ts';
import {
  type Endpoint,
  type Protocol,
  type ServiceKey,
  type ServicePortKey,
  type ServicePortName,
  serviceKey,
  servicePortKey,
} from './types.ts';

/** The endpoints of one Service port, with the port's name (the map key alone is opaque). */
export interface ServicePortEndpoints {
  readonly name: ServicePortName;
  /** Sorted by the `endpoint` string (section 2.3 of the reference): plain string order. */
  readonly endpoints: readonly Endpoint[];
}

/** The endpoints of one Service, per port; a port without endpoints has no entry. */
export type ServiceEndpoints = ReadonlyMap<ServicePortKey, ServicePortEndpoints>;

/** One Service's endpoints before the first pending slice change and after the last one. */
export interface EndpointsChange {
  readonly previous: ServiceEndpoints;
  readonly current: ServiceEndpoints;
}

/** The fields of one slice endpoint that the proxy uses. */
interface EndpointData {
  readonly ip: string;
  readonly isLocal: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly zoneHints: ReadonlySet<string> | undefined;
  readonly nodeHints: ReadonlySet<string> | undefined;
}

interface PortData {
  readonly name: string | undefined;
  readonly port: number | undefined;
  readonly protocol: Protocol;
}

interface SliceData {
  readonly ports: readonly PortData[];
  readonly endpoints: readonly EndpointData[];
}

const REMOVED = 'removed';
type PendingSlice = SliceData | typeof REMOVED;

interface ServiceSlices {
  readonly namespace: string;
  readonly name: string;
  readonly applied: Map<string, SliceData>;
  readonly pending: Map<string, PendingSlice>;
  /** buildServiceEndpoints(applied), kept so the next checkout's `previous` costs nothing. */
  appliedEndpoints: ServiceEndpoints;
}

export type SliceUpdateOutcome = 'stored' | 'cancelled' | 'unchanged';

export interface EndpointSliceCache {
  /**
   * Records a slice add/update (`removed` false) or deletion. `stored`: the event is now a
   * pending change. `cancelled`: it took the slice back to its applied state, so the pending
   * entry was dropped (the earlier event already asked for a sync, which now has nothing to do
   * for this slice). `unchanged`: nothing the proxy uses changed, or the slice has no
   * service-name label.
   */
  updatePending(slice: EndpointSlice, removed: boolean): SliceUpdateOutcome;
  /** Number of Services with pending slice changes. */
  pendingCount(): number;
  /** Moves every pending slice into `applied` and returns, per changed Service, old and new endpoints. */
  checkoutChanges(): Map<ServiceKey, EndpointsChange>;
}

/** `namespace/service` of a slice, or undefined without the service-name label. */
export function sliceServiceKey(slice: EndpointSlice): ServiceKey | undefined {
  const svc = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  if (svc === undefined || svc === '') return undefined;
  return serviceKey(slice.metadata.namespace, svc);
}

function hintSet(hints: readonly { readonly name: string }[] | undefined): ReadonlySet<string> | undefined {
  if (hints === undefined || hints.length === 0) return undefined;
  return new Set(hints.map((h) => h.name));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface EndpointConditions {
  readonly ready?: boolean | undefined;
  readonly serving?: boolean | undefined;
  readonly terminating?: boolean | undefined;
}

/** Copies what the proxy needs; `nodeName` is this node's (an empty name is never local). */
export function sliceData(slice: EndpointSlice, nodeName: string): SliceData {
  const endpoints: EndpointData[] = [];
  for (const ep of slice.endpoints) {
    // Only the first address counts (upstream: "addresses[0]"); the schema ensured it parses.
    const ip = parseIP(ep.addresses[0]!);
    if (ip === undefined) continue;
    // The schema's "absent conditions → {}" default types as a union; read it through one shape.
    const conditions: EndpointConditions = ep.conditions;
    endpoints.push({
      ip: ip.text,
      isLocal: nodeName !== '' && ep.nodeName === nodeName,
      // Absent conditions mean ready and serving, not terminating (API defaults).
      ready: conditions.ready ?? true,
      serving: conditions.serving ?? true,
      terminating: conditions.terminating ?? false,
      zoneHints: hintSet(ep.hints?.forZones),
      nodeHints: hintSet(ep.hints?.forNodes),
    });
  }
  // Stable sorts: duplicates of one IP inside a slice keep their relative order.
  endpoints.sort((a, b) => compareStrings(a.ip, b.ip));
  const ports: PortData[] = slice.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol }));
  ports.sort(
    (a, b) =>
      (a.port ?? 0) - (b.port ?? 0) ||
      compareStrings(a.name ?? '', b.name ?? '') ||
      compareStrings(a.protocol, b.protocol),
  );
  return { ports, endpoints };
}

function makeEndpoint(ep: EndpointData, port: number): Endpoint {
  return Object.freeze({
    ip: ep.ip,
    port,
    endpoint: joinHostPort(ep.ip, port),
    isLocal: ep.isLocal,
    ready: ep.ready,
    serving: ep.serving,
    terminating: ep.terminating,
    zoneHints: ep.zoneHints,
    nodeHints: ep.nodeHints,
  });
}

/**
 * Merges a Service's slices into endpoints per port. Slices are read in slice-name order, so the
 * result does not depend on event order. An `IP:port` seen twice (an endpoint moving between
 * slices, or a new pod reusing the IP of a terminating one) keeps the later entry unless that
 * one is terminating: a running endpoint is never replaced by a terminating one.
 */
export function buildServiceEndpoints(
  namespace: string,
  name: string,
  slices: ReadonlyMap<string, SliceData>,
): ServiceEndpoints {
  const byPort = new Map<ServicePortKey, { name: ServicePortName; set: Map<string, Endpoint> }>();
  for (const sliceName of [...slices.keys()].sort(compareStrings)) {
    const slice = slices.get(sliceName)!;
    for (const p of slice.ports) {
      // A nil name or a nil/zero port cannot be matched to a Service port (upstream skips them).
      if (p.name === undefined || p.port === undefined || p.port === 0) continue;
      const spn: ServicePortName = { namespace, name, port: p.name, protocol: p.protocol };
      const key = servicePortKey(spn);
      let entry = byPort.get(key);
      if (entry === undefined) {
        entry = { name: Object.freeze(spn), set: new Map() };
        byPort.set(key, entry);
      }
      for (const ep of slice.endpoints) {
        const e = makeEndpoint(ep, p.port);
        if (!entry.set.has(e.endpoint) || !e.terminating) entry.set.set(e.endpoint, e);
      }
    }
  }
  const out = new Map<ServicePortKey, ServicePortEndpoints>();
  for (const [key, { name: spn, set }] of byPort) {
    if (set.size === 0) continue;
    const endpoints = [...set.values()].sort((a, b) => compareStrings(a.endpoint, b.endpoint));
    out.set(key, Object.freeze({ name: spn, endpoints: Object.freeze(endpoints) }));
  }
  return out;
}

const EMPTY: ServiceEndpoints = new Map();

export function createEndpointSliceCache(nodeName: string): EndpointSliceCache {
  const services = new Map<ServiceKey, ServiceSlices>();
  // Services with a non-empty `pending`, so that counting them per event stays O(1).
  const withPending = new Set<ServiceKey>();

  return {
    updatePending(slice, removed) {
      const key = sliceServiceKey(slice);
      if (key === undefined) return 'unchanged';
      const sliceName = slice.metadata.name;
      const data: PendingSlice = removed ? REMOVED : sliceData(slice, nodeName);
      let svc = services.get(key);
      const applied = svc?.applied.get(sliceName);
      const pending = svc?.pending.get(sliceName);

      // Where this slice stands once the pending value is applied, and what the event makes it.
      const effective: PendingSlice = pending ?? applied ?? REMOVED;
      if (isDeepStrictEqual(effective, data)) return 'unchanged';
      if (isDeepStrictEqual(applied ?? REMOVED, data)) {
        // Back to the applied state: the pending change cancels out.
        svc!.pending.delete(sliceName);
        if (svc!.pending.size === 0) withPending.delete(key);
        if (svc!.pending.size === 0 && svc!.applied.size === 0) services.delete(key);
        return 'cancelled';
      }
      if (svc === undefined) {
        svc = {
          namespace: slice.metadata.namespace,
          name: slice.metadata.labels![SERVICE_NAME_LABEL]!,
          applied: new Map(),
          pending: new Map(),
          appliedEndpoints: EMPTY,
        };
        services.set(key, svc);
      }
      svc.pending.set(sliceName, data);
      withPending.add(key);
      return 'stored';
    },

    pendingCount: () => withPending.size,

    checkoutChanges() {
      const changes = new Map<ServiceKey, EndpointsChange>();
      for (const key of withPending) {
        const svc = services.get(key)!;
        const previous = svc.appliedEndpoints;
        for (const [sliceName, data] of svc.pending) {
          if (data === REMOVED) svc.applied.delete(sliceName);
          else svc.applied.set(sliceName, data);
        }
        svc.pending.clear();
        const current = buildServiceEndpoints(svc.namespace, svc.name, svc.applied);
        svc.appliedEndpoints = current;
        if (svc.applied.size === 0) services.delete(key);
        changes.set(key, { previous, current });
      }
      withPending.clear();
      return changes;
    },
  };
}
