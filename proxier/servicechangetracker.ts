/**
 * Collects Service events between two syncs (upstream's ServiceChangeTracker,
 * pkg/proxy/servicechangetracker.go). Per Service it keeps the ports as they were before the
 * first unsynced event and the ports as they are now; an event sequence that ends where it
 * started (add then delete, or an edit touching nothing kube-proxy uses) leaves no entry, so a
 * flapping object costs no sync.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Service } from '../pkg/k8s/schemas.ts';
import type { IPFamily } from '../pkg/net/ip.ts';
import { servicePortsFromService } from './serviceport.ts';
import {
  type ServiceKey,
  type ServicePort,
  type ServicePortKey,
  serviceKey,
  servicePortKey,
} from './types.ts';

/** The ports of one Service for one family, keyed by ServicePortKey. */
export type ServicePortsOfService = ReadonlyMap<ServicePortKey, ServicePort>;

/** One Service's pending change: its ports at the last sync and now (empty = absent or ignored). */
export interface ServiceChange {
  readonly previous: ServicePortsOfService;
  readonly current: ServicePortsOfService;
}

export interface ServiceChangeTracker {
  readonly family: IPFamily;
  /**
   * Records an informer event: `old` undefined for an add, `cur` undefined for a delete.
   * Returns whether ANY Service change is pending after this event, not whether this event
   * changed anything; `EndpointsChangeTracker.endpointSliceUpdate` answers the other question.
   */
  update(old: Service | undefined, cur: Service | undefined): boolean;
  /** Number of Services with a pending change (upstream's service_changes_pending gauge). */
  pendingCount(): number;
  /** Hands over the pending changes and forgets them; the service map's update calls this. */
  checkout(): ReadonlyMap<ServiceKey, ServiceChange>;
}

function portsByKey(svc: Service | undefined, family: IPFamily): ServicePortsOfService {
  const out = new Map<ServicePortKey, ServicePort>();
  if (svc === undefined) return out;
  for (const sp of servicePortsFromService(svc, family)) out.set(servicePortKey(sp.name), sp);
  return out;
}

export function createServiceChangeTracker(family: IPFamily): ServiceChangeTracker {
  let items = new Map<ServiceKey, ServiceChange>();

  return {
    family,
    update(old, cur) {
      const svc = cur ?? old;
      if (svc === undefined) return items.size > 0;
      const key = serviceKey(svc.metadata.namespace, svc.metadata.name);
      // `previous` is frozen at the first event since the last sync; only `current` moves.
      const previous = items.get(key)?.previous ?? portsByKey(old, family);
      const current = portsByKey(cur, family);
      // Map comparison ignores insertion order, so reordering spec.ports is no change.
      if (isDeepStrictEqual(previous, current)) items.delete(key);
      else items.set(key, { previous, current });
      return items.size > 0;
    },
    pendingCount() {
      return items.size;
    },
    checkout() {
      const out = items;
      items = new Map();
      return out;
    },
  };
}
