/**
 * The UDP blackhole cases, each as upstream met it: the table before, the API change, one sync,
 * the table after, compared as sets. Every case runs the real trackers and maps, so what is
 * checked is what the sync loop will do.
 */
import { describe, expect, it } from 'vitest';
import {
  counterValue,
  createNodeHarness,
  dnat,
  flowSet,
  NODE,
  NODE_IP,
  OTHER_HOST_IP,
  OTHER_NODE,
  unNATed,
} from './harness.ts';

const CIP = '172.30.0.10';
const EXT = '192.168.99.100';
const LB = '1.2.3.4';
const A = '10.1.0.1';
const B = '10.1.0.2';
const C = '10.1.0.3';
const EP_PORT = 5353;

const udpService = (extra: Record<string, unknown> = {}) => ({
  clusterIP: CIP,
  ports: [{ name: 'p', port: 53, protocol: 'UDP' as const }],
  ...extra,
});

const lbService = (extra: Record<string, unknown> = {}) => ({
  type: 'LoadBalancer',
  clusterIP: CIP,
  externalIPs: [EXT],
  ports: [{ name: 'p', port: 53, protocol: 'UDP' as const, nodePort: 32000 }],
  ...extra,
});
const lbStatus = { loadBalancer: { ingress: [{ ip: LB }] } };

describe('PR #48524: endpoints [A] → [] → [B] for a UDP service, one client source port', () => {
  async function run(disabled: boolean) {
    const h = createNodeHarness({ disabled });
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }]);
    const toA = dnat(CIP, 53, A, EP_PORT);
    h.ct.add(toA);
    const first = await h.sync();

    h.time += 1_000;
    h.endpoints('dns', []);
    const second = await h.sync();
    const afterSecond = h.table();

    // The client keeps sending from the same port; with no DNAT rule its next packet creates
    // an entry that answers from the service IP itself.
    const stuck = unNATed(CIP, 53);
    if (!h.table().size) h.ct.add(stuck);
    h.time += 60_000;
    const quiet = await h.sync();
    const whileEmpty = h.table();

    h.time += 1_000;
    h.endpoints('dns', [{ ip: B }]);
    const third = await h.sync();
    return { h, toA, stuck, first, second, afterSecond, quiet, whileEmpty, third };
  }

  it('deletes the entry DNATed to A when A goes, and the un-NATed one when B appears', async () => {
    const r = await run(false);
    expect(r.first.deleted).toEqual({
      'empty-to-serving': 0,
      'endpoint-gone': 0,
      'service-deleted': 0,
      reconciler: 0,
    });
    expect(r.afterSecond).toEqual(new Set());
    expect(r.second.deleted['endpoint-gone']).toBe(1);
    // While there is nothing to DNAT to, the un-NATed entry is left alone (reconciler.ts).
    expect(r.quiet.dumps).toBe(1);
    expect(r.whileEmpty).toEqual(flowSet([r.stuck]));
    expect(r.third.deleted).toEqual({
      'empty-to-serving': 1,
      'endpoint-gone': 0,
      'service-deleted': 0,
      reconciler: 0,
    });
    expect(r.h.table()).toEqual(new Set());
    // The client's next packet is DNATed to B and that entry is left alone from then on.
    const toB = dnat(CIP, 53, B, EP_PORT);
    r.h.ct.add(toB);
    r.h.time += 60_000;
    await r.h.sync();
    expect(r.h.table()).toEqual(flowSet([toB]));
    expect(
      await counterValue(r.h.metrics, 'kubeproxy_ts_conntrack_deleted_entries_total', {
        reason: 'empty-to-serving',
        ip_family: 'IPv4',
      }),
    ).toBe(1);
    expect(
      await counterValue(r.h.metrics, 'kubeproxy_ts_conntrack_deleted_entries_total', {
        reason: 'endpoint-gone',
        ip_family: 'IPv4',
      }),
    ).toBe(1);
  });

  it('with cleanup disabled the flow stays on A, then blackholed after B appears', async () => {
    const r = await run(true);
    expect(r.afterSecond).toEqual(flowSet([r.toA]));
    expect(r.h.table()).toEqual(flowSet([r.toA]));
    expect(r.h.ct.calls).toEqual([]);
  });
});

