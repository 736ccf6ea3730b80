/**
 * The targeted filters of one sync (pure): which frontends and (frontend, endpoint) pairs the
 * change results name, per traffic policy, and how a flow is matched against them.
 */
import { describe, expect, it } from 'vitest';
import type { ConntrackFlow } from '../../../conntrack/netlink/types.ts';
import {
  hasTargetedWork,
  matchStale,
  mergeStaleFilters,
  type StaleFilters,
  staleFlowFilters,
} from '../../../conntrack/stale.ts';
import type { Service } from '../../../pkg/k8s/schemas.ts';
import { createEndpointsChangeTracker } from '../../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../../proxier/endpointsmap.ts';
import { createServiceChangeTracker } from '../../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../../proxier/servicemap.ts';
import type { Protocol } from '../../../proxier/types.ts';
import { type EndpointSpec, makeService, makeSlice } from '../proxier/trackers/fixtures.ts';
import { dnat, NODE, NODE_IP, OTHER_HOST_IP, OTHER_NODE, unNATed } from './harness.ts';

const CIP = '172.30.0.10';
const LB = '1.2.3.4';
const A = '10.1.0.1';
const B = '10.1.0.2';
const R = '10.2.0.9'; // on another node

/** Trackers and maps; each `step` applies the pending changes and returns that sync's filters. */
function pipeline() {
  const st = createServiceChangeTracker('IPv4');
  const et = createEndpointsChangeTracker({ family: 'IPv4', nodeName: NODE, startTime: new Date(0) });
  const sm = createServiceMap();
  const em = createEndpointsMap();
  const services = new Map<string, Service>();
  return {
    service(
      name: string,
      spec: Parameters<typeof makeService>[2] | undefined,
      status?: Record<string, unknown>,
    ) {
      const old = services.get(name);
      const cur = spec && makeService('ns', name, spec, status ? { status } : {});
      if (cur) services.set(name, cur);
      else services.delete(name);
      st.update(old, cur);
    },
    endpoints(name: string, eps: EndpointSpec[] | undefined, portName = 'p', protocol: Protocol = 'UDP') {
      const slice = makeSlice('ns', name, 1, {
        endpoints: eps ?? [],
        ports: [{ name: portName, port: 5353, protocol }],
      });
      et.endpointSliceUpdate(slice, eps === undefined);
    },
    step(): StaleFilters {
      const sr = sm.update(st);
      const er = em.update(et);
      return staleFlowFilters(sr, er, sm.ports, em.endpoints, {
        name: NODE,
        labels: {},
        localIPs: [NODE_IP],
      });
    },
  };
}

const udp = (extra: Record<string, unknown> = {}) => ({
  clusterIP: CIP,
  ports: [{ name: 'p', port: 53, protocol: 'UDP' as const }],
  ...extra,
});
const lb = (extra: Record<string, unknown> = {}) => ({
  type: 'LoadBalancer',
  clusterIP: CIP,
  ports: [{ name: 'p', port: 53, protocol: 'UDP' as const, nodePort: 32000 }],
  ...extra,
});
const lbStatus = { loadBalancer: { ingress: [{ ip: LB }] } };

const keys = (m: ReadonlyMap<string, string> | ReadonlySet<string>) =>
  m instanceof Map ? Object.fromEntries([...m].sort()) : [...m].sort();

describe('the #48524 sequence as filters', () => {
  it('[A] → [] names the pair (cluster IP, A); [] → [B] names the cluster IP', () => {
    const p = pipeline();
    p.service('dns', udp());
    p.endpoints('dns', [{ ip: A }]);
    p.step();
    p.endpoints('dns', []);
    const gone = p.step();
    expect(keys(gone.frontendEndpoints)).toEqual([`${CIP}:53/UDP>${A}:5353`]);
    expect(gone.frontends.size).toBe(0);
    expect(matchStale(dnat(CIP, 53, A, 5353), gone)).toBe('endpoint-gone');
    expect(matchStale(dnat(CIP, 53, B, 5353), gone)).toBeUndefined();

    p.endpoints('dns', [{ ip: B }]);
    const back = p.step();
    expect(keys(back.frontends)).toEqual({ [`${CIP}:53/UDP`]: 'empty-to-serving' });
    expect(matchStale(unNATed(CIP, 53), back)).toBe('empty-to-serving');
    // Never a flow that answers from a serving endpoint.
    expect(matchStale(dnat(CIP, 53, B, 5353), back)).toBeUndefined();
    expect(hasTargetedWork(back)).toBe(true);
  });

  it('endpoints that exist but do not serve (#105657) name nothing, until they serve', () => {
    const p = pipeline();
    p.service('dns', udp());
    p.step();
    p.endpoints('dns', [{ ip: A, ready: false, serving: false }]);
    expect(hasTargetedWork(p.step())).toBe(false);
    p.endpoints('dns', [{ ip: A }]);
    expect(keys(p.step().frontends)).toEqual({ [`${CIP}:53/UDP`]: 'empty-to-serving' });
  });

  it('TCP ports name nothing', () => {
    const p = pipeline();
    p.service('web', { clusterIP: CIP, ports: [{ name: 'p', port: 80, protocol: 'TCP' }] });
    p.endpoints('web', [{ ip: A }], 'p', 'TCP');
    p.step();
    p.endpoints('web', [], 'p', 'TCP');
    expect(hasTargetedWork(p.step())).toBe(false);
    p.service('web', undefined);
    expect(hasTargetedWork(p.step())).toBe(false);
  });
});

