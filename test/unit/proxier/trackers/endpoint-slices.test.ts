/**
 * The EndpointSlice cache and the endpoints tracker: what is stored, how slices of one Service
 * merge, and what the tracker returns (upstream's endpointslicecache_test.go and
 * TestEndpointSliceUpdate / TestLastChangeTriggerTime).
 */
import { describe, expect, it } from 'vitest';
import type { EndpointSlice } from '../../../../pkg/k8s/schemas.ts';
import { createEndpointsChangeTracker } from '../../../../proxier/endpointschangetracker.ts';
import {
  buildServiceEndpoints,
  createEndpointSliceCache,
  sliceData,
} from '../../../../proxier/endpointslicecache.ts';
import { createEndpointsMap } from '../../../../proxier/endpointsmap.ts';
import { deepFreeze, ep, makeSlice, type SliceSpec, TEST_NODE, tcp } from './fixtures.ts';

const http = { name: 'http', port: 80, protocol: 'TCP' as const };

function setup(opts: { family?: 'IPv4' | 'IPv6'; startTime?: Date } = {}) {
  const tracker = createEndpointsChangeTracker({
    family: opts.family ?? 'IPv4',
    nodeName: TEST_NODE,
    ...(opts.startTime ? { startTime: opts.startTime } : {}),
  });
  const map = createEndpointsMap();
  return { tracker, map, sync: () => map.update(tracker) };
}

const endpointsOf = (map: ReturnType<typeof createEndpointsMap>, key: string) =>
  (map.endpoints.get(key) ?? []).map((e) => e.endpoint);

describe('endpoints tracker: what is stored', () => {
  const slice = makeSlice('ns1', 'svc1', 1, { endpoints: [{ ip: '10.0.1.1' }], ports: [http] });

  it.each([
    ['an FQDN slice', { addressType: 'FQDN' as const, endpoints: [], ports: [http] }, 'IPv4'],
    [
      'an IPv6 slice in the IPv4 tracker',
      { endpoints: [{ ip: 'fd00::1' }], ports: [http], addressType: 'IPv6' as const },
      'IPv4',
    ],
    ['an IPv4 slice in the IPv6 tracker', { endpoints: [{ ip: '10.0.0.1' }], ports: [http] }, 'IPv6'],
  ] as [string, SliceSpec, 'IPv4' | 'IPv6'][])('ignores %s', (_n, spec, family) => {
    const { tracker } = setup({ family });
    expect(tracker.endpointSliceUpdate(makeSlice('ns1', 'svc1', 1, spec), false)).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
  });

  it('ignores a slice without the service-name label', () => {
    const { tracker } = setup();
    const unlabelled: EndpointSlice = { ...slice, metadata: { ...slice.metadata, labels: {} } };
    expect(tracker.endpointSliceUpdate(unlabelled, false)).toBe(false);
  });

  it('returns whether THIS event needs a sync: a new slice yes, the same slice again no', () => {
    const { tracker, sync } = setup();
    expect(tracker.endpointSliceUpdate(slice, false)).toBe(true);
    expect(tracker.endpointSliceUpdate(slice, false)).toBe(false);
    sync();
    expect(tracker.endpointSliceUpdate(slice, false)).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
  });

  it('an update that changes nothing the proxy uses (resourceVersion, endpoint order) stores nothing', () => {
    const { tracker, sync } = setup();
    const two = (order: string[], rv: string) =>
      makeSlice('ns1', 'svc1', 1, {
        endpoints: order.map((ip) => ({ ip })),
        ports: [http],
        resourceVersion: rv,
      });
    tracker.endpointSliceUpdate(two(['10.0.1.1', '10.0.1.2'], '1'), false);
    sync();
    expect(tracker.endpointSliceUpdate(two(['10.0.1.2', '10.0.1.1'], '2'), false)).toBe(false);
  });

  it('removing a slice that was never seen is a no-op', () => {
    const { tracker } = setup();
    expect(tracker.endpointSliceUpdate(slice, true)).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
  });

  it('add then remove before a sync cancels out', () => {
    const { tracker, sync } = setup();
    expect(tracker.endpointSliceUpdate(slice, false)).toBe(true);
    expect(tracker.endpointSliceUpdate(slice, true)).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
    expect(sync().updatedServices.size).toBe(0);
  });

  it('A → B → A before a sync cancels out', () => {
    const { tracker, map, sync } = setup();
    const b = makeSlice('ns1', 'svc1', 1, { endpoints: [{ ip: '10.0.1.9' }], ports: [http] });
    tracker.endpointSliceUpdate(slice, false);
    sync();
    expect(tracker.endpointSliceUpdate(b, false)).toBe(true);
    expect(tracker.endpointSliceUpdate(slice, false)).toBe(false);
    expect(tracker.pendingCount()).toBe(0);
    const r = sync();
    expect([r.updatedServices.size, r.staleEndpoints.length, r.newlyServingServicePorts.size]).toEqual([
      0, 0, 0,
    ]);
    expect(endpointsOf(map, tcp('ns1', 'svc1', 'http'))).toEqual(['10.0.1.1:80']);
  });

  it('remove then re-add the same slice before a sync cancels out', () => {
    const { tracker, sync } = setup();
    tracker.endpointSliceUpdate(slice, false);
    sync();
    expect(tracker.endpointSliceUpdate(slice, true)).toBe(true);
    expect(tracker.endpointSliceUpdate(slice, false)).toBe(false);
    expect(sync().updatedServices.size).toBe(0);
  });
});