describe('NodePort, external IP and load-balancer IP', () => {
  it('empty → serving flushes un-NATed entries to every frontend, NodePort on node addresses only', async () => {
    const h = createNodeHarness();
    h.service('game', lbService(), lbStatus);
    await h.sync();
    const stuck = [
      unNATed(CIP, 53, { sport: 1 }),
      unNATed(EXT, 53, { sport: 2 }),
      unNATed(LB, 53, { sport: 3 }),
      unNATed(NODE_IP, 32000, { sport: 4 }),
      unNATed('127.0.0.1', 32000, { sport: 5, client: '127.0.0.1' }),
    ];
    const untouched = [
      unNATed(OTHER_HOST_IP, 32000, { sport: 6 }), // another host's NodePort, routed through us
      unNATed(CIP, 54, { sport: 7 }), // not a service port
      unNATed(CIP, 53, { sport: 8, protocol: 'TCP' }),
      unNATed(NODE_IP, 32000, { sport: 9, protocol: 'TCP' }),
    ];
    h.ct.add(...stuck, ...untouched);
    h.time += 60_000;
    await h.sync();
    expect(h.table()).toEqual(flowSet([...stuck, ...untouched]));

    h.endpoints('game', [{ ip: A }]);
    const r = await h.sync();
    expect(h.table()).toEqual(flowSet(untouched));
    expect(r.deleted['empty-to-serving']).toBe(5);
  });

  it('an endpoint that goes away: entries DNATed to it through every frontend', async () => {
    const h = createNodeHarness();
    h.service('game', lbService(), lbStatus);
    h.endpoints('game', [{ ip: A }, { ip: B }]);
    await h.sync();
    const toA = [
      dnat(CIP, 53, A, EP_PORT, { sport: 1 }),
      dnat(EXT, 53, A, EP_PORT, { sport: 2 }),
      dnat(LB, 53, A, EP_PORT, { sport: 3 }),
      dnat(NODE_IP, 32000, A, EP_PORT, { sport: 4 }),
    ];
    const keep = [
      dnat(CIP, 53, B, EP_PORT, { sport: 5 }),
      dnat(NODE_IP, 32000, B, EP_PORT, { sport: 6 }),
      dnat(OTHER_HOST_IP, 32000, A, EP_PORT, { sport: 7 }),
      dnat(CIP, 53, A, EP_PORT, { sport: 8, protocol: 'TCP' }),
    ];
    h.ct.add(...toA, ...keep);
    h.endpoints('game', [{ ip: B }]);
    const r = await h.sync();
    expect(h.table()).toEqual(flowSet(keep));
    expect(r.deleted['endpoint-gone']).toBe(4);
  });

  it('a frontend added to a service that has endpoints: un-NATed entries sent to it before are deleted', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }]);
    await h.sync();
    const stuck = unNATed(EXT, 53);
    const healthy = dnat(CIP, 53, A, EP_PORT, { sport: 2 });
    h.ct.add(stuck, healthy);
    h.time += 1_000; // well inside the rate limit
    h.service('dns', udpService({ externalIPs: [EXT] }));
    const r = await h.sync();
    expect(r.dumps).toBe(1);
    expect(h.table()).toEqual(flowSet([healthy]));
    expect(r.deleted.reconciler).toBe(1);
  });
});

describe('#105657: endpoints that exist but do not serve do not count', () => {
  it('created unready, then ready: the un-NATed entry goes when the endpoint becomes ready', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A, ready: false, serving: false }]);
    await h.sync();
    const stuck = unNATed(CIP, 53);
    h.ct.add(stuck);
    h.time += 60_000;
    await h.sync();
    expect(h.table()).toEqual(flowSet([stuck]));

    h.endpoints('dns', [{ ip: A }]);
    const r = await h.sync();
    expect(h.table()).toEqual(new Set());
    expect(r.deleted['empty-to-serving']).toBe(1);
  });
});

describe('#126934: internalTrafficPolicy Local judges "empty" on local endpoints', () => {
  const itpLocal = udpService({ internalTrafficPolicy: 'Local' });

  it('the only local endpoint replaced over two syncs while a remote one serves throughout', async () => {
    const h = createNodeHarness();
    h.service('dns', itpLocal);
    h.endpoints('dns', [
      { ip: A, node: NODE },
      { ip: C, node: OTHER_NODE },
    ]);
    const toA = dnat(CIP, 53, A, EP_PORT, { sport: 1 });
    // From before the policy was Local: a remote endpoint that still serves keeps its flow.
    const toRemote = dnat(CIP, 53, C, EP_PORT, { sport: 2 });
    h.ct.add(toA, toRemote);
    await h.sync();
    expect(h.table()).toEqual(flowSet([toA, toRemote]));

    h.endpoints('dns', [{ ip: C, node: OTHER_NODE }]);
    const gone = await h.sync();
    expect(gone.deleted['endpoint-gone']).toBe(1);
    const stuck = unNATed(CIP, 53, { sport: 1 });
    h.ct.add(stuck);
    h.time += 60_000;
    await h.sync();
    expect(h.table()).toEqual(flowSet([toRemote, stuck]));

    // Cluster-wide the port never went empty; on this node it did, and now has B.
    h.endpoints('dns', [
      { ip: B, node: NODE },
      { ip: C, node: OTHER_NODE },
    ]);
    const r = await h.sync();
    expect(h.table()).toEqual(flowSet([toRemote]));
    expect(r.deleted['empty-to-serving']).toBe(1);
  });

  it('replaced in one sync: the flow to the old local endpoint goes, the others stay', async () => {
    const h = createNodeHarness();
    h.service('dns', itpLocal);
    h.endpoints('dns', [
      { ip: A, node: NODE },
      { ip: C, node: OTHER_NODE },
    ]);
    await h.sync();
    const toA = dnat(CIP, 53, A, EP_PORT, { sport: 1 });
    const toRemote = dnat(CIP, 53, C, EP_PORT, { sport: 2 });
    h.ct.add(toA, toRemote);
    h.endpoints('dns', [
      { ip: B, node: NODE },
      { ip: C, node: OTHER_NODE },
    ]);
    const r = await h.sync();
    expect(h.table()).toEqual(flowSet([toRemote]));
    expect(r.deleted['endpoint-gone']).toBe(1);
  });
});

