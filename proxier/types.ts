/**
 * The proxier's internal model: plain values derived from validated API objects. The change
 * trackers build these; rendering and conntrack cleanup read them. Nothing here refers to the
 * API types, so rendering tests can build a cluster state by hand.
 */
import type { IPFamily } from '../pkg/net/ip.ts';

export type { IPFamily };
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** A Service port, as upstream's proxy.ServicePortName: TCP and UDP port 53 are two entries. */
export interface ServicePortName {
  readonly namespace: string;
  readonly name: string;
  /** The Service port's name; empty when the port is unnamed. */
  readonly port: string;
  readonly protocol: Protocol;
}

/** Identifies a Service (all its ports): `namespace/name`. */
export type ServiceKey = string;

/**
 * Map key of a ServicePortName: `namespace/name:port/PROTOCOL`. Distinct from the upstream
 * display string (`servicePortNameString`), which leaves out the protocol.
 */
export type ServicePortKey = string;

export function serviceKey(namespace: string, name: string): ServiceKey {
  return `${namespace}/${name}`;
}

export function servicePortKey(spn: ServicePortName): ServicePortKey {
  return `${spn.namespace}/${spn.name}:${spn.port}/${spn.protocol}`;
}

/**
 * Upstream's ServicePortName.String(): `namespace/name:port`, or `namespace/name` for an unnamed
 * port. It is the `S` in rule comments and the start of every chain-name hash input.
 */
export function servicePortNameString(spn: ServicePortName): string {
  return spn.port === '' ? `${spn.namespace}/${spn.name}` : `${spn.namespace}/${spn.name}:${spn.port}`;
}

export type SessionAffinity =
  | { readonly type: 'None' }
  | { readonly type: 'ClientIP'; readonly timeoutSeconds: number };

/** One port of one Service, for one IP family (upstream's BaseServicePortInfo). */
export interface ServicePort {
  readonly name: ServicePortName;
  /** Canonical cluster IP of the proxier's family. */
  readonly clusterIP: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** 0 when the Service has no NodePort. */
  readonly nodePort: number;
  readonly sessionAffinity: SessionAffinity;
  /** External IPs of the proxier's family, canonical, in Service order. */
  readonly externalIPs: readonly string[];
  /** Source ranges of the proxier's family, canonical CIDRs. */
  readonly loadBalancerSourceRanges: readonly string[];
  /** status.loadBalancer.ingress IPs of the proxier's family, without ipMode Proxy. */
  readonly loadBalancerVIPs: readonly string[];
  /** Non-zero only for type LoadBalancer with externalTrafficPolicy Local. */
  readonly healthCheckNodePort: number;
  /** externalTrafficPolicy Local on an externally accessible Service. */
  readonly externalPolicyLocal: boolean;
  readonly internalPolicyLocal: boolean;
  /** The topology hints annotation, carried along as upstream does. */
  readonly hintsAnnotation: string;
  /** spec.trafficDistribution, empty when unset. */
  readonly trafficDistribution: string;
}

/** One endpoint of one Service port (upstream's BaseEndpointInfo). */
export interface Endpoint {
  /** Canonical IP of `addresses[0]`. */
  readonly ip: string;
  readonly port: number;
  /** `ip:port` (IPv6 bracketed): the sort key and part of the KUBE-SEP hash input. */
  readonly endpoint: string;
  /** nodeName equals this node's name. */
  readonly isLocal: boolean;
  /** conditions.ready, nil counting as true. */
  readonly ready: boolean;
  /** conditions.serving, nil counting as true. */
  readonly serving: boolean;
  /** conditions.terminating, nil counting as false. */
  readonly terminating: boolean;
  readonly zoneHints: ReadonlySet<string> | undefined;
  readonly nodeHints: ReadonlySet<string> | undefined;
}

/** ServicePortKey → port info, for every proxied Service port of one family. */
export type ServicePortMap = ReadonlyMap<ServicePortKey, ServicePort>;
/** ServicePortKey → endpoints sorted by their `endpoint` string. */
export type EndpointsMap = ReadonlyMap<ServicePortKey, readonly Endpoint[]>;
