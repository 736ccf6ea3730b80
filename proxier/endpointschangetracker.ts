/**
 * Collects EndpointSlice events between two syncs for one IP family (upstream's
 * EndpointsChangeTracker, pkg/proxy/endpointschangetracker.go): filters by address type, feeds
 * the slice cache, and remembers the trigger times that the network-programming-latency metric
 * measures from.
 */
import type { EndpointSlice } from '../pkg/k8s/schemas.ts';
import { LAST_CHANGE_TRIGGER_TIME_ANNOTATION } from '../pkg/k8s/schemas.ts';
import type { IPFamily } from '../pkg/net/ip.ts';
import {
  createEndpointSliceCache,
  type EndpointSliceCache,
  type EndpointsChange,
  sliceServiceKey,
} from './endpointslicecache.ts';
import type { ServiceKey } from './types.ts';

export interface EndpointsChangeTrackerOptions {
  readonly family: IPFamily;
  /** This node's name: endpoints whose nodeName equals it are local. Empty means none is. */
  readonly nodeName: string;
  /**
   * When the tracker started; trigger times at or before it are ignored, since their latency
   * would include time before this process existed. Defaults to now (injected for tests).
   */
  readonly startTime?: Date;
}

export interface EndpointsCheckout {
  readonly changes: ReadonlyMap<ServiceKey, EndpointsChange>;
  readonly lastChangeTriggerTimes: Map<ServiceKey, Date[]>;
}

export interface EndpointsChangeTracker {
  readonly family: IPFamily;
  /**
   * Records an EndpointSlice add/update (`removed` false) or deletion. Returns whether THIS
   * event was stored as a change needing a sync; unlike `ServiceChangeTracker.update`, which
   * says whether any change is pending at all. Slices of another address type (the other
   * family, or FQDN) and slices without the service-name label are ignored (false). An event
   * that takes a slice back to its state at the last sync cancels the pending change and also
   * returns false: the event that made the change already asked for a sync.
   */
  endpointSliceUpdate(slice: EndpointSlice, removed: boolean): boolean;
  /** Number of Services with pending slice changes. */
  pendingCount(): number;
  /** Hands over the pending changes and trigger times and forgets them. */
  checkout(): EndpointsCheckout;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The `endpoints.kubernetes.io/last-change-trigger-time` annotation (RFC 3339 with optional
 * fractional seconds; JavaScript keeps milliseconds), or undefined when absent or malformed.
 */
export function lastChangeTriggerTime(slice: EndpointSlice): Date | undefined {
  const value = slice.metadata.annotations?.[LAST_CHANGE_TRIGGER_TIME_ANNOTATION];
  if (value === undefined || !RFC3339.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

export function createEndpointsChangeTracker(options: EndpointsChangeTrackerOptions): EndpointsChangeTracker {
  const { family, nodeName } = options;
  const startMs = (options.startTime ?? new Date()).getTime();
  const cache: EndpointSliceCache = createEndpointSliceCache(nodeName);
  let triggerTimes = new Map<ServiceKey, Date[]>();

  return {
    family,
    endpointSliceUpdate(slice, removed) {
      if (slice.addressType !== family) return false;
      const key = sliceServiceKey(slice);
      if (key === undefined) return false;
      const outcome = cache.updatePending(slice, removed);
      if (outcome === 'unchanged') return false;
      if (removed) {
        // A deleted slice's annotation is the time of its last update, not of this change;
        // upstream drops the Service's times rather than report a wrong latency (#81360).
        triggerTimes.delete(key);
        return outcome === 'stored';
      }
      if (outcome === 'cancelled') return false;
      const t = lastChangeTriggerTime(slice);
      if (t !== undefined && t.getTime() > startMs) {
        const list = triggerTimes.get(key);
        if (list === undefined) triggerTimes.set(key, [t]);
        else list.push(t);
      }
      return true;
    },
    pendingCount: () => cache.pendingCount(),
    checkout() {
      const lastChangeTriggerTimes = triggerTimes;
      triggerTimes = new Map();
      return { changes: cache.checkoutChanges(), lastChangeTriggerTimes };
    },
  };
}
