/**
 * The Service tracker and the service map together, as upstream's TestBuildServiceMap* and
 * TestServiceChangeTracker cases, plus the deletions conntrack cleanup needs to hear about.
 */
import { describe, expect, it } from 'vitest';
import type { Service } from '../../../../pkg/k8s/schemas.ts';
import { createServiceChangeTracker } from '../../../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../../../proxier/servicemap.ts';
import { deepFreeze, makeService, type PortSpec } from './fixtures.ts';

function setup(family: 'IPv4' | 'IPv6' = 'IPv4') {
  const tracker = createServiceChangeTracker(family);
  const map = createServiceMap();
  return { tracker, map, sync: () => map.update(tracker) };
}

const keys = (m: ReadonlyMap<string, unknown>) => [...m.keys()].sort();

const svcPorts = (...ports: PortSpec[]) => ports;

describe('service map: building and updating (TestBuildServiceMapAddRemove)', () => {
  const services = [
    makeService('somewhere-else', 'cluster-ip', {
      clusterIP: '172.30.55.4',
      ports: svcPorts(
        { name: 'something', port: 1234, protocol: 'UDP' },
        { name: 'somethingelse', port: 1235, protocol: 'UDP' },
        { name: 'sctpport', port: 1236, protocol: 'SCTP' },
      ),
    }),
    makeService('somewhere-else', 'node-port', {
      type: 'NodePort',
      clusterIP: '172.30.55.10',
      ports: svcPorts(
        { name: 'blahblah', port: 344, protocol: 'UDP', nodePort: 30344 },
        { name: 'moreblahblah', port: 345, protocol: 'TCP', nodePort: 30345 },
        { name: 'muchmoreblah', port: 346, protocol: 'SCTP', nodePort: 30346 },
      ),
    }),
    makeService('somewhere', 'load-balancer', {
      type: 'LoadBalancer',
      clusterIP: '172.30.55.11',
      ports: svcPorts(
        { name: 'foobar', port: 8675, protocol: 'UDP', nodePort: 30875 },
        { name: 'baz', port: 8676, protocol: 'UDP', nodePort: 30876 },
      ),
    }),
    makeService('somewhere', 'only-local-load-balancer', {
      type: 'LoadBalancer',
      clusterIP: '172.30.55.12',
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: 345,
      ports: svcPorts(
        { name: 'foobar2', port: 8677, protocol: 'UDP', nodePort: 30877 },
        { name: 'baz', port: 8678, protocol: 'UDP', nodePort: 30878 },
      ),
    }),
  ];

  it('4 Services with 10 ports give 10 entries and one health-check node port; deleting 3 and shrinking 1 leaves 1', () => {
    const { tracker, map, sync } = setup();
    for (const svc of services) expect(tracker.update(undefined, svc)).toBe(true);
    expect(tracker.pendingCount()).toBe(4);

    const first = sync();
    expect(map.ports.size).toBe(10);
    expect([...first.updatedServices].sort()).toEqual([
      'somewhere-else/cluster-ip',
      'somewhere-else/node-port',
      'somewhere/load-balancer',
      'somewhere/only-local-load-balancer',
    ]);
    expect(first.deletedServicePorts).toEqual([]);
    expect(first.deletedUDPClusterIPs.size).toBe(0);
    expect(Object.fromEntries(map.healthCheckNodePorts())).toEqual({
      'somewhere/only-local-load-balancer': 345,
    });
    expect(tracker.pendingCount()).toBe(0);

    // Turn the only-local LB into a ClusterIP Service with one port, delete the others.
    const shrunk = makeService('somewhere', 'only-local-load-balancer', {
      clusterIP: '172.30.55.12',
      ports: svcPorts({ name: 'foobar2', port: 8677, protocol: 'UDP' }),
    });
    tracker.update(services[3], shrunk);
    for (const svc of services.slice(0, 3)) tracker.update(svc, undefined);
    const second = sync();

    expect(keys(map.ports)).toEqual(['somewhere/only-local-load-balancer:foobar2/UDP']);
    expect(map.healthCheckNodePorts().size).toBe(0);
    expect(second.updatedServices.size).toBe(4);
    expect(second.deletedServicePorts.map((p) => `${p.clusterIP}:${p.port}/${p.protocol}`).sort()).toEqual([
      '172.30.55.10:344/UDP',
      '172.30.55.10:345/TCP',
      '172.30.55.10:346/SCTP',
      '172.30.55.11:8675/UDP',
      '172.30.55.11:8676/UDP',
      '172.30.55.12:8678/UDP',
      '172.30.55.4:1234/UDP',
      '172.30.55.4:1235/UDP',
      '172.30.55.4:1236/SCTP',
    ]);
    // The TCP-only removal (node-port:345) adds its IP only because that Service also lost UDP/SCTP ports.
    expect([...second.deletedUDPClusterIPs].sort()).toEqual([
      '172.30.55.10',
      '172.30.55.11',
      '172.30.55.12',
      '172.30.55.4',
    ]);
  });

  it('headless and ExternalName Services give no entries and no pending change (TestBuildServiceMapServiceHeadless)', () => {
    const { tracker, map, sync } = setup();
    expect(
      tracker.update(undefined, makeService('ns', 'headless', { clusterIP: 'None', ports: [{ port: 80 }] })),
    ).toBe(false);
    expect(
      tracker.update(undefined, makeService('ns', 'headless-no-ports', { clusterIP: 'None', ports: [] })),
    ).toBe(false);
    expect(
      tracker.update(
        undefined,
        makeService('ns', 'external-name', {
          type: 'ExternalName',
          clusterIP: '',
          externalName: 'foo.example.com',
          ports: [{ port: 80 }],
        }),
      ),
    ).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
    const r = sync();
    expect(map.ports.size).toBe(0);
    expect(r.updatedServices.size).toBe(0);
  });

  it('health-check node ports follow type changes: ClusterIP → LB eTP Local → same → ClusterIP gives 0, 1, 1, 0 (TestBuildServiceMapServiceUpdate)', () => {
    const { tracker, map, sync } = setup();
    const ports = svcPorts(
      { name: 'something', port: 1234, protocol: 'UDP' },
      { name: 'somethingelse', port: 1235, protocol: 'TCP' },
    );
    const clusterIP = makeService('ns', 'svc', { clusterIP: '172.30.55.4', ports });
    const lb = makeService(
      'ns',
      'svc',
      {
        type: 'LoadBalancer',
        clusterIP: '172.30.55.4',
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 345,
        ports: ports.map((p, i) => ({ ...p, nodePort: 30000 + i })),
      },
      { status: { loadBalancer: { ingress: [{ ip: '10.1.2.4' }] } } },
    );
    const lbUnchanged = makeService(
      'ns',
      'svc',
      {
        type: 'LoadBalancer',
        clusterIP: '172.30.55.4',
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 345,
        ports: ports.map((p, i) => ({ ...p, nodePort: 30000 + i })),
      },
      { status: { loadBalancer: { ingress: [{ ip: '10.1.2.4' }] } }, annotations: { unrelated: 'x' } },
    );

    const counts: [number, number, number][] = [];
    const record = (r: ReturnType<typeof sync>) =>
      counts.push([map.ports.size, map.healthCheckNodePorts().size, r.updatedServices.size]);

    tracker.update(undefined, clusterIP);
    record(sync());
    expect(tracker.update(clusterIP, lb)).toBe(true);
    record(sync());
    // An update that touches nothing kube-proxy uses leaves nothing pending.
    expect(tracker.update(lb, lbUnchanged)).toBe(false);
    record(sync());
    tracker.update(lbUnchanged, clusterIP);
    record(sync());

    expect(counts).toEqual([
      [2, 0, 1],
      [2, 1, 1],
      [2, 1, 0],
      [2, 0, 1],
    ]);
  });

  it('multi-port Services keep one entry per port name and protocol: TCP and UDP 53 are two entries', () => {
    const { map, tracker, sync } = setup();
    tracker.update(
      undefined,
      makeService('kube-system', 'dns', {
        clusterIP: '10.96.0.10',
        ports: svcPorts(
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          { name: 'metrics', port: 9153 },
        ),
      }),
    );
    sync();
    expect(keys(map.ports)).toEqual([
      'kube-system/dns:dns-tcp/TCP',
      'kube-system/dns:dns/UDP',
      'kube-system/dns:metrics/TCP',
    ]);
  });
});

