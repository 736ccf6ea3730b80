/**
 * What an endpoints-map update reports for conntrack cleanup and health checks: stale
 * endpoints, ports that became reachable (#48524), the cleanup flag, and local ready counts.
 */
import { describe, expect, it } from 'vitest';
import { createEndpointsChangeTracker } from '../../../../proxier/endpointschangetracker.ts';
import { createEndpointsMap, type EndpointsMapUpdateResult } from '../../../../proxier/endpointsmap.ts';
import type { Protocol } from '../../../../proxier/types.ts';
import { type EndpointSpec, ep, makeSlice, TEST_NODE, udp } from './fixtures.ts';

function setup() {
  const tracker = createEndpointsChangeTracker({ family: 'IPv4', nodeName: TEST_NODE });
  const map = createEndpointsMap();
  return {
    tracker,
    map,
    /** Sets the Service's only slice (undefined deletes it) and syncs. */
    step(
      endpoints: EndpointSpec[] | undefined,
      opts: { protocol?: Protocol; port?: number; service?: string } = {},
    ) {
      const slice = makeSlice('ns', opts.service ?? 'dns', 1, {
        endpoints: endpoints ?? [],
        ports: [{ name: 'dns', port: opts.port ?? 53, protocol: opts.protocol ?? 'UDP' }],
      });
      tracker.endpointSliceUpdate(slice, endpoints === undefined);
      return map.update(tracker);
    },
  };
}

const DNS = udp('ns', 'dns', 'dns');
const stale = (r: EndpointsMapUpdateResult) =>
  r.staleEndpoints.map((s) => `${s.servicePortKey} ${s.endpoint.endpoint}`);

describe('the #48524 sequence on a UDP Service: [A] → [] → [B] over three syncs', () => {
  it('second sync reports A stale, third reports the port newly serving', () => {
    const { step } = setup();
    const first = step([{ ip: '10.0.0.1' }]);
    expect([...first.newlyServingServicePorts]).toEqual([DNS]);
    expect(first.staleEndpoints).toEqual([]);

    const second = step([]);
    expect(stale(second)).toEqual([`${DNS} 10.0.0.1:53`]);
    expect(second.newlyServingServicePorts.size).toBe(0);
    expect(second.conntrackCleanupRequired).toBe(true);
    expect(second.previous.get(DNS)).toEqual([ep('10.0.0.1:53')]);
    expect(second.current.has(DNS)).toBe(false);

    const third = step([{ ip: '10.0.0.2' }]);
    expect([...third.newlyServingServicePorts]).toEqual([DNS]);
    expect(third.staleEndpoints).toEqual([]);
    expect(third.current.get(DNS)).toEqual([ep('10.0.0.2:53')]);
  });

  it('the same when the slice itself is deleted and recreated', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1' }]);
    expect(stale(step(undefined))).toEqual([`${DNS} 10.0.0.1:53`]);
    expect([...step([{ ip: '10.0.0.2' }]).newlyServingServicePorts]).toEqual([DNS]);
  });
});

describe('serving transitions', () => {
  it('created unready, then ready: newly serving only once ready', () => {
    const { step } = setup();
    const unready = step([{ ip: '10.0.0.1', ready: false, serving: false }]);
    expect(unready.newlyServingServicePorts.size).toBe(0);
    expect(unready.current.get(DNS)).toEqual([ep('10.0.0.1:53', { ready: false, serving: false })]);
    const ready = step([{ ip: '10.0.0.1' }]);
    expect([...ready.newlyServingServicePorts]).toEqual([DNS]);
    expect(ready.staleEndpoints).toEqual([]);
  });

  it('serving → not serving is stale', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    const r = step([{ ip: '10.0.0.1' }, { ip: '10.0.0.2', ready: false, serving: false }]);
    expect(stale(r)).toEqual([`${DNS} 10.0.0.2:53`]);
    expect(r.newlyServingServicePorts.size).toBe(0);
  });

  it('ready → terminating but still serving is not stale (it still gets traffic as a fallback)', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1' }]);
    const r = step([{ ip: '10.0.0.1', ready: false, serving: true, terminating: true }]);
    expect(r.staleEndpoints).toEqual([]);
    // …and once it stops serving, it is.
    expect(stale(step([{ ip: '10.0.0.1', ready: false, serving: false, terminating: true }]))).toEqual([
      `${DNS} 10.0.0.1:53`,
    ]);
  });

  it('an endpoint that never served is never stale', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1', ready: false, serving: false }]);
    expect(step([]).staleEndpoints).toEqual([]);
  });

  it('a renumbered target port makes the old IP:port stale without the port being newly serving', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1' }], { port: 53 });
    const r = step([{ ip: '10.0.0.1' }], { port: 5353 });
    expect(stale(r)).toEqual([`${DNS} 10.0.0.1:53`]);
    expect(r.newlyServingServicePorts.size).toBe(0);
  });

  it('a moved endpoint (new IP) is stale, the new one is not newly serving while another kept serving', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    const r = step([{ ip: '10.0.0.1' }, { ip: '10.0.0.3' }]);
    expect(stale(r)).toEqual([`${DNS} 10.0.0.2:53`]);
    expect(r.newlyServingServicePorts.size).toBe(0);
  });
});