describe('endpoint slice cache: merging the slices of a Service', () => {
  it('an endpoint moving between slices is never missing: old slice updated first, then the new one', () => {
    const { tracker, map, sync } = setup();
    const s1 = (ips: string[]) =>
      makeSlice('ns1', 'svc1', 1, { endpoints: ips.map((ip) => ({ ip })), ports: [http] });
    const s2 = (ips: string[]) =>
      makeSlice('ns1', 'svc1', 2, { endpoints: ips.map((ip) => ({ ip })), ports: [http] });
    tracker.endpointSliceUpdate(s1(['10.0.1.1', '10.0.1.2']), false);
    tracker.endpointSliceUpdate(s2(['10.0.2.1']), false);
    sync();

    // The controller adds 10.0.1.2 to slice 2 before removing it from slice 1: a sync in between
    // sees it twice and keeps one copy.
    tracker.endpointSliceUpdate(s2(['10.0.2.1', '10.0.1.2']), false);
    const mid = sync();
    expect(endpointsOf(map, tcp('ns1', 'svc1', 'http'))).toEqual([
      '10.0.1.1:80',
      '10.0.1.2:80',
      '10.0.2.1:80',
    ]);
    expect(mid.staleEndpoints).toEqual([]);

    tracker.endpointSliceUpdate(s1(['10.0.1.1']), false);
    const end = sync();
    expect(endpointsOf(map, tcp('ns1', 'svc1', 'http'))).toEqual([
      '10.0.1.1:80',
      '10.0.1.2:80',
      '10.0.2.1:80',
    ]);
    expect(end.staleEndpoints).toEqual([]);
    expect([...end.updatedServices]).toEqual(['ns1/svc1']);
  });

  it.each([
    ['terminating in slice 1, running in slice 2', [true, false]],
    ['running in slice 1, terminating in slice 2', [false, true]],
  ])('a reused IP: the non-terminating endpoint wins whichever slice it is in (%s)', (_n, [t1, t2]) => {
    const { tracker, map, sync } = setup();
    const mk = (n: number, terminating: boolean) =>
      makeSlice('ns1', 'svc1', n, {
        endpoints: [{ ip: '10.0.0.5', ready: !terminating, serving: !terminating, terminating }],
        ports: [http],
      });
    tracker.endpointSliceUpdate(mk(1, t1!), false);
    tracker.endpointSliceUpdate(mk(2, t2!), false);
    sync();
    expect(map.endpoints.get(tcp('ns1', 'svc1', 'http'))).toEqual([ep('10.0.0.5:80')]);
  });

  it('ports without a name or with no/zero port number are skipped; a port with no endpoints has no entry', () => {
    const data = sliceData(
      makeSlice('ns1', 'svc1', 1, {
        endpoints: [{ ip: '10.0.0.1' }],
        ports: [
          { name: null, port: 80 },
          { name: 'noport', port: null },
          { name: 'zero', port: 0 },
          { name: 'ok', port: 8080 },
        ],
      }),
      TEST_NODE,
    );
    const out = buildServiceEndpoints('ns1', 'svc1', new Map([['svc1-1', data]]));
    expect([...out.keys()]).toEqual([tcp('ns1', 'svc1', 'ok')]);
    const empty = sliceData(makeSlice('ns1', 'svc1', 2, { endpoints: [], ports: [http] }), TEST_NODE);
    expect(buildServiceEndpoints('ns1', 'svc1', new Map([['svc1-2', empty]])).size).toBe(0);
  });

  it('keeps conditions, locality (only for this node name) and zone and node hints; IPs are canonical', () => {
    const { tracker, map, sync } = setup();
    tracker.endpointSliceUpdate(
      makeSlice('ns1', 'svc1', 1, {
        endpoints: [
          { ip: '10.0.0.001', node: TEST_NODE, zones: ['zone-a'], nodes: [TEST_NODE] },
          { ip: '10.0.0.2', node: 'other-node', ready: false, serving: true, terminating: true },
          { ip: '10.0.0.3', ready: false, serving: false, terminating: false },
        ],
        ports: [http],
      }),
      false,
    );
    sync();
    const [a, b, c] = map.endpoints.get(tcp('ns1', 'svc1', 'http'))!;
    expect(a).toEqual({
      ...ep('10.0.0.1:80', { local: true }),
      zoneHints: new Set(['zone-a']),
      nodeHints: new Set([TEST_NODE]),
    });
    expect(b).toEqual(ep('10.0.0.2:80', { ready: false, serving: true, terminating: true }));
    expect(c).toEqual(ep('10.0.0.3:80', { ready: false, serving: false }));
  });

  it('with an empty node name nothing is local, even endpoints without a node name', () => {
    const tracker = createEndpointsChangeTracker({ family: 'IPv4', nodeName: '' });
    const map = createEndpointsMap();
    tracker.endpointSliceUpdate(
      makeSlice('ns1', 'svc1', 1, {
        endpoints: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2', node: '' }],
        ports: [http],
      }),
      false,
    );
    map.update(tracker);
    expect(map.endpoints.get(tcp('ns1', 'svc1', 'http'))!.map((e) => e.isLocal)).toEqual([false, false]);
  });

  it('IPv6 endpoints are bracketed and sorted as strings', () => {
    const { tracker, map, sync } = setup({ family: 'IPv6' });
    tracker.endpointSliceUpdate(
      makeSlice('ns1', 'svc1', 1, {
        addressType: 'IPv6',
        endpoints: [{ ip: 'FD00::0:10' }, { ip: 'fd00::2' }, { ip: 'fd00::1' }],
        ports: [http],
      }),
      false,
    );
    sync();
    expect(endpointsOf(map, tcp('ns1', 'svc1', 'http'))).toEqual([
      '[fd00::10]:80',
      '[fd00::1]:80',
      '[fd00::2]:80',
    ]);
  });

  it('sorting is deterministic: any order of slices and endpoints gives the same list, by string', () => {
    const ips = ['10.1.1.1', '10.1.1.11', '10.1.1.2', '10.1.1.100', '9.0.0.1', '10.1.1.10'];
    const expected = [
      '10.1.1.100:11',
      '10.1.1.10:11',
      '10.1.1.11:11',
      '10.1.1.1:11',
      '10.1.1.2:11',
      '9.0.0.1:11',
    ];
    const orders = [ips, [...ips].reverse(), [ips[3]!, ips[0]!, ips[5]!, ips[1]!, ips[4]!, ips[2]!]];
    for (const order of orders) {
      for (const split of [1, 3, 5]) {
        const { tracker, map, sync } = setup();
        const first = order.slice(0, split).map((ip) => ({ ip }));
        const second = order.slice(split).map((ip) => ({ ip }));
        const port = [{ name: 'p', port: 11, protocol: 'UDP' as const }];
        // Feed the slices in both event orders.
        const slices = [
          makeSlice('ns', 's', 2, { endpoints: second, ports: port }),
          makeSlice('ns', 's', 1, { endpoints: first, ports: port }),
        ];
        for (const sl of split % 2 ? slices : [...slices].reverse()) tracker.endpointSliceUpdate(sl, false);
        sync();
        expect(endpointsOf(map, 'ns/s:p/UDP')).toEqual(expected);
      }
    }
  });

  it('does not modify or keep its inputs: frozen slices work, and later changes to them are not seen', () => {
    const { tracker, map, sync } = setup();
    const spec: SliceSpec = {
      endpoints: [
        { ip: '10.0.0.02', node: TEST_NODE, zones: ['z'] },
        { ip: '10.0.0.1', ready: false, serving: true, terminating: true },
      ],
      ports: [
        { name: 'b', port: 90 },
        { name: 'a', port: 80 },
      ],
      triggerTime: '2030-01-01T00:00:00Z',
    };
    const frozen = deepFreeze(makeSlice('ns1', 'svc1', 1, spec));
    const before = JSON.stringify(frozen);
    tracker.endpointSliceUpdate(frozen, false);
    sync();
    tracker.endpointSliceUpdate(frozen, true);
    sync();
    expect(JSON.stringify(frozen)).toBe(before);

    const mutable = makeSlice('ns1', 'svc1', 1, spec);
    tracker.endpointSliceUpdate(mutable, false);
    sync();
    mutable.endpoints[0]!.addresses[0] = '10.9.9.9';
    mutable.ports.pop();
    tracker.endpointSliceUpdate(makeSlice('ns1', 'other', 1, spec), false);
    sync();
    expect(endpointsOf(map, tcp('ns1', 'svc1', 'a'))).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(endpointsOf(map, tcp('ns1', 'svc1', 'b'))).toEqual(['10.0.0.1:90', '10.0.0.2:90']);
  });

  it('the cache forgets a Service whose last slice was removed', () => {
    const cache = createEndpointSliceCache(TEST_NODE);
    const slice = makeSlice('ns1', 'svc1', 1, { endpoints: [{ ip: '10.0.0.1' }], ports: [http] });
    cache.updatePending(slice, false);
    cache.checkoutChanges();
    cache.updatePending(slice, true);
    const changes = cache.checkoutChanges();
    expect(changes.get('ns1/svc1')?.current.size).toBe(0);
    // A second removal is a no-op: nothing is left to remove.
    expect(cache.updatePending(slice, true)).toBe('unchanged');
    expect(cache.checkoutChanges().size).toBe(0);
  });
});

