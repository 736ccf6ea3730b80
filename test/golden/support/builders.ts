/**
 * Hand-built cluster state for rendering tests, mirroring upstream's NewFakeProxier,
 * makeTestService and makeTestEndpointSlice (pkg/proxy/iptables/proxier_test.go).
 */
import { joinHostPort } from '../../../pkg/net/ip.ts';
import type { RenderConfig, RenderState } from '../../../proxier/render.ts';
import {
  NFACCT_CT_STATE_INVALID_DROPPED,
  NFACCT_LOCALHOST_NODEPORTS_ACCEPTED,
} from '../../../proxier/render.ts';
import type { Endpoint, IPFamily, Protocol, ServicePort, SessionAffinity } from '../../../proxier/types.ts';
import { servicePortKey } from '../../../proxier/types.ts';

export const TEST_NODE_NAME = 'test-node';
export const TEST_NODE_IP = '192.168.0.2';

export interface ServicePortSpec {
  readonly ns: string;
  readonly name: string;
  /** Port name; '' for an unnamed port. */
  readonly portName?: string;
  readonly protocol?: Protocol;
  readonly clusterIP: string;
  readonly port: number;
  readonly nodePort?: number;
  readonly externalIPs?: readonly string[];
  readonly loadBalancerVIPs?: readonly string[];
  readonly loadBalancerSourceRanges?: readonly string[];
  readonly healthCheckNodePort?: number;
  readonly externalPolicyLocal?: boolean;
  readonly internalPolicyLocal?: boolean;
  readonly sessionAffinity?: SessionAffinity;
}

export function makeServicePort(spec: ServicePortSpec): ServicePort {
  const protocol = spec.protocol ?? 'TCP';
  return {
    name: { namespace: spec.ns, name: spec.name, port: spec.portName ?? 'p80', protocol },
    clusterIP: spec.clusterIP,
    port: spec.port,
    protocol,
    nodePort: spec.nodePort ?? 0,
    sessionAffinity: spec.sessionAffinity ?? { type: 'None' },
    externalIPs: spec.externalIPs ?? [],
    loadBalancerSourceRanges: spec.loadBalancerSourceRanges ?? [],
    loadBalancerVIPs: spec.loadBalancerVIPs ?? [],
    healthCheckNodePort: spec.healthCheckNodePort ?? 0,
    externalPolicyLocal: spec.externalPolicyLocal ?? false,
    internalPolicyLocal: spec.internalPolicyLocal ?? false,
    hintsAnnotation: '',
    trafficDistribution: '',
  };
}

export interface EndpointSpec {
  readonly local?: boolean;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly zoneHints?: readonly string[];
  readonly nodeHints?: readonly string[];
}

export function makeEndpoint(ip: string, port: number, spec: EndpointSpec = {}): Endpoint {
  const ready = spec.ready ?? true;
  return {
    ip,
    port,
    endpoint: joinHostPort(ip, port),
    isLocal: spec.local ?? false,
    ready,
    serving: spec.serving ?? ready,
    terminating: spec.terminating ?? false,
    zoneHints: spec.zoneHints ? new Set(spec.zoneHints) : undefined,
    nodeHints: spec.nodeHints ? new Set(spec.nodeHints) : undefined,
  };
}

/** A state from service ports and, per service port, its endpoints (sorted as the tracker does). */
export function makeState(
  services: readonly ServicePort[],
  endpoints: readonly (readonly [ServicePort, readonly Endpoint[]])[] = [],
): RenderState {
  const svcMap = new Map(services.map((s) => [servicePortKey(s.name), s] as const));
  const epMap = new Map(
    endpoints.map(
      ([svc, eps]) =>
        [
          servicePortKey(svc.name),
          [...eps].sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0)),
        ] as const,
    ),
  );
  return { services: svcMap, endpoints: epMap };
}

/** Upstream's NewFakeProxier settings: pod CIDR 10.0.0.0/8 (fd00:10::/64), both nfacct counters. */
export function fakeProxierConfig(
  family: IPFamily = 'IPv4',
  overrides: Partial<RenderConfig> = {},
): RenderConfig {
  return {
    family,
    nodeName: TEST_NODE_NAME,
    nodeIPs: [TEST_NODE_IP],
    nodeLabels: {},
    masqueradeAll: false,
    localDetector: { mode: 'ClusterCIDR', cidrs: family === 'IPv4' ? ['10.0.0.0/8'] : ['fd00:10::/64'] },
    nodePortAddresses: [],
    localAddresses: [
      '127.0.0.1',
      '::1',
      '192.168.0.2',
      '192.168.1.2',
      '192.168.99.11',
      '2001:db8::1',
      '2001:db8:1::2',
    ],
    localhostNodePorts: true,
    hasRandomFully: false,
    nfacctCounters: new Set([NFACCT_CT_STATE_INVALID_DROPPED, NFACCT_LOCALHOST_NODEPORTS_ACCEPTED]),
    tcpBeLiberal: false,
    ...overrides,
  };
}
