/**
 * Which endpoints of a service port this node may use, as upstream's pkg/proxy/topology.go
 * (CategorizeEndpoints, with PreferSameNode). "Usable" means Ready, falling back to
 * Serving+Terminating endpoints when none is Ready, decided separately for the Cluster and Local
 * lists (KEP-1669). Topology hints are honoured whenever every ready endpoint carries them and at
 * least one names this node (node hints) or its zone (zone hints).
 */
import { TOPOLOGY_ZONE_LABEL } from '../pkg/k8s/schemas.ts';
import type { Endpoint, ServicePort } from './types.ts';

/** NodePort, external IPs or LB VIPs: the port takes traffic from outside the cluster. */
export function externallyAccessible(svc: ServicePort): boolean {
  return svc.nodePort !== 0 || svc.loadBalancerVIPs.length > 0 || svc.externalIPs.length > 0;
}

/** eTP=Local only matters when the port is externally accessible. */
export function externalPolicyLocal(svc: ServicePort): boolean {
  return svc.externalPolicyLocal && externallyAccessible(svc);
}

/**
 * Cluster endpoints are needed for iTP=Cluster and for any external traffic (even under eTP=Local,
 * the short-circuit rules for pod and host traffic go to the cluster-wide chain).
 */
export function usesClusterEndpoints(svc: ServicePort): boolean {
  return !svc.internalPolicyLocal || externallyAccessible(svc);
}

export function usesLocalEndpoints(svc: ServicePort): boolean {
  return svc.internalPolicyLocal || externalPolicyLocal(svc);
}

export interface CategorizedEndpoints {
  /** Usable endpoints under Cluster policy (empty when the port never uses Cluster policy). */
  readonly clusterEndpoints: readonly Endpoint[];
  /** Usable node-local endpoints under Local policy (empty when never used). */
  readonly localEndpoints: readonly Endpoint[];
  /** Union of the two: the endpoints that get a KUBE-SEP chain, sorted by `endpoint`. */
  readonly allReachableEndpoints: readonly Endpoint[];
  /** Some usable endpoint exists anywhere in the cluster (maybe none reachable from here). */
  readonly hasAnyEndpoints: boolean;
}

type TopologyMode = '' | 'PreferSameZone' | 'PreferSameNode';

function topologyModeFromHints(endpoints: readonly Endpoint[], nodeName: string, zone: string): TopologyMode {
  let hasEndpointForNode = false;
  let allHaveNodeHints = true;
  let hasEndpointForZone = false;
  let allHaveZoneHints = true;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    if (!ep.nodeHints || ep.nodeHints.size === 0) allHaveNodeHints = false;
    else if (ep.nodeHints.has(nodeName)) hasEndpointForNode = true;
    if (!ep.zoneHints || ep.zoneHints.size === 0) allHaveZoneHints = false;
    else if (ep.zoneHints.has(zone)) hasEndpointForZone = true;
  }
  // PreferSameTrafficDistribution is on by default upstream (beta in 1.33), so node hints are
  // always considered here.
  if (allHaveNodeHints && hasEndpointForNode) return 'PreferSameNode';
  if (allHaveZoneHints && hasEndpointForZone) return 'PreferSameZone';
  return '';
}

function availableForTopology(ep: Endpoint, mode: TopologyMode, nodeName: string, zone: string): boolean {
  switch (mode) {
    case '':
      return true;
    case 'PreferSameNode':
      return ep.nodeHints?.has(nodeName) ?? false;
    case 'PreferSameZone':
      return ep.zoneHints?.has(zone) ?? false;
  }
}

function servingTerminating(ep: Endpoint): boolean {
  return ep.serving && ep.terminating;
}

/**
 * Splits a service port's endpoints (sorted by `endpoint`) into the Cluster and Local lists.
 * `nodeLabels` supplies the zone (`topology.kubernetes.io/zone`). Unlike upstream, the merged
 * list is sorted, so that rendering stays deterministic.
 */
export function categorizeEndpoints(
  endpoints: readonly Endpoint[],
  svc: ServicePort,
  nodeName: string,
  nodeLabels: Readonly<Record<string, string>>,
): CategorizedEndpoints {
  let clusterEndpoints: readonly Endpoint[] = [];
  let localEndpoints: readonly Endpoint[] = [];
  let hasAnyEndpoints = false;
  let topologyMode: TopologyMode = '';
  let localUsesTerminating = false;

  const useCluster = usesClusterEndpoints(svc);
  if (useCluster) {
    const zone = nodeLabels[TOPOLOGY_ZONE_LABEL] ?? '';
    topologyMode = topologyModeFromHints(endpoints, nodeName, zone);
    clusterEndpoints = endpoints.filter(
      (ep) => ep.ready && availableForTopology(ep, topologyMode, nodeName, zone),
    );
    // Topology was already ignored if no ready endpoint matched it, so an empty list here means
    // no endpoint is ready anywhere: fall back to serving-terminating ones (topology ignored).
    if (clusterEndpoints.length === 0) clusterEndpoints = endpoints.filter(servingTerminating);
    hasAnyEndpoints = clusterEndpoints.length > 0;
  }

  if (!usesLocalEndpoints(svc)) {
    return { clusterEndpoints, localEndpoints, allReachableEndpoints: clusterEndpoints, hasAnyEndpoints };
  }

  let hasLocalReady = false;
  let hasLocalServingTerminating = false;
  for (const ep of endpoints) {
    if (ep.ready) {
      hasAnyEndpoints = true;
      if (ep.isLocal) hasLocalReady = true;
    } else if (servingTerminating(ep)) {
      hasAnyEndpoints = true;
      if (ep.isLocal) hasLocalServingTerminating = true;
    }
  }
  if (hasLocalReady) {
    localEndpoints = endpoints.filter((ep) => ep.isLocal && ep.ready);
  } else if (hasLocalServingTerminating) {
    localUsesTerminating = true;
    localEndpoints = endpoints.filter((ep) => ep.isLocal && servingTerminating(ep));
  }

  if (!useCluster) {
    return { clusterEndpoints, localEndpoints, allReachableEndpoints: localEndpoints, hasAnyEndpoints };
  }
  if (topologyMode === '' && !localUsesTerminating) {
    // clusterEndpoints holds every ready endpoint and localEndpoints only ready local ones.
    return { clusterEndpoints, localEndpoints, allReachableEndpoints: clusterEndpoints, hasAnyEndpoints };
  }
  const merged = new Map<string, Endpoint>();
  for (const ep of clusterEndpoints) merged.set(ep.endpoint, ep);
  for (const ep of localEndpoints) merged.set(ep.endpoint, ep);
  const allReachableEndpoints = [...merged.values()].sort((a, b) =>
    a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0,
  );
  return { clusterEndpoints, localEndpoints, allReachableEndpoints, hasAnyEndpoints };
}