describe('service map: dual stack, one tracker per family', () => {
  const dual = makeService(
    'ns',
    'dual',
    {
      type: 'LoadBalancer',
      clusterIP: '10.0.0.1',
      clusterIPs: ['10.0.0.1', 'fd00::1'],
      externalIPs: ['192.168.99.1', '2001:db8::99'],
      loadBalancerSourceRanges: ['203.0.113.0/24', '2001:db8:1::/48'],
      ports: [{ name: 'p', port: 80, nodePort: 30080 }],
    },
    { status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }, { ip: '2001:db8::4' }] } } },
  );
  const v4only = makeService('ns', 'v4only', {
    clusterIP: '10.0.0.2',
    clusterIPs: ['10.0.0.2'],
    ports: [{ port: 80 }],
  });
  const v6only = makeService('ns', 'v6only', {
    clusterIP: 'fd00::3',
    clusterIPs: ['fd00::3'],
    ports: [{ port: 80 }],
  });

  it.each([
    [
      'IPv4',
      ['ns/dual:p/TCP', 'ns/v4only:/TCP'],
      ['10.0.0.1', ['192.168.99.1'], ['203.0.113.0/24'], ['1.2.3.4']],
    ],
    [
      'IPv6',
      ['ns/dual:p/TCP', 'ns/v6only:/TCP'],
      ['fd00::1', ['2001:db8::99'], ['2001:db8:1::/48'], ['2001:db8::4']],
    ],
  ] as const)('the %s tracker sees only its family', (family, expectedKeys, [cip, eips, ranges, vips]) => {
    const { tracker, map, sync } = setup(family);
    for (const svc of [dual, v4only, v6only]) tracker.update(undefined, svc);
    sync();
    expect(keys(map.ports)).toEqual(expectedKeys);
    const p = map.ports.get('ns/dual:p/TCP')!;
    expect([p.clusterIP, p.externalIPs, p.loadBalancerSourceRanges, p.loadBalancerVIPs]).toEqual([
      cip,
      eips,
      ranges,
      vips,
    ]);
  });
});

