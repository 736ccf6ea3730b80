/**
 * The targeted flushes of one sync, computed from what the change trackers report (pure). They
 * name the flows that one sync's changes made stale, before any table is read:
 *
 * - empty-to-serving (PR #48524, widened): a UDP/SCTP service port whose endpoints THIS NODE
 *   would send to went from none to some. Packets that arrived while there was no DNAT rule
 *   created un-NATed entries that keep a client's stream away from the new endpoints forever
 *   (#48370). Counted on serving endpoints only (#105657), and per frontend with that frontend's
 *   policy: the cluster IP with internalTrafficPolicy, external IPs, LB IPs and the NodePort
 *   with externalTrafficPolicy (#126934). Flows to all of the port's frontends are flushed.
 * - endpoint-gone (#22573): an endpoint that received traffic and no longer does (gone, or no
 *   longer serving, #125467): flows to the port's frontends DNATed to it.
 * - service-deleted (#141371): a removed service port (service deleted, port removed, frontend
 *   changed): every flow to its old frontends.
 *
 * One rule holds over all three: a flow whose reply source is a serving endpoint of a current
 * frontend is never deleted. That is what keeps a proxy restart from cutting healthy flows
 * (#122740: on the first sync every port looks newly serving), and a port renamed in place
 * (reported as deleted) from flushing live flows of the same address.
 */
import type { EndpointsMapUpdateResult } from '../proxier/endpointsmap.ts';
import type { ServiceMapUpdateResult } from '../proxier/servicemap.ts';
import { type EndpointsMap, type ServicePort, type ServicePortMap, serviceKey } from '../proxier/types.ts';
import {
  buildFrontendIndex,
  type CleanedProtocol,
  dnatTargets,
  externalAddresses,
  type FlowKeys,
  type FrontendIndex,
  type FrontendKey,
  flowKeys,
  frontendKey,
  isCleanedProtocol,
  type NodeInfo,
  type NodePortKey,
  nodePortKey,
} from './frontends.ts';
import type { ConntrackFlow } from './netlink/types.ts';

export type StaleReason = 'empty-to-serving' | 'endpoint-gone' | 'service-deleted';

/** Which reason wins when one flow matches several filters: the broadest cause. */
const PRIORITY: Readonly<Record<StaleReason, number>> = {
  'service-deleted': 3,
  'endpoint-gone': 2,
  'empty-to-serving': 1,
};

export interface StaleFilters {
  /** Flush every flow to this frontend (serving endpoints of a live frontend excepted). */
  readonly frontends: ReadonlyMap<FrontendKey, StaleReason>;
  /** Same for a NodePort, on the node's own addresses. */
  readonly nodePorts: ReadonlyMap<NodePortKey, StaleReason>;
  /** `frontendKey>endpoint`: flows to the frontend DNATed to that endpoint (endpoint-gone). */
  readonly frontendEndpoints: ReadonlySet<string>;
  /** `nodePortKey>endpoint`: same for a NodePort. */
  readonly nodePortEndpoints: ReadonlySet<string>;
  /** Protocols some filter applies to: the tables that must be dumped. */
  readonly protocols: ReadonlySet<CleanedProtocol>;
  /** The current frontends, for the never-touch-a-serving-endpoint rule. */
  readonly live: FrontendIndex;
  /** The node's own addresses (canonical): where a NodePort can be reached. */
  readonly localIPs: ReadonlySet<string>;
  /**
   * UDP/SCTP ports of services changed this sync that still exist. Their frontends may be new
   * (service created after its slices, external IP or NodePort added, policy changed), which no
   * endpoint event reports, so the cleaner reconciles when this is non-zero.
   */
  readonly changedServicePorts: number;
}

export interface StaleNode extends NodeInfo {
  /** The node's own addresses of this family: NodePort flows are those sent to one of them. */
  readonly localIPs: ReadonlySet<string> | readonly string[];
}

interface MutableFilters {
  frontends: Map<FrontendKey, StaleReason>;
  nodePorts: Map<NodePortKey, StaleReason>;
  frontendEndpoints: Set<string>;
  nodePortEndpoints: Set<string>;
  protocols: Set<CleanedProtocol>;
}

function setReason<K>(map: Map<K, StaleReason>, key: K, reason: StaleReason): void {
  const had = map.get(key);
  if (had === undefined || PRIORITY[reason] > PRIORITY[had]) map.set(key, reason);
}

/** Flushes every flow to the port's frontends (those reached with the given policies). */
function flushFrontends(
  f: MutableFilters,
  svc: ServicePort,
  reason: StaleReason,
  which: { internal: boolean; external: boolean },
): void {
  f.protocols.add(svc.protocol as CleanedProtocol);
  if (which.internal && svc.clusterIP !== '')
    setReason(f.frontends, frontendKey(svc.clusterIP, svc.port, svc.protocol), reason);
  if (!which.external) return;
  for (const ip of externalAddresses(svc))
    setReason(f.frontends, frontendKey(ip, svc.port, svc.protocol), reason);
  if (svc.nodePort !== 0) setReason(f.nodePorts, nodePortKey(svc.nodePort, svc.protocol), reason);
}

function flushEndpoint(f: MutableFilters, svc: ServicePort, endpoint: string): void {
  f.protocols.add(svc.protocol as CleanedProtocol);
  const frontends =
    svc.clusterIP === '' ? externalAddresses(svc) : [svc.clusterIP, ...externalAddresses(svc)];
  for (const ip of frontends)
    f.frontendEndpoints.add(`${frontendKey(ip, svc.port, svc.protocol)}>${endpoint}`);
  if (svc.nodePort !== 0) f.nodePortEndpoints.add(`${nodePortKey(svc.nodePort, svc.protocol)}>${endpoint}`);
}

