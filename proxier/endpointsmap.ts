/**
 * The proxier's EndpointsMap (sorted endpoints per Service port, one family) and the step that
 * applies the endpoints tracker's pending changes to it (upstream's EndpointsMap.Update). The
 * result says what changed in terms both conntrack designs need: the events of the 1.26-1.31
 * design (stale endpoints, ports that became reachable) and the state of the changed Services
 * for the 1.32+ reconciler.
 */

import type { EndpointsChangeTracker } from './endpointschangetracker.ts';
import type { EndpointsChange, ServiceEndpoints } from './endpointslicecache.ts';
import {
  type Endpoint,
  type EndpointsMap,
  type ServiceKey,
  type ServicePortKey,
  type ServicePortName,
  serviceKey,
} from './types.ts';

export interface StaleEndpoint {
  readonly servicePortKey: ServicePortKey;
  readonly endpoint: Endpoint;
}

export interface EndpointsMapUpdateResult {
  /** Services whose slices changed since the last update. */
  readonly updatedServices: Set<ServiceKey>;
  /** Endpoints of every port of the changed Services before the change (ports with endpoints only). */
  readonly previous: Map<ServicePortKey, readonly Endpoint[]>;
  /** Same, after the change; what the map now holds for those Services. */
  readonly current: Map<ServicePortKey, readonly Endpoint[]>;
  /**
   * Endpoints that received traffic before (see `receivesTraffic`) and now are gone or no longer
   * receive it, per Service port; all protocols, so the caller picks. Flows DNATed to them are
   * stale (#22573: a UDP client keeps sending to a dead pod).
   */
  readonly staleEndpoints: StaleEndpoint[];
  /**
   * Service ports that had no endpoint receiving traffic and now have one: the #48524 set (a UDP
   * flow that arrived while there was no DNAT rule is stuck un-NATed until its entry is
   * deleted), counted on serving endpoints rather than ready ones, as #105657 did.
   */
  readonly newlyServingServicePorts: Set<ServicePortKey>;
  /** Trigger times of the slice changes since the last update, per Service. */
  readonly lastChangeTriggerTimes: Map<ServiceKey, Date[]>;
  /** Some changed Service has a UDP or SCTP port, before or after: conntrack must be checked. */
  readonly conntrackCleanupRequired: boolean;
}

export interface EndpointsMapStore {
  /** The current entries, for rendering; changes only through `update`. */
  readonly endpoints: EndpointsMap;
  /** Applies and clears the tracker's pending changes. */
  update(tracker: Pick<EndpointsChangeTracker, 'checkout'>): EndpointsMapUpdateResult;
  /** Service → number of distinct IPs among its local ready endpoints (Services with none left out). */
  localReadyEndpoints(): Map<ServiceKey, number>;
}

/**
 * Whether kube-proxy sends traffic to the endpoint at all: ready ones, and serving terminating
 * ones, which are the fallback when a port has no ready endpoint (KEP-1669).
 */
export function receivesTraffic(ep: Endpoint): boolean {
  return ep.ready || (ep.serving && ep.terminating);
}

function isConnectionless(name: ServicePortName): boolean {
  return name.protocol === 'UDP' || name.protocol === 'SCTP';
}

function staleAndNewlyServing(
  change: EndpointsChange,
  stale: StaleEndpoint[],
  newlyServing: Set<ServicePortKey>,
): void {
  for (const [key, before] of change.previous) {
    const still = new Set<string>();
    for (const ep of change.current.get(key)?.endpoints ?? [])
      if (receivesTraffic(ep)) still.add(ep.endpoint);
    for (const ep of before.endpoints) {
      if (receivesTraffic(ep) && !still.has(ep.endpoint)) stale.push({ servicePortKey: key, endpoint: ep });
    }
  }
  for (const [key, after] of change.current) {
    if (!after.endpoints.some(receivesTraffic)) continue;
    if (!(change.previous.get(key)?.endpoints ?? []).some(receivesTraffic)) newlyServing.add(key);
  }
}

function flatten(from: ServiceEndpoints, into: Map<ServicePortKey, readonly Endpoint[]>): void {
  for (const [key, { endpoints }] of from) into.set(key, endpoints);
}

/**
 * Applies pending changes to `map` and `names` (the only things mutated) and returns what
 * changed. Per Service: the ports it had are deleted, the ports it has now are inserted.
 */
export function applyEndpointsChanges(
  map: Map<ServicePortKey, readonly Endpoint[]>,
  names: Map<ServicePortKey, ServicePortName>,
  changes: ReadonlyMap<ServiceKey, EndpointsChange>,
  lastChangeTriggerTimes: Map<ServiceKey, Date[]>,
): EndpointsMapUpdateResult {
  const updatedServices = new Set<ServiceKey>();
  const previous = new Map<ServicePortKey, readonly Endpoint[]>();
  const current = new Map<ServicePortKey, readonly Endpoint[]>();
  const staleEndpoints: StaleEndpoint[] = [];
  const newlyServingServicePorts = new Set<ServicePortKey>();
  let conntrackCleanupRequired = false;

  for (const [svc, change] of changes) {
    updatedServices.add(svc);
    for (const key of change.previous.keys()) {
      map.delete(key);
      names.delete(key);
    }
    for (const [key, { name, endpoints }] of change.current) {
      map.set(key, endpoints);
      names.set(key, name);
    }
    flatten(change.previous, previous);
    flatten(change.current, current);
    staleAndNewlyServing(change, staleEndpoints, newlyServingServicePorts);
    if (!conntrackCleanupRequired) {
      for (const side of [change.previous, change.current]) {
        for (const { name } of side.values()) if (isConnectionless(name)) conntrackCleanupRequired = true;
      }
    }
  }
  return {
    updatedServices,
    previous,
    current,
    staleEndpoints,
    newlyServingServicePorts,
    lastChangeTriggerTimes,
    conntrackCleanupRequired,
  };
}

/**
 * Upstream's EndpointsMap.LocalReadyEndpoints, feeding the eTP=Local health checks. Counted by
 * IP, so a pod behind ports 80 and 443 counts once; terminating endpoints are not ready and do
 * not count, so a node whose local pods are all terminating fails its health check.
 */
export function localReadyEndpoints(
  map: EndpointsMap,
  names: ReadonlyMap<ServicePortKey, ServicePortName>,
): Map<ServiceKey, number> {
  const ips = new Map<ServiceKey, Set<string>>();
  for (const [key, endpoints] of map) {
    const name = names.get(key);
    if (name === undefined) continue;
    for (const ep of endpoints) {
      if (!ep.ready || !ep.isLocal) continue;
      const svc = serviceKey(name.namespace, name.name);
      let set = ips.get(svc);
      if (set === undefined) {
        set = new Set();
        ips.set(svc, set);
      }
      set.add(ep.ip);
    }
  }
  return new Map([...ips].map(([svc, set]) => [svc, set.size]));
}

export function createEndpointsMap(): EndpointsMapStore {
  const endpoints = new Map<ServicePortKey, readonly Endpoint[]>();
  const names = new Map<ServicePortKey, ServicePortName>();
  return {
    endpoints,
    update(tracker) {
      const { changes, lastChangeTriggerTimes } = tracker.checkout();
      return applyEndpointsChanges(endpoints, names, changes, lastChangeTriggerTimes);
    },
    localReadyEndpoints: () => localReadyEndpoints(endpoints, names),
  };
}