describe('service tracker: changes that revert themselves cancel out', () => {
  const a = makeService('ns', 's', {
    clusterIP: '10.0.0.1',
    ports: [{ name: 'p', port: 80, protocol: 'UDP' }],
  });
  const b = makeService('ns', 's', {
    clusterIP: '10.0.0.1',
    ports: [{ name: 'p', port: 81, protocol: 'UDP' }],
  });

  it('add then delete before a sync leaves nothing pending', () => {
    const { tracker, map, sync } = setup();
    expect(tracker.update(undefined, a)).toBe(true);
    expect(tracker.update(a, undefined)).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
    const r = sync();
    expect(r.updatedServices.size).toBe(0);
    expect(map.ports.size).toBe(0);
  });

  it('A → B → A before a sync leaves nothing pending, whatever happened in between', () => {
    const { tracker, sync } = setup();
    tracker.update(undefined, a);
    sync();
    expect(tracker.update(a, b)).toBe(true);
    expect(tracker.update(b, a)).toBe(false);
    const r = sync();
    expect([r.updatedServices.size, r.deletedServicePorts.length, r.deletedUDPClusterIPs.size]).toEqual([
      0, 0, 0,
    ]);
  });

  it('previous stays frozen at the first event: A → B → C reports what A had', () => {
    const { tracker, map, sync } = setup();
    const c = makeService('ns', 's', {
      clusterIP: '10.0.0.1',
      ports: [{ name: 'p', port: 82, protocol: 'UDP' }],
    });
    tracker.update(undefined, a);
    sync();
    tracker.update(a, b);
    tracker.update(b, c);
    const r = sync();
    expect(r.deletedServicePorts.map((p) => p.port)).toEqual([80]);
    expect(map.ports.get('ns/s:p/UDP')?.port).toBe(82);
  });

  it('reports any pending change, not this event: an unrelated no-op event still returns true', () => {
    const { tracker } = setup();
    tracker.update(undefined, a);
    const other = makeService('ns', 'other', { clusterIP: 'None', ports: [{ port: 80 }] });
    expect(tracker.update(undefined, other)).toBe(true);
    expect(tracker.pendingCount()).toBe(1);
  });

  it('reordering spec.ports is no change', () => {
    const { tracker, sync } = setup();
    const two = (order: number[]) =>
      makeService('ns', 's2', {
        clusterIP: '10.0.0.9',
        ports: order.map((i) => ({ name: `p${i}`, port: 80 + i })),
      });
    tracker.update(undefined, two([0, 1]));
    sync();
    expect(tracker.update(two([0, 1]), two([1, 0]))).toBe(false);
  });
});