/**
 * The targeted filters of one sync (pure). `serviceMap` and `endpointsMap` are the proxier's
 * maps after the update that produced `svcResult` and `epResult`; `live` may be passed when the
 * caller already built the index from them (the cleaner does, for the reconciler).
 */
export function staleFlowFilters(
  svcResult: ServiceMapUpdateResult,
  epResult: EndpointsMapUpdateResult,
  serviceMap: ServicePortMap,
  endpointsMap: EndpointsMap,
  node: StaleNode,
  live: FrontendIndex = buildFrontendIndex(serviceMap, endpointsMap, node),
): StaleFilters {
  const f: MutableFilters = {
    frontends: new Map(),
    nodePorts: new Map(),
    frontendEndpoints: new Set(),
    nodePortEndpoints: new Set(),
    protocols: new Set(),
  };

  // Empty to serving, per frontend policy. Ports absent from `current` have no endpoints now.
  // Both sides are judged with the port's current policies: a policy change alone is not an
  // endpoint event, and the reconciler covers it (changedServicePorts).
  for (const [key, after] of epResult.current) {
    const svc = serviceMap.get(key);
    if (svc === undefined || !isCleanedProtocol(svc.protocol)) continue;
    const before = dnatTargets(svc, epResult.previous.get(key) ?? [], node);
    const now = dnatTargets(svc, after, node);
    const internal = before.internal.length === 0 && now.internal.length > 0;
    const external = now.external.some(
      (group, i) => group.length > 0 && (before.external[i]?.length ?? 0) === 0,
    );
    if (internal || external) flushFrontends(f, svc, 'empty-to-serving', { internal, external });
  }

  for (const { servicePortKey, endpoint } of epResult.staleEndpoints) {
    const svc = serviceMap.get(servicePortKey);
    // A port that is gone from the service map is in deletedServicePorts, flushed whole below.
    if (svc === undefined || !isCleanedProtocol(svc.protocol)) continue;
    flushEndpoint(f, svc, endpoint.endpoint);
  }

  for (const svc of svcResult.deletedServicePorts) {
    if (!isCleanedProtocol(svc.protocol)) continue;
    flushFrontends(f, svc, 'service-deleted', { internal: true, external: true });
  }

  let changedServicePorts = 0;
  for (const svc of serviceMap.values()) {
    if (!isCleanedProtocol(svc.protocol)) continue;
    if (svcResult.updatedServices.has(serviceKey(svc.name.namespace, svc.name.name))) changedServicePorts++;
  }

  return { ...f, live, localIPs: new Set(node.localIPs), changedServicePorts };
}

/** Whether any targeted filter is set (the table must be read this sync). */
export function hasTargetedWork(filters: StaleFilters): boolean {
  return (
    filters.frontends.size > 0 ||
    filters.nodePorts.size > 0 ||
    filters.frontendEndpoints.size > 0 ||
    filters.nodePortEndpoints.size > 0
  );
}

/**
 * Filters left over from a call that could not finish (dump or delete failed), merged into the
 * next call's: the events that produced them will not come again. Safe because a flow pointing
 * at a serving endpoint of a live frontend is spared whatever the filter says, and the live index
 * and local addresses are taken from `newer`.
 */
export function mergeStaleFilters(older: StaleFilters, newer: StaleFilters): StaleFilters {
  const frontends = new Map(older.frontends);
  for (const [k, r] of newer.frontends) setReason(frontends, k, r);
  const nodePorts = new Map(older.nodePorts);
  for (const [k, r] of newer.nodePorts) setReason(nodePorts, k, r);
  return {
    frontends,
    nodePorts,
    frontendEndpoints: new Set([...older.frontendEndpoints, ...newer.frontendEndpoints]),
    nodePortEndpoints: new Set([...older.nodePortEndpoints, ...newer.nodePortEndpoints]),
    protocols: new Set([...older.protocols, ...newer.protocols]),
    live: newer.live,
    localIPs: newer.localIPs,
    changedServicePorts: newer.changedServicePorts,
  };
}

function strongest(a: StaleReason | undefined, b: StaleReason | undefined): StaleReason | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return PRIORITY[b] > PRIORITY[a] ? b : a;
}

/**
 * Why the targeted filters delete this flow, or undefined. O(1): a few map lookups. TCP flows
 * never match. `keys` may be passed when the caller already computed them with the same local
 * addresses. NodePort filters apply only to flows sent to one of the node's own addresses;
 * the same port on another host is someone else's.
 */
export function matchStale(
  flow: ConntrackFlow,
  filters: StaleFilters,
  keys: FlowKeys = flowKeys(flow, filters.localIPs),
): StaleReason | undefined {
  if (!isCleanedProtocol(flow.protocol)) return undefined;
  let reason: StaleReason | undefined;

  const liveFrontend = filters.live.frontends.get(keys.frontend);
  if (liveFrontend === undefined || !liveFrontend.serving.has(keys.endpoint)) {
    reason = filters.frontends.get(keys.frontend);
    if (filters.frontendEndpoints.has(`${keys.frontend}>${keys.endpoint}`))
      reason = strongest(reason, 'endpoint-gone');
  }
  if (keys.nodePort !== undefined) {
    const liveNodePort = filters.live.nodePorts.get(keys.nodePort);
    if (liveNodePort === undefined || !liveNodePort.serving.has(keys.endpoint)) {
      reason = strongest(reason, filters.nodePorts.get(keys.nodePort));
      if (filters.nodePortEndpoints.has(`${keys.nodePort}>${keys.endpoint}`))
        reason = strongest(reason, 'endpoint-gone');
    }
  }
  return reason;
}
