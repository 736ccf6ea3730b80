/**
 * The reconciler's rule on its own (pure): upstream's TestCleanStaleEntries table, widened to
 * SCTP, plus the cases upstream got wrong (services with no endpoints, policies) and scale.
 */
import { describe, expect, it } from 'vitest';
import type { ConntrackFlow } from '../../../conntrack/netlink/types.ts';
import { buildReconcileState, isStaleFlow, reconcileFlows } from '../../../conntrack/reconciler.ts';
import type { EndpointSlice, Service } from '../../../pkg/k8s/schemas.ts';
import { createEndpointsChangeTracker } from '../../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../../proxier/endpointsmap.ts';
import { createServiceChangeTracker } from '../../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../../proxier/servicemap.ts';
import { makeService, makeSlice } from '../proxier/trackers/fixtures.ts';
import { dnat, flowSet, NODE, NODE_IP, OTHER_HOST_IP, OTHER_NODE, unNATed } from './harness.ts';

function stateFor(
  services: Service[],
  slices: EndpointSlice[],
  family: 'IPv4' | 'IPv6' = 'IPv4',
  localIPs = [NODE_IP],
) {
  const st = createServiceChangeTracker(family);
  const et = createEndpointsChangeTracker({ family, nodeName: NODE, startTime: new Date(0) });
  for (const s of services) st.update(undefined, s);
  for (const s of slices) et.endpointSliceUpdate(s, false);
  const sm = createServiceMap();
  const em = createEndpointsMap();
  sm.update(st);
  em.update(et);
  return buildReconcileState(sm.ports, em.endpoints, { name: NODE, labels: {}, localIPs });
}

function remaining(flows: ConntrackFlow[], state: ReturnType<typeof stateFor>): Set<string> {
  const stale = new Set(reconcileFlows(flows, state).map((s) => s.flow));
  return flowSet(flows.filter((f) => !stale.has(f)));
}

describe('upstream TestCleanStaleEntries, with SCTP cleaned as UDP', () => {
  const CIP = '172.30.1.1';
  const EXT = '192.168.99.100';
  const LB = '1.2.3.4';
  const SERVING = '10.240.0.4';
  const NOT_SERVING = '10.240.1.5';
  const DELETED = '10.240.2.6';
  const service = makeService(
    'test',
    'cleanup-test',
    {
      type: 'LoadBalancer',
      clusterIP: CIP,
      externalIPs: [EXT],
      ports: [
        { name: 'test-tcp', port: 8000, protocol: 'TCP', nodePort: 31000 },
        { name: 'test-udp', port: 8000, protocol: 'UDP', nodePort: 32000 },
        { name: 'test-sctp', port: 8000, protocol: 'SCTP', nodePort: 32000 },
      ],
    },
    { status: { loadBalancer: { ingress: [{ ip: LB }] } } },
  );
  // Upstream leaves Ready unset (true) on the non-serving endpoint, a combination real slices
  // never carry; here it is not ready either, so that it is not a DNAT target.
  const slice = makeSlice('test', 'cleanup-test', 0, {
    endpoints: [{ ip: SERVING }, { ip: NOT_SERVING, ready: false, serving: false }],
    ports: ['tcp', 'udp', 'sctp'].map((p) => ({
      name: `test-${p}`,
      port: 9090,
      protocol: p.toUpperCase() as 'TCP' | 'UDP' | 'SCTP',
    })),
  });

  it('deletes exactly the UDP and SCTP flows to a frontend that do not answer from the serving endpoint', () => {
    const before: ConntrackFlow[] = [];
    const after: ConntrackFlow[] = [];
    let sport = 1;
    const add = (f: ConntrackFlow, kept: boolean) => {
      before.push(f);
      if (kept) after.push(f);
    };
    // The serving endpoint's old port (#130484).
    for (const ip of [CIP, LB, EXT]) add(dnat(ip, 8000, SERVING, 8080, { sport: sport++ }), false);
    for (const ep of [SERVING, NOT_SERVING, DELETED]) {
      for (const protocol of ['TCP', 'UDP', 'SCTP'] as const) {
        const cleaned = protocol !== 'TCP' && ep !== SERVING;
        for (const ip of [CIP, LB, EXT]) {
          add(dnat(ip, 8000, ep, 9090, { sport: sport++, protocol }), !cleaned);
          add(dnat(ip, 3000, ep, 9090, { sport: sport++, protocol }), true); // not a service port
        }
        add(dnat(NODE_IP, 32000, ep, 9090, { sport: sport++, protocol }), !cleaned);
        add(dnat(OTHER_HOST_IP, 32000, ep, 9090, { sport: sport++, protocol }), true); // not our node
      }
    }
    // Never DNATed: blackholes while the port has a serving endpoint.
    for (const ip of [CIP, LB, EXT]) {
      add(unNATed(ip, 8000, { sport: sport++ }), false);
      add(unNATed(ip, 3000, { sport: sport++ }), true);
    }
    const state = stateFor([service], [slice]);
    expect(remaining(before, state)).toEqual(flowSet(after));
    expect(before.length - after.length).toBe(3 + 2 * 2 * 4 + 3);
    expect(reconcileFlows(before, state).every((s) => s.reason === 'reconciler')).toBe(true);
  });
});

