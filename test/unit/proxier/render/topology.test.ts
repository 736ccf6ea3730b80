import { describe, expect, it } from 'vitest';
import { categorizeEndpoints } from '../../../../proxier/topology.ts';
import type { Endpoint } from '../../../../proxier/types.ts';
import type { ServicePortSpec } from '../../../golden/support/builders.ts';
import { makeEndpoint, makeServicePort } from '../../../golden/support/builders.ts';

const NODE = 'test-node';
const ZONE_LABELS = { 'topology.kubernetes.io/zone': 'zone-a' };
const names = (eps: readonly Endpoint[]) => eps.map((e) => e.endpoint);

function svc(spec: Partial<ServicePortSpec> = {}) {
  return makeServicePort({ ns: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', port: 80, ...spec });
}

describe('categorizeEndpoints: readiness and terminating fallback', () => {
  it('Cluster policy uses only ready endpoints when there are some', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80),
      makeEndpoint('10.0.0.2', 80, { ready: false, serving: true, terminating: true }),
      makeEndpoint('10.0.0.3', 80, { ready: false, serving: false }),
    ];
    const r = categorizeEndpoints(eps, svc(), NODE, {});
    expect(names(r.clusterEndpoints)).toEqual(['10.0.0.1:80']);
    expect(names(r.localEndpoints)).toEqual([]);
    expect(names(r.allReachableEndpoints)).toEqual(['10.0.0.1:80']);
    expect(r.hasAnyEndpoints).toBe(true);
  });

  it('falls back to serving-terminating endpoints, never to non-serving ones', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80, { ready: false, serving: false, terminating: true }),
      makeEndpoint('10.0.0.2', 80, { ready: false, serving: true, terminating: true }),
      makeEndpoint('10.0.0.3', 80, { ready: false, serving: false }),
    ];
    const r = categorizeEndpoints(eps, svc(), NODE, {});
    expect(names(r.clusterEndpoints)).toEqual(['10.0.0.2:80']);
    expect(r.hasAnyEndpoints).toBe(true);
  });

  it('has no endpoints when none is ready or serving-terminating', () => {
    const eps = [makeEndpoint('10.0.0.1', 80, { ready: false, serving: false, terminating: true })];
    const r = categorizeEndpoints(eps, svc({ nodePort: 3001, externalPolicyLocal: true }), NODE, {});
    expect(r.hasAnyEndpoints).toBe(false);
    expect(r.allReachableEndpoints).toEqual([]);
  });

  it('eTP=Local: local list falls back to local serving-terminating on its own; the union is sorted', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80), // remote, ready
      makeEndpoint('10.0.0.2', 80, { local: true, ready: false, serving: true, terminating: true }),
      makeEndpoint('10.0.0.3', 80, { local: true, ready: false, serving: false, terminating: true }),
    ];
    const r = categorizeEndpoints(eps, svc({ nodePort: 3001, externalPolicyLocal: true }), NODE, {});
    expect(names(r.clusterEndpoints)).toEqual(['10.0.0.1:80']);
    expect(names(r.localEndpoints)).toEqual(['10.0.0.2:80']);
    expect(names(r.allReachableEndpoints)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
  });

  it('eTP=Local prefers ready local endpoints over terminating ones', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80, { local: true }),
      makeEndpoint('10.0.0.2', 80, { local: true, ready: false, serving: true, terminating: true }),
    ];
    const r = categorizeEndpoints(eps, svc({ nodePort: 3001, externalPolicyLocal: true }), NODE, {});
    expect(names(r.localEndpoints)).toEqual(['10.0.0.1:80']);
    expect(names(r.allReachableEndpoints)).toEqual(['10.0.0.1:80']);
  });

  it('eTP=Local on a port that is not externally accessible is ignored', () => {
    const eps = [makeEndpoint('10.0.0.1', 80), makeEndpoint('10.0.0.2', 80, { local: true })];
    const r = categorizeEndpoints(eps, svc({ externalPolicyLocal: true }), NODE, {});
    expect(names(r.localEndpoints)).toEqual([]);
    expect(names(r.clusterEndpoints)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
  });

  it('iTP=Local without external access uses only local endpoints, but knows of remote ones', () => {
    const eps = [makeEndpoint('10.0.0.1', 80), makeEndpoint('10.0.0.2', 80, { local: true })];
    const r = categorizeEndpoints(eps, svc({ internalPolicyLocal: true }), NODE, {});
    expect(names(r.clusterEndpoints)).toEqual([]);
    expect(names(r.localEndpoints)).toEqual(['10.0.0.2:80']);
    expect(names(r.allReachableEndpoints)).toEqual(['10.0.0.2:80']);

    const remoteOnly = categorizeEndpoints(
      [makeEndpoint('10.0.0.1', 80)],
      svc({ internalPolicyLocal: true }),
      NODE,
      {},
    );
    expect(remoteOnly.hasAnyEndpoints).toBe(true);
    expect(remoteOnly.allReachableEndpoints).toEqual([]);
  });
});