describe('each frontend judged with its own policy (#126934)', () => {
  it('eTP Local: the first local endpoint flushes external frontends, not the cluster IP', () => {
    const p = pipeline();
    p.service('game', lb({ externalTrafficPolicy: 'Local', externalIPs: ['192.168.99.1'] }), lbStatus);
    p.endpoints('game', [{ ip: R, node: OTHER_NODE }]);
    const first = p.step();
    // Every group was empty: all frontends.
    expect(keys(first.frontends)).toEqual({
      [`${CIP}:53/UDP`]: 'empty-to-serving',
      [`${LB}:53/UDP`]: 'empty-to-serving',
      '192.168.99.1:53/UDP': 'empty-to-serving',
    });
    expect(keys(first.nodePorts)).toEqual({ '32000/UDP': 'empty-to-serving' });

    p.endpoints('game', [
      { ip: A, node: NODE },
      { ip: R, node: OTHER_NODE },
    ]);
    const local = p.step();
    expect(keys(local.frontends)).toEqual({
      [`${LB}:53/UDP`]: 'empty-to-serving',
      '192.168.99.1:53/UDP': 'empty-to-serving',
    });
    expect(keys(local.nodePorts)).toEqual({ '32000/UDP': 'empty-to-serving' });
    // A pod's flow to the LB IP short-circuited to the remote endpoint is healthy.
    expect(matchStale(dnat(LB, 53, R, 5353), local)).toBeUndefined();
    expect(matchStale(unNATed(LB, 53), local)).toBe('empty-to-serving');
  });

  it('iTP Local: the first local endpoint flushes the cluster IP even though the port always had endpoints', () => {
    const p = pipeline();
    p.service('dns', udp({ internalTrafficPolicy: 'Local' }));
    p.endpoints('dns', [{ ip: R, node: OTHER_NODE }]);
    expect(hasTargetedWork(p.step())).toBe(false);
    p.endpoints('dns', [
      { ip: A, node: NODE },
      { ip: R, node: OTHER_NODE },
    ]);
    expect(keys(p.step().frontends)).toEqual({ [`${CIP}:53/UDP`]: 'empty-to-serving' });
  });
});

describe('NodePorts', () => {
  it('match on the node own addresses only', () => {
    const p = pipeline();
    p.service('game', lb(), lbStatus);
    p.endpoints('game', [{ ip: A }]);
    p.step();
    p.endpoints('game', [{ ip: B }]);
    const f = p.step();
    expect(keys(f.nodePortEndpoints)).toEqual([`32000/UDP>${A}:5353`]);
    expect(matchStale(dnat(NODE_IP, 32000, A, 5353), f)).toBe('endpoint-gone');
    expect(matchStale(dnat(OTHER_HOST_IP, 32000, A, 5353), f)).toBeUndefined();
    expect(matchStale(dnat(NODE_IP, 32001, A, 5353), f)).toBeUndefined();
    expect(matchStale(dnat(NODE_IP, 32000, A, 5353, { protocol: 'SCTP' }), f)).toBeUndefined();
  });
});

describe('deleted service ports (#141371)', () => {
  it('every frontend of a deleted service, with the strongest reason winning', () => {
    const p = pipeline();
    p.service('game', lb({ externalIPs: ['192.168.99.1'] }), lbStatus);
    p.endpoints('game', [{ ip: A }]);
    p.step();
    p.service('game', undefined);
    p.endpoints('game', undefined);
    const f = p.step();
    expect(keys(f.frontends)).toEqual({
      [`${CIP}:53/UDP`]: 'service-deleted',
      [`${LB}:53/UDP`]: 'service-deleted',
      '192.168.99.1:53/UDP': 'service-deleted',
    });
    expect(keys(f.nodePorts)).toEqual({ '32000/UDP': 'service-deleted' });
    expect(matchStale(dnat(CIP, 53, A, 5353), f)).toBe('service-deleted');
    expect(matchStale(dnat(NODE_IP, 32000, A, 5353), f)).toBe('service-deleted');
  });

  it('a port renamed in place is a deleted port, but flows on the same frontend to serving endpoints stay', () => {
    const p = pipeline();
    p.service('dns', udp());
    p.endpoints('dns', [{ ip: A }]);
    p.step();
    p.service('dns', { clusterIP: CIP, ports: [{ name: 'q', port: 53, protocol: 'UDP' }] });
    p.endpoints('dns', [{ ip: A }], 'q');
    const f = p.step();
    expect(keys(f.frontends)).toEqual({ [`${CIP}:53/UDP`]: 'service-deleted' });
    expect(matchStale(dnat(CIP, 53, A, 5353), f)).toBeUndefined();
    expect(matchStale(dnat(CIP, 53, B, 5353), f)).toBe('service-deleted');
    expect(f.changedServicePorts).toBe(1);
  });
});

describe('merging a failed call filters into the next', () => {
  it('keeps the older flushes and uses the newer live state', () => {
    const p = pipeline();
    p.service('a', udp());
    p.service('b', { clusterIP: '172.30.0.20', ports: [{ name: 'p', port: 53, protocol: 'UDP' }] });
    p.endpoints('b', [{ ip: B }]);
    p.step();
    p.service('a', undefined);
    const older = p.step();
    p.endpoints('b', []);
    const newer = p.step();
    const merged = mergeStaleFilters(older, newer);
    const toA: ConntrackFlow = dnat(CIP, 53, A, 5353);
    expect(matchStale(toA, merged)).toBe('service-deleted');
    expect(matchStale(dnat('172.30.0.20', 53, B, 5353), merged)).toBe('endpoint-gone');
    expect(merged.live).toBe(newer.live);
    expect([...merged.protocols]).toEqual(['UDP']);
  });
});