describe('the four cases', () => {
  const CIP = '172.30.0.10';
  const svc = (extra: Record<string, unknown> = {}) =>
    makeService('ns', 'dns', { clusterIP: CIP, ports: [{ name: 'p', port: 53, protocol: 'UDP' }], ...extra });
  const slice = (endpoints: Parameters<typeof makeSlice>[3]['endpoints']) =>
    makeSlice('ns', 'dns', 1, { endpoints, ports: [{ name: 'p', port: 5353, protocol: 'UDP' }] });

  it('with endpoints: serving kept; DNATed elsewhere or never DNATed deleted', () => {
    const state = stateFor([svc()], [slice([{ ip: '10.1.0.1' }])]);
    expect(isStaleFlow(dnat(CIP, 53, '10.1.0.1', 5353), state)).toBe(false);
    expect(isStaleFlow(dnat(CIP, 53, '10.1.0.2', 5353), state)).toBe(true);
    expect(isStaleFlow(unNATed(CIP, 53), state)).toBe(true);
  });

  it('with no endpoint at all (#139628): DNATed deleted, never DNATed left alone', () => {
    for (const slices of [[], [slice([])], [slice([{ ip: '10.1.0.1', ready: false, serving: false }])]]) {
      const state = stateFor([svc()], slices);
      expect(isStaleFlow(dnat(CIP, 53, '10.1.0.1', 5353), state)).toBe(true);
      expect(isStaleFlow(unNATed(CIP, 53), state)).toBe(false);
    }
  });

  it('addresses that are not frontends, and TCP, are never touched', () => {
    const state = stateFor([svc()], [slice([{ ip: '10.1.0.1' }])]);
    expect(isStaleFlow(dnat('172.30.0.11', 53, '10.1.0.2', 5353), state)).toBe(false);
    expect(isStaleFlow(unNATed(CIP, 54), state)).toBe(false);
    expect(isStaleFlow(unNATed(CIP, 53, { protocol: 'TCP' }), state)).toBe(false);
    expect(isStaleFlow(unNATed(CIP, 53, { protocol: 'SCTP' }), state)).toBe(false);
  });

  it('internalTrafficPolicy Local with only remote endpoints: nothing to DNAT to from here', () => {
    const state = stateFor(
      [svc({ internalTrafficPolicy: 'Local' })],
      [slice([{ ip: '10.1.0.9', node: OTHER_NODE }])],
    );
    expect(isStaleFlow(unNATed(CIP, 53), state)).toBe(false);
    // Serving remote endpoint: a live backend, kept whatever the policy.
    expect(isStaleFlow(dnat(CIP, 53, '10.1.0.9', 5353), state)).toBe(false);
    expect(isStaleFlow(dnat(CIP, 53, '10.1.0.8', 5353), state)).toBe(true);
  });

  it('externalTrafficPolicy Local with only remote endpoints: pods and the node still reach them', () => {
    const state = stateFor(
      [
        svc({
          type: 'NodePort',
          externalTrafficPolicy: 'Local',
          externalIPs: ['192.168.99.1'],
          ports: [{ name: 'p', port: 53, protocol: 'UDP', nodePort: 30053 }],
        }),
      ],
      [slice([{ ip: '10.1.0.9', node: OTHER_NODE }])],
    );
    expect(isStaleFlow(unNATed('192.168.99.1', 53), state)).toBe(true);
    expect(isStaleFlow(unNATed(NODE_IP, 30053), state)).toBe(true);
    expect(isStaleFlow(dnat(NODE_IP, 30053, '10.1.0.9', 5353), state)).toBe(false);
  });

  it('an external IP that is also a node address is judged as that frontend, not as a NodePort', () => {
    const state = stateFor(
      [
        svc({ type: 'NodePort', ports: [{ name: 'p', port: 53, protocol: 'UDP', nodePort: 30053 }] }),
        makeService('ns', 'other', {
          clusterIP: '172.30.0.11',
          externalIPs: [NODE_IP],
          ports: [{ name: 'p', port: 30053, protocol: 'UDP' }],
        }),
      ],
      [slice([{ ip: '10.1.0.1' }])],
    );
    // `other` has no endpoints: an un-NATed flow to NODE_IP:30053 is its business and stays.
    expect(isStaleFlow(unNATed(NODE_IP, 30053), state)).toBe(false);
  });

  it('IPv6: endpoints and frontends are matched with bracketed host:port keys', () => {
    const v6 = makeService('ns', 'dns6', {
      clusterIP: 'fd00::10',
      clusterIPs: ['fd00::10'],
      ipFamilies: ['IPv6'],
      ports: [{ name: 'p', port: 53, protocol: 'UDP' }],
    });
    const s6 = makeSlice('ns', 'dns6', 1, {
      addressType: 'IPv6',
      endpoints: [{ ip: 'fd00:1::1' }],
      ports: [{ name: 'p', port: 5353, protocol: 'UDP' }],
    });
    const state = stateFor([v6], [s6], 'IPv6', ['fd00:ff::2']);
    const flow = (dst: string, dport: number, src: string, sport: number): ConntrackFlow => ({
      family: 'IPv6',
      protocol: 'UDP',
      original: { src: 'fd00:2::5', dst, srcPort: 40000, dstPort: dport },
      reply: { src, dst: 'fd00:2::5', srcPort: sport, dstPort: 40000 },
      status: 0,
      mark: 0,
    });
    expect(isStaleFlow(flow('fd00::10', 53, 'fd00:1::1', 5353), state)).toBe(false);
    expect(isStaleFlow(flow('fd00::10', 53, 'fd00:1::2', 5353), state)).toBe(true);
    expect(isStaleFlow(flow('fd00::10', 53, 'fd00::10', 53), state)).toBe(true);
  });
});

