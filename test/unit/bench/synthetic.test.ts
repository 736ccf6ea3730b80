import { describe, expect, it } from 'vitest';
import {
  clusterIP,
  createSyntheticCluster,
  endpointIP,
  endpointSliceObject,
  MAX_SERVICES,
  REPLACEMENT_BASE,
  serviceObject,
} from '../../../hack/bench/synthetic.ts';
import { endpointSliceSchema, serviceSchema } from '../../../pkg/k8s/schemas.ts';

describe('synthetic cluster addresses', () => {
  it('gives every Service of the largest cluster its own cluster IP inside 10.96.0.0/16', () => {
    const ips = new Set(Array.from({ length: MAX_SERVICES }, (_, i) => clusterIP(i)));
    expect(ips.size).toBe(MAX_SERVICES);
    for (const ip of [clusterIP(0), clusterIP(MAX_SERVICES - 1)]) expect(ip).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(clusterIP(MAX_SERVICES - 1)).not.toBe('10.96.255.255');
    expect(() => clusterIP(MAX_SERVICES)).toThrow(RangeError);
  });

  it('gives 100,000 endpoints and their replacements distinct addresses', () => {
    const ips = new Set<string>();
    for (let n = 0; n < 100_000; n++) ips.add(endpointIP(n));
    for (let n = REPLACEMENT_BASE; n < REPLACEMENT_BASE + 1000; n++) ips.add(endpointIP(n));
    expect(ips.size).toBe(101_000);
    expect(endpointIP(0)).toBe('10.128.0.0');
    expect(endpointIP(65_536 + 257)).toBe('10.129.1.1');
  });
});

describe('synthetic API objects', () => {
  it('pass the schemas the informers use', () => {
    const svc = serviceSchema.parse(serviceObject(42));
    expect(svc.spec.clusterIP).toBe(clusterIP(42));
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 80, protocol: 'TCP' }]);
    const slice = endpointSliceSchema.parse(endpointSliceObject(42, [210, 211]));
    expect(slice.metadata.labels?.['kubernetes.io/service-name']).toBe(svc.metadata.name);
    expect(slice.endpoints.map((e) => e.addresses[0])).toEqual([endpointIP(210), endpointIP(211)]);
    // No endpoint is on the proxy's node (node1): none is local.
    expect(slice.endpoints.every((e) => e.nodeName !== 'node1')).toBe(true);
  });
});

describe('createSyntheticCluster', () => {
  it('starts with M endpoints per Service, numbered service * M + j', () => {
    const c = createSyntheticCluster(4, 3);
    expect(c.size).toBe(4);
    expect(c.serviceIndexes()).toEqual([0, 1, 2, 3]);
    expect(c.endpointsOf(2)).toEqual([6, 7, 8]);
  });

  it('replaces one endpoint by a fresh address and leaves the others', () => {
    const c = createSyntheticCluster(4, 3);
    const n = c.replaceEndpoint(1, 2);
    expect(n).toBe(REPLACEMENT_BASE);
    expect(c.endpointsOf(1)).toEqual([3, 4, REPLACEMENT_BASE]);
    expect(c.replaceEndpoint(1, 2)).toBe(REPLACEMENT_BASE + 1);
    const slice = endpointSliceSchema.parse(c.sliceObject(1));
    expect(slice.endpoints.map((e) => e.addresses[0])).toContain(endpointIP(REPLACEMENT_BASE + 1));
    expect(() => c.replaceEndpoint(1, 3)).toThrow(RangeError);
  });

  it('adds Services after the last index and deletes them', () => {
    const c = createSyntheticCluster(2, 2);
    const i = c.addService();
    expect(i).toBe(2);
    expect(c.endpointsOf(2)).toEqual([REPLACEMENT_BASE, REPLACEMENT_BASE + 1]);
    c.deleteService(0);
    expect(c.serviceIndexes()).toEqual([1, 2]);
    expect(() => c.endpointsOf(0)).toThrow(RangeError);
    expect(c.addService()).toBe(3);
  });

  it('refuses sizes that cannot be addressed', () => {
    expect(() => createSyntheticCluster(0, 5)).toThrow(RangeError);
    expect(() => createSyntheticCluster(MAX_SERVICES + 1, 1)).toThrow(RangeError);
    expect(() => createSyntheticCluster(10, 0)).toThrow(RangeError);
  });
});
