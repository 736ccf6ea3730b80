/**
 * The service frontends of one IP family as conntrack cleanup sees them: every address:port a
 * UDP or SCTP flow can be sent to and get DNATed by our rules (cluster IP, external IPs, load
 * balancer IPs, and NodePorts on the node's own addresses), each with the endpoints a flow to it
 * may legitimately point at. Built once per sync in O(service ports + endpoints) and held in
 * maps, so that classifying a flow costs two string keys and two hash lookups (upstream's first
 * reconciler built one filter per flow and matched every flow against every filter, #135323).
 */
import { joinHostPort } from '../pkg/net/ip.ts';
import { categorizeEndpoints, externalPolicyLocal } from '../proxier/topology.ts';
import type { Endpoint, EndpointsMap, Protocol, ServicePort, ServicePortMap } from '../proxier/types.ts';
import type { ConntrackFlow } from './netlink/types.ts';

/** Protocols whose conntrack entries we clean. TCP is never touched: it would break graceful termination (#101607). */
export type CleanedProtocol = 'UDP' | 'SCTP';
export const CLEANED_PROTOCOLS: readonly CleanedProtocol[] = ['UDP', 'SCTP'];

export function isCleanedProtocol(p: Protocol | string): p is CleanedProtocol {
  return p === 'UDP' || p === 'SCTP';
}

/** `ip:port/PROTO` (IPv6 bracketed): a frontend address as the original destination of a flow. */
export type FrontendKey = string;
/** `nodePort/PROTO`: a NodePort on any of the node's own addresses. */
export type NodePortKey = string;

export function frontendKey(ip: string, port: number, protocol: string): FrontendKey {
  return `${joinHostPort(ip, port)}/${protocol}`;
}

export function nodePortKey(port: number, protocol: string): NodePortKey {
  return `${port}/${protocol}`;
}

/** The node the proxy runs on: its name and labels decide which endpoints it uses (topology, Local policies). */
export interface NodeInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface FrontendState {
  /**
   * `ip:port` of every serving endpoint of the service port(s) behind this frontend, whatever
   * the traffic policy, topology or terminating state (upstream's IsServing set). A flow whose
   * reply source is one of them reaches a live backend and is never deleted: a policy change
   * must not cut existing flows, and a serving-terminating pod is still draining (#108523).
   */
  readonly serving: ReadonlySet<string>;
  /**
   * Whether this node now DNATs new flows to this frontend to some endpoint, judged with the
   * frontend's own traffic policy (cluster IP: internal; external IPs, LB IPs, NodePort:
   * external). When false a new packet is rejected or dropped, so an un-NATed entry is not yet a
   * blackhole (see reconciler.ts).
   */
  readonly hasTargets: boolean;
}

export interface FrontendIndex {
  readonly frontends: ReadonlyMap<FrontendKey, FrontendState>;
  readonly nodePorts: ReadonlyMap<NodePortKey, FrontendState>;
  /** Protocols that have at least one frontend: only these tables are worth dumping. */
  readonly protocols: ReadonlySet<CleanedProtocol>;
}

/**
 * Which endpoints this node sends new flows to, per kind of frontend. Internal traffic follows
 * internalTrafficPolicy. External traffic under externalTrafficPolicy Local has two groups:
 * clients outside the node reach only local endpoints, while pods and the node itself are
 * short-circuited to the cluster-wide endpoints (upstream's KUBE-EXT chain), so either group
 * counts.
 */
export interface DnatTargets {
  readonly internal: readonly Endpoint[];
  readonly external: readonly (readonly Endpoint[])[];
}

export function dnatTargets(svc: ServicePort, endpoints: readonly Endpoint[], node: NodeInfo): DnatTargets {
  const cat = categorizeEndpoints(endpoints, svc, node.name, node.labels);
  const internal = svc.internalPolicyLocal ? cat.localEndpoints : cat.clusterEndpoints;
  const external = externalPolicyLocal(svc)
    ? [cat.localEndpoints, cat.clusterEndpoints]
    : [cat.clusterEndpoints];
  return { internal, external };
}

/** Every address of a service port reached with the external policy (external IPs, then LB IPs). */
export function externalAddresses(svc: ServicePort): readonly string[] {
  return [...svc.externalIPs, ...svc.loadBalancerVIPs];
}

function addState<K>(map: Map<K, FrontendState>, key: K, state: FrontendState): void {
  const had = map.get(key);
  if (had === undefined) {
    map.set(key, state);
    return;
  }
  // Two service ports claiming one frontend is a misconfiguration, but whichever rule wins, a
  // flow to an endpoint of either is healthy: merge, never narrow.
  map.set(key, {
    serving: new Set([...had.serving, ...state.serving]),
    hasTargets: had.hasTargets || state.hasTargets,
  });
}

/** Builds the index from the proxier's current maps (one family). Pure. */
export function buildFrontendIndex(
  serviceMap: ServicePortMap,
  endpointsMap: EndpointsMap,
  node: NodeInfo,
): FrontendIndex {
  const frontends = new Map<FrontendKey, FrontendState>();
  const nodePorts = new Map<NodePortKey, FrontendState>();
  const protocols = new Set<CleanedProtocol>();
  for (const [key, svc] of serviceMap) {
    if (!isCleanedProtocol(svc.protocol)) continue;
    protocols.add(svc.protocol);
    const endpoints = endpointsMap.get(key) ?? [];
    const targets = dnatTargets(svc, endpoints, node);
    const serving = new Set<string>();
    for (const ep of endpoints) if (ep.serving) serving.add(ep.endpoint);
    // A target is serving by definition (ready, or serving-terminating); keep it even if the
    // slice said otherwise.
    for (const ep of targets.internal) serving.add(ep.endpoint);
    for (const group of targets.external) for (const ep of group) serving.add(ep.endpoint);

    if (svc.clusterIP !== '') {
      addState(frontends, frontendKey(svc.clusterIP, svc.port, svc.protocol), {
        serving,
        hasTargets: targets.internal.length > 0,
      });
    }
    const external = { serving, hasTargets: targets.external.some((g) => g.length > 0) };
    for (const ip of externalAddresses(svc))
      addState(frontends, frontendKey(ip, svc.port, svc.protocol), external);
    if (svc.nodePort !== 0) addState(nodePorts, nodePortKey(svc.nodePort, svc.protocol), external);
  }
  return { frontends, nodePorts, protocols };
}

/** The keys a flow is looked up by: where it was sent, and which endpoint answers it. */
export interface FlowKeys {
  readonly frontend: FrontendKey;
  /** Set only when the flow was sent to one of the node's own addresses. */
  readonly nodePort: NodePortKey | undefined;
  /** `reply.src:reply.srcPort`: the endpoint the flow was DNATed to (the frontend itself if not). */
  readonly endpoint: string;
}

export function flowKeys(flow: ConntrackFlow, localIPs: ReadonlySet<string>): FlowKeys {
  const { original, reply } = flow;
  return {
    frontend: frontendKey(original.dst, original.dstPort, flow.protocol),
    nodePort: localIPs.has(original.dst) ? nodePortKey(original.dstPort, flow.protocol) : undefined,
    endpoint: joinHostPort(reply.src, reply.srcPort),
  };
}

/**
 * An entry that was never DNATed: the answer is expected from the address the client sent to.
 * That is what a packet creates when it arrives while no DNAT rule exists for its destination.
 */
export function isUnNATed(flow: ConntrackFlow): boolean {
  return flow.reply.src === flow.original.dst && flow.reply.srcPort === flow.original.dstPort;
}
