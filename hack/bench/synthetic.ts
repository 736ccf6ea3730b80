/**
 * Synthetic clusters for the benchmarks: N ClusterIP Services (one TCP port each) with M ready
 * endpoints on other nodes, as plain API objects. The same objects feed the development API
 * server (latency runs) and, parsed with the API schemas, the proxier's change trackers (render
 * and restore runs), so both measure the real pipeline from the API boundary on.
 *
 * Every address is derived from an index, so a run is reproducible and objects can be rebuilt
 * (e.g. the "before" of an update) without keeping them.
 */
import type { KubeObject } from '../../pkg/apiserver/resources.ts';
import type { EndpointSlice, Service } from '../../pkg/k8s/schemas.ts';
import { endpointSliceSchema, SERVICE_NAME_LABEL, serviceSchema } from '../../pkg/k8s/schemas.ts';

export const BENCH_NAMESPACE = 'default';
export const SERVICE_PORT = 80;
export const TARGET_PORT = 8080;
export const PORT_NAME = 'http';
/** Endpoints are spread over this many other nodes: none is local to the proxy's node. */
const ENDPOINT_NODES = 50;
/** First endpoint index handed out by `replacementEndpointIndex`: above any cluster's own. */
export const REPLACEMENT_BASE = 2_000_000;
/** Cluster IP offsets start here inside 10.96.0.0/16 (the development API server's range). */
const CLUSTER_IP_OFFSET = 16;
/** 10.96.0.0/16 has 65,534 addresses; the largest cluster plus added Services must fit. */
export const MAX_SERVICES = 65_000;

export function serviceName(i: number): string {
  return `bench-${i}`;
}

/** Cluster IP of Service `i`, inside 10.96.0.0/16. */
export function clusterIP(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_SERVICES) throw new RangeError(`service index ${i}`);
  const o = i + CLUSTER_IP_OFFSET;
  return `10.96.${o >> 8}.${o & 0xff}`;
}

/**
 * Endpoint address number `n` as an IPv4 address in 10.128.0.0/10 (n below 2^22): the cluster's
 * own endpoints use n = service * M + j, replacements start at REPLACEMENT_BASE.
 */
export function endpointIP(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= 1 << 22) throw new RangeError(`endpoint index ${n}`);
  return `10.${128 + (n >> 16)}.${(n >> 8) & 0xff}.${n & 0xff}`;
}

/** Endpoint numbers of Service `i` in a cluster with `perService` endpoints each. */
export function endpointIndexes(i: number, perService: number): number[] {
  return Array.from({ length: perService }, (_, j) => i * perService + j);
}

/** A ClusterIP Service, as a client would create it (the cluster IP is given, not allocated). */
export function serviceObject(i: number): KubeObject {
  const ip = clusterIP(i);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(i), namespace: BENCH_NAMESPACE },
    spec: {
      type: 'ClusterIP',
      clusterIP: ip,
      clusterIPs: [ip],
      ports: [{ name: PORT_NAME, port: SERVICE_PORT, targetPort: TARGET_PORT, protocol: 'TCP' }],
    },
  };
}

/** The one EndpointSlice of Service `i`, holding the endpoints numbered `endpoints`. */
export function endpointSliceObject(i: number, endpoints: readonly number[]): KubeObject {
  return sliceWithAddresses(
    i,
    endpoints.map((n) => ({ ip: endpointIP(n), nodeName: `node-${2 + (n % ENDPOINT_NODES)}` })),
  );
}

/** The one EndpointSlice of Service `i` with the given addresses (ready, on the given nodes). */
export function sliceWithAddresses(
  i: number,
  endpoints: readonly { readonly ip: string; readonly nodeName: string }[],
): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${serviceName(i)}-slice`,
      namespace: BENCH_NAMESPACE,
      labels: { [SERVICE_NAME_LABEL]: serviceName(i) },
    },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: e.nodeName,
    })),
    ports: [{ name: PORT_NAME, port: TARGET_PORT, protocol: 'TCP' }],
  };
}

/** The API boundary, as the informers cross it. */
export function parseService(obj: unknown): Service {
  return serviceSchema.parse(obj);
}

export function parseEndpointSlice(obj: unknown): EndpointSlice {
  return endpointSliceSchema.parse(obj);
}

/** A cluster that changes: which endpoint numbers each Service has now. */
export interface SyntheticCluster {
  readonly perService: number;
  /** Services that exist now. */
  readonly size: number;
  /** Indexes of the Services that exist now, ascending. */
  serviceIndexes(): number[];
  endpointsOf(i: number): readonly number[];
  /**
   * Replaces endpoint `j` of Service `i` by a fresh address (a new KUBE-SEP chain, as a
   * rescheduled pod has); returns the new endpoint number.
   */
  replaceEndpoint(i: number, j?: number): number;
  /** Adds a Service with fresh endpoints; returns its index. */
  addService(): number;
  deleteService(i: number): void;
  /** The Service's EndpointSlice as it is now. */
  sliceObject(i: number): KubeObject;
}

/** Starts as `endpointIndexes` for every Service; new endpoints are numbered from REPLACEMENT_BASE. */
export function createSyntheticCluster(services: number, perService: number): SyntheticCluster {
  if (!Number.isInteger(services) || services < 1 || services > MAX_SERVICES) {
    throw new RangeError(`services must be an integer in 1..${MAX_SERVICES}`);
  }
  if (!Number.isInteger(perService) || perService < 1 || services * perService >= REPLACEMENT_BASE) {
    throw new RangeError('endpoints per service must be a positive integer (and the cluster < 2M endpoints)');
  }
  const endpoints = new Map<number, number[]>();
  for (let i = 0; i < services; i++) endpoints.set(i, endpointIndexes(i, perService));
  let nextReplacement = REPLACEMENT_BASE;
  let nextService = services;
  const endpointsOf = (i: number): number[] => {
    const e = endpoints.get(i);
    if (e === undefined) throw new RangeError(`service ${i} does not exist`);
    return e;
  };
  return {
    perService,
    get size() {
      return endpoints.size;
    },
    serviceIndexes: () => [...endpoints.keys()].sort((a, b) => a - b),
    endpointsOf,
    replaceEndpoint(i, j = 0) {
      const e = [...endpointsOf(i)];
      if (!Number.isInteger(j) || j < 0 || j >= e.length)
        throw new RangeError(`endpoint ${j} of service ${i}`);
      const n = nextReplacement++;
      e[j] = n;
      endpoints.set(i, e);
      return n;
    },
    addService() {
      const i = nextService;
      clusterIP(i); // throws past the range
      nextService++;
      endpoints.set(
        i,
        Array.from({ length: perService }, () => nextReplacement++),
      );
      return i;
    },
    deleteService(i) {
      endpointsOf(i);
      endpoints.delete(i);
    },
    sliceObject: (i) => endpointSliceObject(i, endpointsOf(i)),
  };
}