describe('scale (#135323)', () => {
  it('100,000 flows are classified in one pass over the state', () => {
    const services: Service[] = [];
    const slices: EndpointSlice[] = [];
    for (let i = 0; i < 1000; i++) {
      services.push(
        makeService('ns', `s${i}`, {
          clusterIP: `172.30.${i >> 8}.${i & 255}`,
          ports: [{ name: 'p', port: 53, protocol: 'UDP' }],
        }),
      );
      slices.push(
        makeSlice('ns', `s${i}`, 1, {
          endpoints: [{ ip: `10.${i >> 8}.${i & 255}.1` }, { ip: `10.${i >> 8}.${i & 255}.2` }],
          ports: [{ name: 'p', port: 5353, protocol: 'UDP' }],
        }),
      );
    }
    const state = stateFor(services, slices);
    const flows: ConntrackFlow[] = [];
    for (let n = 0; n < 100_000; n++) {
      const i = n % 1000;
      const ep = n % 1009 === 0 ? 3 : (n % 2) + 1; // every 1009th flow points at a non-endpoint
      flows.push(
        dnat(`172.30.${i >> 8}.${i & 255}`, 53, `10.${i >> 8}.${i & 255}.${ep}`, 5353, {
          sport: (n % 60000) + 1,
          client: `10.200.${n >> 16}.${(n >> 8) & 255}`,
        }),
      );
    }
    const stale = reconcileFlows(flows, state);
    expect(stale).toHaveLength(Math.ceil(100_000 / 1009));
    expect(stale.every((s) => s.flow.reply.src.endsWith('.3'))).toBe(true);
  });
});