describe('#125467: serving → not serving', () => {
  it('an endpoint that stops serving loses its flows; the others keep theirs', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }, { ip: B }]);
    await h.sync();
    const toA = dnat(CIP, 53, A, EP_PORT, { sport: 1 });
    const toB = dnat(CIP, 53, B, EP_PORT, { sport: 2 });
    h.ct.add(toA, toB);
    h.endpoints('dns', [{ ip: A, ready: false, serving: false, terminating: true }, { ip: B }]);
    const r = await h.sync();
    expect(h.table()).toEqual(flowSet([toB]));
    expect(r.deleted['endpoint-gone']).toBe(1);
  });

  it('a terminating endpoint that still serves keeps its flows (draining)', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }, { ip: B }]);
    await h.sync();
    const toA = dnat(CIP, 53, A, EP_PORT, { sport: 1 });
    const toB = dnat(CIP, 53, B, EP_PORT, { sport: 2 });
    h.ct.add(toA, toB);
    h.endpoints('dns', [{ ip: A, ready: false, serving: true, terminating: true }, { ip: B }]);
    await h.sync();
    expect(h.table()).toEqual(flowSet([toA, toB]));
  });
});

describe('#141371: service deleted', () => {
  it('every flow to its cluster IP, external IP, LB IP and NodePort goes; other services keep theirs', async () => {
    const h = createNodeHarness();
    h.service('game', lbService(), lbStatus);
    h.endpoints('game', [{ ip: A }]);
    h.service('other', { clusterIP: '172.30.0.20', ports: [{ name: 'p', port: 53, protocol: 'UDP' }] });
    h.endpoints('other', [{ ip: C }]);
    await h.sync();
    const doomed = [
      dnat(CIP, 53, A, EP_PORT, { sport: 1 }),
      dnat(EXT, 53, A, EP_PORT, { sport: 2 }),
      dnat(LB, 53, A, EP_PORT, { sport: 3 }),
      dnat(NODE_IP, 32000, A, EP_PORT, { sport: 4 }),
    ];
    const keep = [
      dnat('172.30.0.20', 53, C, EP_PORT, { sport: 5 }),
      dnat(OTHER_HOST_IP, 32000, A, EP_PORT, { sport: 6 }),
    ];
    h.ct.add(...doomed, ...keep);
    h.time += 1_000;
    h.service('game', undefined);
    h.endpoints('game', undefined);
    const r = await h.sync();
    expect(h.table()).toEqual(flowSet(keep));
    expect(r.deleted['service-deleted']).toBe(4);
  });

  it('the same when only the Service goes and its slice stays', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }]);
    await h.sync();
    h.ct.add(dnat(CIP, 53, A, EP_PORT));
    h.service('dns', undefined);
    const r = await h.sync();
    expect(h.table()).toEqual(new Set());
    expect(r.deleted['service-deleted']).toBe(1);
  });
});

