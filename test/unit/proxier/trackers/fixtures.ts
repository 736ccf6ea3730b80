/**
 * Builders for the tracker tests. Objects go through the real zod schemas, so the trackers see
 * exactly what the informers would hand them (defaults applied, unknown fields stripped).
 */
import {
  type EndpointSlice,
  endpointSliceSchema,
  LAST_CHANGE_TRIGGER_TIME_ANNOTATION,
  type Service,
  serviceSchema,
} from '../../../../pkg/k8s/schemas.ts';
import type { Endpoint, Protocol } from '../../../../proxier/types.ts';
import { servicePortKey } from '../../../../proxier/types.ts';

export const TEST_NODE = 'test-node';

export interface PortSpec {
  name?: string;
  port: number;
  protocol?: Protocol;
  nodePort?: number;
}

/** A Service from a partial spec; `clusterIP` defaults to 172.30.0.1. */
export function makeService(
  namespace: string,
  name: string,
  spec: Record<string, unknown> & { ports?: PortSpec[] },
  extra: { annotations?: Record<string, string>; status?: Record<string, unknown> } = {},
): Service {
  return serviceSchema.parse({
    metadata: { namespace, name, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
    spec: { clusterIP: '172.30.0.1', ...spec },
    ...(extra.status ? { status: extra.status } : {}),
  });
}

export interface EndpointSpec {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  zones?: string[];
  nodes?: string[];
}

export interface SliceSpec {
  endpoints: EndpointSpec[];
  ports: { name?: string | null; port?: number | null; protocol?: Protocol }[];
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  triggerTime?: string;
  resourceVersion?: string;
}

/** Slice `<service>-<n>` of Service `namespace/service`, as upstream's makeTestEndpointSlice. */
export function makeSlice(namespace: string, service: string, n: number, spec: SliceSpec): EndpointSlice {
  return endpointSliceSchema.parse({
    metadata: {
      namespace,
      name: `${service}-${n}`,
      labels: { 'kubernetes.io/service-name': service },
      ...(spec.triggerTime
        ? { annotations: { [LAST_CHANGE_TRIGGER_TIME_ANNOTATION]: spec.triggerTime } }
        : {}),
      ...(spec.resourceVersion ? { resourceVersion: spec.resourceVersion } : {}),
    },
    addressType: spec.addressType ?? 'IPv4',
    endpoints: spec.endpoints.map((e) => ({
      addresses: [e.ip],
      ...(e.node !== undefined ? { nodeName: e.node } : {}),
      conditions: {
        ...(e.ready !== undefined ? { ready: e.ready } : {}),
        ...(e.serving !== undefined ? { serving: e.serving } : {}),
        ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
      },
      ...(e.zones || e.nodes
        ? {
            hints: {
              ...(e.zones ? { forZones: e.zones.map((z) => ({ name: z })) } : {}),
              ...(e.nodes ? { forNodes: e.nodes.map((z) => ({ name: z })) } : {}),
            },
          }
        : {}),
    })),
    ports: spec.ports,
  });
}

/** Port key of a UDP port, as the TestUpdateEndpointsMap cases use. */
export function udp(namespace: string, name: string, port: string): string {
  return servicePortKey({ namespace, name, port, protocol: 'UDP' });
}

export function tcp(namespace: string, name: string, port: string): string {
  return servicePortKey({ namespace, name, port, protocol: 'TCP' });
}

/** An endpoint as the tests expect it: `ip:port`, `L` suffix for local, default conditions. */
export function ep(
  endpoint: string,
  opts: { local?: boolean; ready?: boolean; serving?: boolean; terminating?: boolean } = {},
): Endpoint {
  const colon = endpoint.lastIndexOf(':');
  const host = endpoint.slice(0, colon).replace(/^\[|\]$/g, '');
  return {
    ip: host,
    port: Number(endpoint.slice(colon + 1)),
    endpoint,
    isLocal: opts.local ?? false,
    ready: opts.ready ?? true,
    serving: opts.serving ?? true,
    terminating: opts.terminating ?? false,
    zoneHints: undefined,
    nodeHints: undefined,
  };
}

/** A map as a plain object with each list in map order, for whole-value comparison. */
export function mapToObject<V>(m: ReadonlyMap<string, V>): Record<string, V> {
  return Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Deep-freezes a value, so any attempt by code under test to modify it throws. */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}