describe('service map: deletions for conntrack cleanup', () => {
  const udpSvc = (clusterIP: string, port = 53, protocol: 'UDP' | 'TCP' | 'SCTP' = 'UDP') =>
    makeService('ns', 'dns', { clusterIP, ports: [{ name: 'dns', port, protocol }] });

  it('deleted and recreated between two syncs with a new cluster IP: the old IP is reported', () => {
    const { tracker, map, sync } = setup();
    tracker.update(undefined, udpSvc('10.0.0.10'));
    sync();
    tracker.update(udpSvc('10.0.0.10'), undefined);
    expect(tracker.update(undefined, udpSvc('10.0.0.20'))).toBe(true);
    const r = sync();
    expect([...r.deletedUDPClusterIPs]).toEqual(['10.0.0.10']);
    expect(r.deletedServicePorts.map((p) => p.clusterIP)).toEqual(['10.0.0.10']);
    expect(map.ports.get('ns/dns:dns/UDP')?.clusterIP).toBe('10.0.0.20');
    expect([...r.updatedServices]).toEqual(['ns/dns']);
  });

  it('deleted and recreated between two syncs identically: nothing pending', () => {
    const { tracker, sync } = setup();
    tracker.update(undefined, udpSvc('10.0.0.10'));
    sync();
    expect(tracker.update(udpSvc('10.0.0.10'), undefined)).toBe(true);
    expect(tracker.update(undefined, udpSvc('10.0.0.10'))).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
    const r = sync();
    expect([r.updatedServices.size, r.deletedServicePorts.length, r.deletedUDPClusterIPs.size]).toEqual([
      0, 0, 0,
    ]);
  });

  it.each([
    ['UDP → TCP (a new key; the UDP entry is removed)', udpSvc('10.0.0.10', 53, 'TCP'), ['10.0.0.10'], 1],
    ['port renumbered 53 → 5353 (same key, another frontend)', udpSvc('10.0.0.10', 5353), ['10.0.0.10'], 1],
    ['SCTP counts as UDP does', udpSvc('10.0.0.10', 53, 'SCTP'), ['10.0.0.10'], 1],
  ])('%s', (_n, next, ips, deleted) => {
    const { tracker, sync } = setup();
    tracker.update(undefined, udpSvc('10.0.0.10'));
    sync();
    tracker.update(udpSvc('10.0.0.10'), next);
    const r = sync();
    expect([...r.deletedUDPClusterIPs]).toEqual(ips);
    expect(r.deletedServicePorts).toHaveLength(deleted);
    expect(r.deletedServicePorts[0]?.port).toBe(53);
  });

  it('a removed TCP port is a deleted service port but no UDP cluster IP', () => {
    const { tracker, sync } = setup();
    const tcpSvc = udpSvc('10.0.0.10', 80, 'TCP');
    tracker.update(undefined, tcpSvc);
    sync();
    tracker.update(tcpSvc, undefined);
    const r = sync();
    expect(r.deletedServicePorts.map((p) => p.protocol)).toEqual(['TCP']);
    expect(r.deletedUDPClusterIPs.size).toBe(0);
  });

  it('a change that keeps the frontend (e.g. new external IP) deletes nothing', () => {
    const { tracker, sync } = setup();
    tracker.update(undefined, udpSvc('10.0.0.10'));
    sync();
    const withEIP = makeService('ns', 'dns', {
      clusterIP: '10.0.0.10',
      externalIPs: ['192.168.99.1'],
      ports: [{ name: 'dns', port: 53, protocol: 'UDP' }],
    });
    tracker.update(udpSvc('10.0.0.10'), withEIP);
    const r = sync();
    expect([r.updatedServices.size, r.deletedServicePorts.length, r.deletedUDPClusterIPs.size]).toEqual([
      1, 0, 0,
    ]);
  });
});

describe('service tracker: inputs are not modified', () => {
  it('frozen Services go through add, update, delete and a sync untouched', () => {
    const mk = (): Service =>
      makeService(
        'ns',
        's',
        {
          type: 'LoadBalancer',
          clusterIP: '172.30.0.041',
          externalIPs: ['192.168.099.1'],
          loadBalancerSourceRanges: [' 203.0.113.000/025 '],
          externalTrafficPolicy: 'Local',
          healthCheckNodePort: 30999,
          ports: [{ name: 'p', port: 80, nodePort: 30080 }],
        },
        { status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } },
      );
    const a = mk();
    const b = makeService('ns', 's', { clusterIP: '172.30.0.41', ports: [{ name: 'q', port: 81 }] });
    const before = JSON.stringify([a, b]);
    deepFreeze(a);
    deepFreeze(b);
    const { tracker, sync } = setup();
    tracker.update(undefined, a);
    sync();
    tracker.update(a, b);
    tracker.update(b, undefined);
    sync();
    expect(JSON.stringify([a, b])).toBe(before);
  });
});