describe('#139628: scale to zero and back', () => {
  it('flows to the last pod go at zero; after a restart at zero too; un-NATed ones go when a pod is back', async () => {
    const h = createNodeHarness();
    h.service('statsd', udpService());
    h.endpoints('statsd', [{ ip: A }]);
    await h.sync();
    h.ct.add(dnat(CIP, 53, A, EP_PORT, { sport: 1 }));
    h.endpoints('statsd', []);
    const zero = await h.sync();
    expect(zero.deleted['endpoint-gone']).toBe(1);
    expect(h.table()).toEqual(new Set());

    // The proxy restarts while the service is at zero; the table still holds a flow DNATed to
    // the deleted pod (missed while the proxy was down) and an un-NATed one.
    const toDeadPod = dnat(CIP, 53, A, EP_PORT, { sport: 2 });
    const stuck = unNATed(CIP, 53, { sport: 3 });
    h.ct.add(toDeadPod, stuck);
    const restarted = createNodeHarness({ client: h.ct, objects: h.objects });
    const first = await restarted.sync();
    expect(first.deleted.reconciler).toBe(1);
    expect(restarted.table()).toEqual(flowSet([stuck]));

    restarted.endpoints('statsd', [{ ip: B }]);
    const back = await restarted.sync();
    expect(back.deleted['empty-to-serving']).toBe(1);
    expect(restarted.table()).toEqual(new Set());
  });
});

describe('#122740: proxy restart', () => {
  it('the first sync keeps flows that point at serving endpoints and deletes the stale ones', async () => {
    const h = createNodeHarness();
    h.service('game', lbService(), lbStatus);
    h.endpoints('game', [{ ip: A }, { ip: B }]);
    await h.sync();
    const healthy = [
      dnat(CIP, 53, A, EP_PORT, { sport: 1 }),
      dnat(LB, 53, B, EP_PORT, { sport: 2 }),
      dnat(NODE_IP, 32000, B, EP_PORT, { sport: 3 }),
    ];
    const stale = [
      dnat(CIP, 53, C, EP_PORT, { sport: 4 }), // a pod deleted while the proxy was down
      dnat(NODE_IP, 32000, A, 8080, { sport: 5 }), // endpoint port changed (#130484)
      unNATed(EXT, 53, { sport: 6 }), // sent before the rules were restored
    ];
    const tcp = [dnat(CIP, 53, C, EP_PORT, { sport: 7, protocol: 'TCP' })];
    h.ct.add(...healthy, ...stale, ...tcp);

    const restarted = createNodeHarness({ client: h.ct, objects: h.objects });
    const r = await restarted.sync();
    expect(restarted.table()).toEqual(flowSet([...healthy, ...tcp]));
    expect(r.deleted).toEqual({
      'empty-to-serving': 0,
      'endpoint-gone': 0,
      'service-deleted': 0,
      reconciler: 3,
    });
    expect(r.reconciled).toBe(true);
    expect(
      await counterValue(restarted.metrics, 'kubeproxy_conntrack_reconciler_deleted_entries_total', {
        ip_family: 'IPv4',
      }),
    ).toBe(3);
  });
});

describe('protocols', () => {
  it('TCP is never read nor touched: a TCP-only node never dumps', async () => {
    const h = createNodeHarness();
    h.service('web', { clusterIP: CIP, ports: [{ name: 'p', port: 80, protocol: 'TCP' }] });
    h.endpoints('web', [{ ip: A }], 8080, 'TCP');
    const tcp = [
      dnat(CIP, 80, C, 8080, { protocol: 'TCP' }),
      unNATed(CIP, 80, { protocol: 'TCP', sport: 2 }),
    ];
    h.ct.add(...tcp);
    await h.sync();
    h.endpoints('web', [], 8080, 'TCP');
    await h.sync();
    h.service('web', undefined);
    await h.sync();
    expect(h.ct.calls).toEqual([]);
    expect(h.table()).toEqual(flowSet(tcp));
  });

  it('SCTP is cleaned like UDP: [A] → [] → [B], healthy associations untouched', async () => {
    const h = createNodeHarness();
    h.service('sig', { clusterIP: CIP, ports: [{ name: 'p', port: 3868, protocol: 'SCTP' }] });
    h.endpoints('sig', [{ ip: A }, { ip: B }], 3868, 'SCTP');
    const toA = dnat(CIP, 3868, A, 3868, { protocol: 'SCTP', sport: 1 });
    const toB = dnat(CIP, 3868, B, 3868, { protocol: 'SCTP', sport: 2 });
    h.ct.add(toA, toB);
    await h.sync();
    expect(h.ct.calls).toEqual([{ kind: 'dump', family: 'IPv4', protocol: 'SCTP' }]);

    h.endpoints('sig', [{ ip: B }], 3868, 'SCTP');
    expect((await h.sync()).deleted['endpoint-gone']).toBe(1);
    expect(h.table()).toEqual(flowSet([toB]));

    h.endpoints('sig', [], 3868, 'SCTP');
    await h.sync();
    const stuck = unNATed(CIP, 3868, { protocol: 'SCTP', sport: 1 });
    h.ct.add(stuck);
    h.endpoints('sig', [{ ip: C }], 3868, 'SCTP');
    const r = await h.sync();
    expect(r.deleted['empty-to-serving']).toBe(1);
    expect(h.table()).toEqual(new Set());
  });
});
