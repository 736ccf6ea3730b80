/**
 * The measurement flow of sync.ts against the in-memory iptables (kernel semantics of
 * `--noflush`, chain references and `-X`; the incremental renderer's own wrapper lets it edit
 * existing chains without a `:CHAIN` line, as the kernel does): every step runs, partial renders are incremental where
 * they must be, the upstream-style render rewrites, and the rule counts agree. Times are not
 * asserted: they are what the benchmark reports, not what a test can judge.
 */
import { describe, expect, it } from 'vitest';
import { sepChainOf } from '../../../hack/bench/latency.ts';
import { benchRenderConfig, countRules, measureSync } from '../../../hack/bench/sync.ts';
import {
  createSyntheticCluster,
  parseEndpointSlice,
  parseService,
  serviceObject,
} from '../../../hack/bench/synthetic.ts';
import { createEndpointsChangeTracker } from '../../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../../proxier/endpointsmap.ts';
import { renderRules } from '../../../proxier/render.ts';
import { createServiceChangeTracker } from '../../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../../proxier/servicemap.ts';
import { createNoflushFake } from '../proxier/incremental/noflush-fake.ts';

describe('measureSync on the fake iptables', () => {
  it('runs every step with consistent counts and O(changes) partial payloads', async () => {
    const ipt = createNoflushFake('IPv4');
    const steps: string[] = [];
    const r = await measureSync({
      services: 120,
      endpointsPerService: 4,
      iptables: ipt,
      reps: 2,
      trackerChanges: 300,
      progress: (s) => steps.push(s),
    });
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(steps).toEqual([
      'load',
      'full',
      'partial',
      'one-rule',
      'upstream-style',
      'add-delete',
      'verify',
      'tracker',
    ]);
    // ClusterIP Services with Cluster policy: per Service 1 KUBE-SERVICES rule, a SVC chain with
    // one masquerade rule and one jump per endpoint, and 2 rules per SEP chain.
    const perService = 1 + 1 + 4 + 2 * 4;
    expect(r.natRulesFull - 120 * perService).toBeGreaterThan(0);
    expect(r.natRulesFull - 120 * perService).toBeLessThan(10);
    // 2 Services added (4 endpoints each), 2 deleted: the kernel count is back where it was.
    expect(r.kernelNatRules).toBe(r.natRulesFull);
    expect(r.rendererNatRules).toBe(r.kernelNatRules);
    expect(r.payloadPartialBytes).toBeGreaterThan(0);
    expect(r.payloadPartialBytes).toBeLessThan(r.payloadUpstreamStylePartialBytes);
    expect(r.payloadUpstreamStylePartialBytes).toBeLessThan(r.payloadFullBytes);
    expect(r.payloadDeleteBytes).toBeGreaterThan(0);
    expect(r.payloadAddBytes).toBeGreaterThan(0);
    expect(r.trackerChanges).toBe(300);
    expect(r.restoreFullCpuMs).toBeNull();
    expect(r.rssPeakMB).toBeGreaterThan(0);
  });

  it('the partial payload does not grow with the cluster', async () => {
    const small = await measureSync({
      services: 30,
      endpointsPerService: 3,
      iptables: createNoflushFake('IPv4'),
      reps: 1,
      trackerChanges: 10,
    });
    const big = await measureSync({
      // 990 endpoints: like the small one, below the large-cluster threshold (which drops comments).
      services: 330,
      endpointsPerService: 3,
      iptables: createNoflushFake('IPv4'),
      reps: 1,
      trackerChanges: 10,
    });
    expect(big.payloadFullBytes).toBeGreaterThan(10 * small.payloadFullBytes);
    // Service names differ in length (bench-7 vs bench-407): a few bytes, not a factor.
    expect(Math.abs(big.payloadPartialBytes - small.payloadPartialBytes)).toBeLessThan(64);
  });
});

describe('countRules', () => {
  it('counts -A lines only', () => {
    expect(countRules('*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\n-A X -j Y\nCOMMIT\n')).toBe(
      2,
    );
  });
});

describe('sepChainOf', () => {
  it('names the KUBE-SEP chain the renderer writes for that endpoint', () => {
    const cluster = createSyntheticCluster(3, 2);
    const n = cluster.replaceEndpoint(1, 0);
    const st = createServiceChangeTracker('IPv4');
    const et = createEndpointsChangeTracker({ family: 'IPv4', nodeName: 'node1' });
    for (const i of cluster.serviceIndexes()) {
      st.update(undefined, parseService(serviceObject(i)));
      et.endpointSliceUpdate(parseEndpointSlice(cluster.sliceObject(i)), false);
    }
    const sm = createServiceMap();
    const em = createEndpointsMap();
    sm.update(st);
    em.update(et);
    const r = renderRules({ services: sm.ports, endpoints: em.endpoints }, benchRenderConfig(), {
      full: true,
    });
    expect(r.payload).toContain(`:${sepChainOf(1, n)} - [0:0]`);
    expect(r.payload).toContain(`-A ${sepChainOf(1, n)} `);
    expect(r.payload).not.toContain(sepChainOf(1, 2)); // the endpoint it replaced
  });
});
