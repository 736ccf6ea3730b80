/**
 * The proxier's ServicePortMap (every proxied Service port of one family) and the step that
 * applies the Service tracker's pending changes to it (upstream's ServicePortMap.Update). The
 * update returns a value describing what changed; partial sync and conntrack cleanup read it.
 */
import type { ServiceChange, ServiceChangeTracker } from './servicechangetracker.ts';
import {
  type ServiceKey,
  type ServicePort,
  type ServicePortKey,
  type ServicePortMap,
  serviceKey,
} from './types.ts';

export interface ServiceMapUpdateResult {
  /** Services that had a pending change (added, updated or deleted). */
  readonly updatedServices: Set<ServiceKey>;
  /**
   * Entries removed from the map, as they were: Service deleted or no longer proxied, port
   * removed, protocol or port number changed, or cluster IP changed (a Service deleted and
   * recreated between two syncs). Flows to these frontends can only be stale.
   */
  readonly deletedServicePorts: ServicePort[];
  /**
   * Cluster IPs of removed UDP and SCTP service ports (upstream 1.26-1.31 DeletedUDPClusterIPs,
   * widened to SCTP, which upstream never cleaned, #115299). An IP may still be used by another
   * port of the same Service, as upstream; deleting a live UDP flow only costs a new NAT lookup.
   */
  readonly deletedUDPClusterIPs: Set<string>;
}

export interface ServiceMap {
  /** The current entries, for rendering; changes only through `update`. */
  readonly ports: ServicePortMap;
  /** Applies and clears the tracker's pending changes. */
  update(tracker: Pick<ServiceChangeTracker, 'checkout'>): ServiceMapUpdateResult;
  /** Service → health-check node port, for Services with a non-zero one. */
  healthCheckNodePorts(): Map<ServiceKey, number>;
}

/** Conntrack keeps per-flow NAT state worth cleaning only for connectionless protocols. */
function isConnectionless(sp: ServicePort): boolean {
  return sp.protocol === 'UDP' || sp.protocol === 'SCTP';
}

/** Same key, but a different frontend: the old entry's flows point nowhere now. */
function frontendChanged(before: ServicePort, after: ServicePort): boolean {
  return (
    before.clusterIP !== after.clusterIP || before.port !== after.port || before.protocol !== after.protocol
  );
}

/**
 * Applies pending changes to `map` (the only thing mutated) and returns what changed. Per
 * Service: `current` overwrites, then the `previous` ports absent from `current` are deleted.
 */
export function applyServiceChanges(
  map: Map<ServicePortKey, ServicePort>,
  changes: ReadonlyMap<ServiceKey, ServiceChange>,
): ServiceMapUpdateResult {
  const updatedServices = new Set<ServiceKey>();
  const deletedServicePorts: ServicePort[] = [];
  const deletedUDPClusterIPs = new Set<string>();
  const removed = (sp: ServicePort) => {
    deletedServicePorts.push(sp);
    if (isConnectionless(sp)) deletedUDPClusterIPs.add(sp.clusterIP);
  };

  for (const [svc, change] of changes) {
    updatedServices.add(svc);
    for (const [key, sp] of change.current) {
      const before = map.get(key);
      if (before !== undefined && frontendChanged(before, sp)) removed(before);
      map.set(key, sp);
    }
    for (const key of change.previous.keys()) {
      if (change.current.has(key)) continue;
      const before = map.get(key);
      if (before === undefined) continue;
      removed(before);
      map.delete(key);
    }
  }
  return { updatedServices, deletedServicePorts, deletedUDPClusterIPs };
}

/** Upstream's ServicePortMap.HealthCheckNodePorts. */
export function healthCheckNodePorts(ports: ServicePortMap): Map<ServiceKey, number> {
  const out = new Map<ServiceKey, number>();
  for (const sp of ports.values()) {
    if (sp.healthCheckNodePort !== 0)
      out.set(serviceKey(sp.name.namespace, sp.name.name), sp.healthCheckNodePort);
  }
  return out;
}

export function createServiceMap(): ServiceMap {
  const ports = new Map<ServicePortKey, ServicePort>();
  return {
    ports,
    update: (tracker) => applyServiceChanges(ports, tracker.checkout()),
    healthCheckNodePorts: () => healthCheckNodePorts(ports),
  };
}