describe('categorizeEndpoints: topology hints', () => {
  it('uses zone hints when every ready endpoint has one and one names this zone', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80, { zoneHints: ['zone-a'] }),
      makeEndpoint('10.0.0.2', 80, { zoneHints: ['zone-b'] }),
      makeEndpoint('10.0.0.3', 80, { zoneHints: ['zone-a', 'zone-c'] }),
    ];
    expect(names(categorizeEndpoints(eps, svc(), NODE, ZONE_LABELS).clusterEndpoints)).toEqual([
      '10.0.0.1:80',
      '10.0.0.3:80',
    ]);
  });

  it('ignores zone hints when one ready endpoint lacks them, or none names the zone, or the node has no zone', () => {
    const missing = [makeEndpoint('10.0.0.1', 80, { zoneHints: ['zone-a'] }), makeEndpoint('10.0.0.2', 80)];
    expect(names(categorizeEndpoints(missing, svc(), NODE, ZONE_LABELS).clusterEndpoints)).toHaveLength(2);
    const otherZones = [
      makeEndpoint('10.0.0.1', 80, { zoneHints: ['zone-b'] }),
      makeEndpoint('10.0.0.2', 80, { zoneHints: ['zone-c'] }),
    ];
    expect(names(categorizeEndpoints(otherZones, svc(), NODE, ZONE_LABELS).clusterEndpoints)).toHaveLength(2);
    const hinted = [
      makeEndpoint('10.0.0.1', 80, { zoneHints: ['zone-a'] }),
      makeEndpoint('10.0.0.2', 80, { zoneHints: ['zone-b'] }),
    ];
    expect(names(categorizeEndpoints(hinted, svc(), NODE, {}).clusterEndpoints)).toHaveLength(2);
  });

  it('not-ready endpoints do not need hints', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80, { zoneHints: ['zone-a'] }),
      makeEndpoint('10.0.0.2', 80, { zoneHints: ['zone-b'] }),
      makeEndpoint('10.0.0.3', 80, { ready: false, serving: false }),
    ];
    expect(names(categorizeEndpoints(eps, svc(), NODE, ZONE_LABELS).clusterEndpoints)).toEqual([
      '10.0.0.1:80',
    ]);
  });

  it('node hints (PreferSameNode) win over zone hints', () => {
    const eps = [
      makeEndpoint('10.0.0.1', 80, { zoneHints: ['zone-a'], nodeHints: ['other-node'] }),
      makeEndpoint('10.0.0.2', 80, { zoneHints: ['zone-a'], nodeHints: [NODE] }),
    ];
    expect(names(categorizeEndpoints(eps, svc(), NODE, ZONE_LABELS).clusterEndpoints)).toEqual([
      '10.0.0.2:80',
    ]);
  });

  it('with topology and eTP=Local the reachable list merges both lists, sorted as strings', () => {
    const eps = [
      makeEndpoint('10.1.1.11', 11, { zoneHints: ['zone-a'] }),
      makeEndpoint('10.1.1.1', 11, { local: true, zoneHints: ['zone-b'] }),
      makeEndpoint('10.1.1.2', 11, { zoneHints: ['zone-b'] }),
    ].sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1));
    // String order: '1' < ':' so 10.1.1.11:11 sorts before 10.1.1.1:11 (TestUpdateEndpointsMap).
    expect(names(eps)).toEqual(['10.1.1.11:11', '10.1.1.1:11', '10.1.1.2:11']);
    const r = categorizeEndpoints(eps, svc({ nodePort: 3001, externalPolicyLocal: true }), NODE, ZONE_LABELS);
    expect(names(r.clusterEndpoints)).toEqual(['10.1.1.11:11']);
    expect(names(r.localEndpoints)).toEqual(['10.1.1.1:11']);
    expect(names(r.allReachableEndpoints)).toEqual(['10.1.1.11:11', '10.1.1.1:11']);
  });
});