describe('conntrackCleanupRequired', () => {
  it.each([
    ['UDP', 'UDP', true],
    ['SCTP', 'SCTP', true],
    ['TCP', 'TCP', false],
  ] as const)('a change to a %s Service → %s', (_n, protocol, expected) => {
    const { step } = setup();
    expect(step([{ ip: '10.0.0.1' }], { protocol }).conntrackCleanupRequired).toBe(expected);
    expect(step(undefined, { protocol }).conntrackCleanupRequired).toBe(expected);
  });

  it('a sync without endpoint changes requires nothing and reports nothing', () => {
    const { tracker, map, step } = setup();
    step([{ ip: '10.0.0.1' }]);
    const r = map.update(tracker);
    expect([r.updatedServices.size, r.previous.size, r.current.size, r.conntrackCleanupRequired]).toEqual([
      0,
      0,
      0,
      false,
    ]);
  });

  it('previous and current cover only the changed Services', () => {
    const { step } = setup();
    step([{ ip: '10.0.0.1' }], { service: 'a', protocol: 'TCP' });
    const r = step([{ ip: '10.0.0.2' }], { service: 'b', protocol: 'TCP' });
    expect([...r.previous.keys()]).toEqual([]);
    expect([...r.current.keys()]).toEqual(['ns/b:dns/TCP']);
    expect(r.conntrackCleanupRequired).toBe(false);
  });
});

describe('localReadyEndpoints (TestHealthCheckNodePortWhenTerminating)', () => {
  it('counts distinct local ready IPs; terminating endpoints, serving or not, do not count', () => {
    const { map, step } = setup();
    const local = (ip: string, c: Partial<EndpointSpec> = {}): EndpointSpec => ({
      ip,
      node: TEST_NODE,
      ...c,
    });
    step([
      local('10.0.1.1'),
      local('10.0.1.2'),
      local('10.0.1.3'),
      local('10.0.1.4', { ready: false, serving: false }),
      { ip: '10.0.2.1' },
    ]);
    expect(Object.fromEntries(map.localReadyEndpoints())).toEqual({ 'ns/dns': 3 });

    const t = { ready: false, terminating: true };
    step([
      local('10.0.1.1', { ...t, serving: true }),
      local('10.0.1.2', { ...t, serving: true }),
      local('10.0.1.3', { ...t, serving: false }),
      local('10.0.1.4', { ...t, serving: false }),
    ]);
    expect(map.localReadyEndpoints().size).toBe(0);
  });

  it('an IP behind two ports counts once', () => {
    const tracker = createEndpointsChangeTracker({ family: 'IPv4', nodeName: TEST_NODE });
    const map = createEndpointsMap();
    tracker.endpointSliceUpdate(
      makeSlice('ns', 'web', 1, {
        endpoints: [{ ip: '10.0.0.1', node: TEST_NODE }],
        ports: [
          { name: 'http', port: 80 },
          { name: 'https', port: 443 },
        ],
      }),
      false,
    );
    map.update(tracker);
    expect(Object.fromEntries(map.localReadyEndpoints())).toEqual({ 'ns/web': 1 });
  });
});