describe('endpoints tracker: last-change trigger times (TestLastChangeTriggerTime)', () => {
  const start = new Date('2018-01-01T00:00:00Z');
  const at = (s: number) => new Date(start.getTime() + s * 1000);
  const mk = (svc: string, t: Date | undefined, port = 11) =>
    makeSlice('ns', svc, 1, {
      endpoints: [{ ip: '1.1.1.1' }],
      ports: [{ name: 'p11', port }],
      ...(t ? { triggerTime: t.toISOString() } : {}),
    });

  it.each([
    ['single add', (tr: Tracker) => tr.endpointSliceUpdate(mk('ep1', at(1)), false), { 'ns/ep1': [at(1)] }],
    [
      'add then update',
      (tr: Tracker) => {
        tr.endpointSliceUpdate(mk('ep1', at(1)), false);
        tr.endpointSliceUpdate(mk('ep1', at(2), 12), false);
      },
      { 'ns/ep1': [at(1), at(2)] },
    ],
    [
      'two Services, one modified',
      (tr: Tracker) => {
        tr.endpointSliceUpdate(mk('ep1', at(2)), false);
        tr.endpointSliceUpdate(mk('ep2', at(3)), false);
        tr.endpointSliceUpdate(mk('ep1', at(4), 12), false);
      },
      { 'ns/ep1': [at(2), at(4)], 'ns/ep2': [at(3)] },
    ],
    ['no annotation', (tr: Tracker) => tr.endpointSliceUpdate(mk('ep1', undefined), false), {}],
    [
      'created before the tracker started',
      (tr: Tracker) => tr.endpointSliceUpdate(mk('ep1', at(-1)), false),
      {},
    ],
    [
      'add then delete',
      (tr: Tracker) => {
        tr.endpointSliceUpdate(mk('ep1', at(1)), false);
        tr.endpointSliceUpdate(mk('ep1', at(1)), true);
      },
      {},
    ],
    [
      'add, delete, add again',
      (tr: Tracker) => {
        tr.endpointSliceUpdate(mk('ep1', at(1)), false);
        tr.endpointSliceUpdate(mk('ep1', at(1)), true);
        tr.endpointSliceUpdate(mk('ep1', at(2), 12), false);
      },
      { 'ns/ep1': [at(2)] },
    ],
    ['delete only', (tr: Tracker) => tr.endpointSliceUpdate(mk('ep1', at(1)), true), {}],
  ])('%s', (_n, scenario, expected) => {
    const { tracker, sync } = setup({ startTime: start });
    scenario(tracker);
    expect(Object.fromEntries(sync().lastChangeTriggerTimes)).toEqual(expected);
  });

  it('keeps sub-second precision to the millisecond', () => {
    const { tracker, sync } = setup({ startTime: start });
    const slice = makeSlice('ns', 'ep1', 1, {
      endpoints: [{ ip: '1.1.1.1' }],
      ports: [http],
      triggerTime: '2018-01-01T00:00:01.123456789Z',
    });
    tracker.endpointSliceUpdate(slice, false);
    expect(sync().lastChangeTriggerTimes.get('ns/ep1')).toEqual([new Date('2018-01-01T00:00:01.123Z')]);
  });
});

type Tracker = ReturnType<typeof createEndpointsChangeTracker>;
