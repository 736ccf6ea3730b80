/**
 * Upstream's TestUpdateEndpointsMap (pkg/proxy/endpointschangetracker_test.go), case by case:
 * slices are added, then changed, with a map update after each phase; the map, the changed
 * Services, the conntrack flag and the local ready endpoint counts are checked.
 */
import { describe, expect, it } from 'vitest';
import type { EndpointSlice } from '../../../../pkg/k8s/schemas.ts';
import { createEndpointsChangeTracker } from '../../../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../../../proxier/endpointsmap.ts';
import type { Endpoint } from '../../../../proxier/types.ts';
import { ep, makeSlice, type SliceSpec, TEST_NODE, udp } from './fixtures.ts';

const N = TEST_NODE;
const port = (name: string, p: number) => ({ name, port: p, protocol: 'UDP' as const });

const emptyEndpoint: SliceSpec = { endpoints: [], ports: [] };
const unnamedPort: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('', 11)] };
const unnamedPortReady: SliceSpec = {
  endpoints: [{ ip: '1.1.1.1', ready: true, serving: true, terminating: false }],
  ports: [port('', 11)],
};
const unnamedPortTerminating: SliceSpec = {
  endpoints: [{ ip: '1.1.1.1', ready: false, serving: true, terminating: true }],
  ports: [port('', 11)],
};
const unnamedPortLocal: SliceSpec = { endpoints: [{ ip: '1.1.1.1', node: N }], ports: [port('', 11)] };
const namedPortLocal: SliceSpec = { endpoints: [{ ip: '1.1.1.1', node: N }], ports: [port('p11', 11)] };
const namedPort: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('p11', 11)] };
const namedPortRenamed: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('p11-2', 11)] };
const namedPortRenumbered: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('p11', 22)] };
const namedPortsLocalNoLocal: SliceSpec = {
  endpoints: [{ ip: '1.1.1.1' }, { ip: '1.1.1.2', node: N }],
  ports: [port('p11', 11), port('p12', 12)],
};
const multipleSubsets_s1: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('p11', 11)] };
const multipleSubsets_s2: SliceSpec = { endpoints: [{ ip: '1.1.1.2' }], ports: [port('p12', 12)] };
const multipleSubsetsWithLocal_s1: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('p11', 11)] };
const multipleSubsetsWithLocal_s2: SliceSpec = {
  endpoints: [{ ip: '1.1.1.2', node: N }],
  ports: [port('p12', 12)],
};
const multipleSubsetsMultiplePortsLocal_s1: SliceSpec = {
  endpoints: [{ ip: '1.1.1.1', node: N }],
  ports: [port('p11', 11), port('p12', 12)],
};
const multipleSubsetsMultiplePortsLocal_s2: SliceSpec = {
  endpoints: [{ ip: '1.1.1.3' }],
  ports: [port('p13', 13)],
};
const multipleSubsetsIPsPorts1_s1: SliceSpec = {
  endpoints: [{ ip: '1.1.1.1' }, { ip: '1.1.1.2', node: N }],
  ports: [port('p11', 11), port('p12', 12)],
};
const multipleSubsetsIPsPorts1_s2: SliceSpec = {
  endpoints: [{ ip: '1.1.1.3' }, { ip: '1.1.1.4', node: N }],
  ports: [port('p13', 13), port('p14', 14)],
};
const multipleSubsetsIPsPorts2: SliceSpec = {
  endpoints: [{ ip: '2.2.2.1' }, { ip: '2.2.2.2', node: N }],
  ports: [port('p21', 21), port('p22', 22)],
};
const complexBefore1: SliceSpec = { endpoints: [{ ip: '1.1.1.1' }], ports: [port('p11', 11)] };
const complexBefore2_s1: SliceSpec = {
  endpoints: [
    { ip: '2.2.2.2', node: N },
    { ip: '2.2.2.22', node: N },
  ],
  ports: [port('p22', 22)],
};
const complexBefore2_s2: SliceSpec = { endpoints: [{ ip: '2.2.2.3', node: N }], ports: [port('p23', 23)] };
const complexBefore4_s1: SliceSpec = {
  endpoints: [
    { ip: '4.4.4.4', node: N },
    { ip: '4.4.4.5', node: N },
  ],
  ports: [port('p44', 44)],
};
const complexBefore4_s2: SliceSpec = { endpoints: [{ ip: '4.4.4.6', node: N }], ports: [port('p45', 45)] };
const complexAfter1_s1: SliceSpec = {
  endpoints: [{ ip: '1.1.1.1' }, { ip: '1.1.1.11' }],
  ports: [port('p11', 11)],
};
const complexAfter1_s2: SliceSpec = {
  endpoints: [{ ip: '1.1.1.2' }],
  ports: [port('p12', 12), port('p122', 122)],
};
const complexAfter3: SliceSpec = { endpoints: [{ ip: '3.3.3.3' }], ports: [port('p33', 33)] };
const complexAfter4: SliceSpec = { endpoints: [{ ip: '4.4.4.4', node: N }], ports: [port('p44', 44)] };

const s = (ns: string, name: string, n: number, spec: SliceSpec) => makeSlice(ns, name, n, spec);
const L = { local: true };

interface Case {
  name: string;
  previousSlices: (EndpointSlice | null)[];
  currentSlices: (EndpointSlice | null)[];
  previousMap: Record<string, Endpoint[]>;
  expectedMap: Record<string, Endpoint[]>;
  conntrackCleanupRequired: boolean;
  localEndpoints: Record<string, number>;
  changed: string[];
}

const cases: Case[] = [
  {
    name: 'empty',
    previousSlices: [],
    currentSlices: [],
    previousMap: {},
    expectedMap: {},
    conntrackCleanupRequired: false,
    localEndpoints: {},
    changed: [],
  },
  {
    name: 'no change, unnamed port',
    previousSlices: [s('ns1', 'ep1', 1, unnamedPort)],
    currentSlices: [s('ns1', 'ep1', 1, unnamedPort)],
    previousMap: { [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11')] },
    expectedMap: { [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11')] },
    conntrackCleanupRequired: false,
    localEndpoints: {},
    changed: [],
  },
  {
    name: 'no change, named port, local',
    previousSlices: [s('ns1', 'ep1', 1, namedPortLocal)],
    currentSlices: [s('ns1', 'ep1', 1, namedPortLocal)],
    previousMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11', L)] },
    expectedMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11', L)] },
    conntrackCleanupRequired: false,
    localEndpoints: { 'ns1/ep1': 1 },
    changed: [],
  },
  {
    name: 'no change, multiple slices',
    previousSlices: [s('ns1', 'ep1', 1, multipleSubsets_s1), s('ns1', 'ep1', 2, multipleSubsets_s2)],
    currentSlices: [s('ns1', 'ep1', 1, multipleSubsets_s1), s('ns1', 'ep1', 2, multipleSubsets_s2)],
    previousMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.2:12')],
    },
    expectedMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.2:12')],
    },
    conntrackCleanupRequired: false,
    localEndpoints: {},
    changed: [],
  },
  {
    name: 'no change, multiple slices, multiple ports, local',
    previousSlices: [
      s('ns1', 'ep1', 1, multipleSubsetsMultiplePortsLocal_s1),
      s('ns1', 'ep1', 2, multipleSubsetsMultiplePortsLocal_s2),
    ],
    currentSlices: [
      s('ns1', 'ep1', 1, multipleSubsetsMultiplePortsLocal_s1),
      s('ns1', 'ep1', 2, multipleSubsetsMultiplePortsLocal_s2),
    ],
    previousMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11', L)],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.1:12', L)],
      [udp('ns1', 'ep1', 'p13')]: [ep('1.1.1.3:13')],
    },
    expectedMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11', L)],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.1:12', L)],
      [udp('ns1', 'ep1', 'p13')]: [ep('1.1.1.3:13')],
    },
    conntrackCleanupRequired: false,
    localEndpoints: { 'ns1/ep1': 1 },
    changed: [],
  },
  {
    name: 'no change, multiple services, slices, IPs, and ports',
    previousSlices: [
      s('ns1', 'ep1', 1, multipleSubsetsIPsPorts1_s1),
      s('ns1', 'ep1', 2, multipleSubsetsIPsPorts1_s2),
      s('ns2', 'ep2', 1, multipleSubsetsIPsPorts2),
    ],
    currentSlices: [
      s('ns1', 'ep1', 1, multipleSubsetsIPsPorts1_s1),
      s('ns1', 'ep1', 2, multipleSubsetsIPsPorts1_s2),
      s('ns2', 'ep2', 1, multipleSubsetsIPsPorts2),
    ],
    previousMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11'), ep('1.1.1.2:11', L)],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.1:12'), ep('1.1.1.2:12', L)],
      [udp('ns1', 'ep1', 'p13')]: [ep('1.1.1.3:13'), ep('1.1.1.4:13', L)],
      [udp('ns1', 'ep1', 'p14')]: [ep('1.1.1.3:14'), ep('1.1.1.4:14', L)],
      [udp('ns2', 'ep2', 'p21')]: [ep('2.2.2.1:21'), ep('2.2.2.2:21', L)],
      [udp('ns2', 'ep2', 'p22')]: [ep('2.2.2.1:22'), ep('2.2.2.2:22', L)],
    },
    expectedMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11'), ep('1.1.1.2:11', L)],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.1:12'), ep('1.1.1.2:12', L)],
      [udp('ns1', 'ep1', 'p13')]: [ep('1.1.1.3:13'), ep('1.1.1.4:13', L)],
      [udp('ns1', 'ep1', 'p14')]: [ep('1.1.1.3:14'), ep('1.1.1.4:14', L)],
      [udp('ns2', 'ep2', 'p21')]: [ep('2.2.2.1:21'), ep('2.2.2.2:21', L)],
      [udp('ns2', 'ep2', 'p22')]: [ep('2.2.2.1:22'), ep('2.2.2.2:22', L)],
    },
    conntrackCleanupRequired: false,
    localEndpoints: { 'ns1/ep1': 2, 'ns2/ep2': 1 },
    changed: [],
  },
  {
    name: 'add an EndpointSlice',
    previousSlices: [null],
    currentSlices: [s('ns1', 'ep1', 1, unnamedPortLocal)],
    previousMap: {},
    expectedMap: { [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11', L)] },
    conntrackCleanupRequired: true,
    localEndpoints: { 'ns1/ep1': 1 },
    changed: ['ns1/ep1'],
  },
  {
    name: 'remove an EndpointSlice',
    previousSlices: [s('ns1', 'ep1', 1, unnamedPortLocal)],
    currentSlices: [null],
    previousMap: { [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11', L)] },
    expectedMap: {},
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'add an IP and port',
    previousSlices: [s('ns1', 'ep1', 1, namedPort)],
    currentSlices: [s('ns1', 'ep1', 1, namedPortsLocalNoLocal)],
    previousMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')] },
    expectedMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11'), ep('1.1.1.2:11', L)],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.1:12'), ep('1.1.1.2:12', L)],
    },
    conntrackCleanupRequired: true,
    localEndpoints: { 'ns1/ep1': 1 },
    changed: ['ns1/ep1'],
  },
  {
    name: 'remove an IP and port',
    previousSlices: [s('ns1', 'ep1', 1, namedPortsLocalNoLocal)],
    currentSlices: [s('ns1', 'ep1', 1, namedPort)],
    previousMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11'), ep('1.1.1.2:11', L)],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.1:12'), ep('1.1.1.2:12', L)],
    },
    expectedMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')] },
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'add a slice to an endpoint',
    previousSlices: [s('ns1', 'ep1', 1, namedPort), null],
    currentSlices: [
      s('ns1', 'ep1', 1, multipleSubsetsWithLocal_s1),
      s('ns1', 'ep1', 2, multipleSubsetsWithLocal_s2),
    ],
    previousMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')] },
    expectedMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.2:12', L)],
    },
    conntrackCleanupRequired: true,
    localEndpoints: { 'ns1/ep1': 1 },
    changed: ['ns1/ep1'],
  },
  {
    name: 'remove a slice from an endpoint',
    previousSlices: [s('ns1', 'ep1', 1, multipleSubsets_s1), s('ns1', 'ep1', 2, multipleSubsets_s2)],
    currentSlices: [s('ns1', 'ep1', 1, namedPort), null],
    previousMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.2:12')],
    },
    expectedMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')] },
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'rename a port',
    previousSlices: [s('ns1', 'ep1', 1, namedPort)],
    currentSlices: [s('ns1', 'ep1', 1, namedPortRenamed)],
    previousMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')] },
    expectedMap: { [udp('ns1', 'ep1', 'p11-2')]: [ep('1.1.1.1:11')] },
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'renumber a port',
    previousSlices: [s('ns1', 'ep1', 1, namedPort)],
    currentSlices: [s('ns1', 'ep1', 1, namedPortRenumbered)],
    previousMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')] },
    expectedMap: { [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:22')] },
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'complex add and remove',
    previousSlices: [
      s('ns1', 'ep1', 1, complexBefore1),
      null,
      s('ns2', 'ep2', 1, complexBefore2_s1),
      s('ns2', 'ep2', 2, complexBefore2_s2),
      null,
      null,
      s('ns4', 'ep4', 1, complexBefore4_s1),
      s('ns4', 'ep4', 2, complexBefore4_s2),
    ],
    currentSlices: [
      s('ns1', 'ep1', 1, complexAfter1_s1),
      s('ns1', 'ep1', 2, complexAfter1_s2),
      null,
      null,
      s('ns3', 'ep3', 1, complexAfter3),
      null,
      s('ns4', 'ep4', 1, complexAfter4),
      null,
    ],
    previousMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.1:11')],
      // String order, as upstream: '2.2.2.22:22' < '2.2.2.2:22' because '2' < ':'.
      [udp('ns2', 'ep2', 'p22')]: [ep('2.2.2.22:22', L), ep('2.2.2.2:22', L)],
      [udp('ns2', 'ep2', 'p23')]: [ep('2.2.2.3:23', L)],
      [udp('ns4', 'ep4', 'p44')]: [ep('4.4.4.4:44', L), ep('4.4.4.5:44', L)],
      [udp('ns4', 'ep4', 'p45')]: [ep('4.4.4.6:45', L)],
    },
    expectedMap: {
      [udp('ns1', 'ep1', 'p11')]: [ep('1.1.1.11:11'), ep('1.1.1.1:11')],
      [udp('ns1', 'ep1', 'p12')]: [ep('1.1.1.2:12')],
      [udp('ns1', 'ep1', 'p122')]: [ep('1.1.1.2:122')],
      [udp('ns3', 'ep3', 'p33')]: [ep('3.3.3.3:33')],
      [udp('ns4', 'ep4', 'p44')]: [ep('4.4.4.4:44', L)],
    },
    conntrackCleanupRequired: true,
    localEndpoints: { 'ns4/ep4': 1 },
    changed: ['ns1/ep1', 'ns2/ep2', 'ns3/ep3', 'ns4/ep4'],
  },
  {
    name: 'change from 0 endpoint address to 1 unnamed port',
    previousSlices: [s('ns1', 'ep1', 1, emptyEndpoint)],
    currentSlices: [s('ns1', 'ep1', 1, unnamedPort)],
    previousMap: {},
    expectedMap: { [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11')] },
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'change from ready to terminating pod',
    previousSlices: [s('ns1', 'ep1', 1, unnamedPortReady)],
    currentSlices: [s('ns1', 'ep1', 1, unnamedPortTerminating)],
    previousMap: { [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11')] },
    expectedMap: {
      [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11', { ready: false, serving: true, terminating: true })],
    },
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
  {
    name: 'change from terminating to empty pod',
    previousSlices: [s('ns1', 'ep1', 1, unnamedPortTerminating)],
    currentSlices: [s('ns1', 'ep1', 1, emptyEndpoint)],
    previousMap: {
      [udp('ns1', 'ep1', '')]: [ep('1.1.1.1:11', { ready: false, serving: true, terminating: true })],
    },
    expectedMap: {},
    conntrackCleanupRequired: true,
    localEndpoints: {},
    changed: ['ns1/ep1'],
  },
];

/** The map with each list as given (order matters), keys sorted. */
function snapshot(m: ReadonlyMap<string, readonly Endpoint[]>): Record<string, readonly Endpoint[]> {
  return Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)));
}

describe('TestUpdateEndpointsMap (upstream cases)', () => {
  it.each(cases)('$name', (tc) => {
    expect(tc.previousSlices.length).toBe(tc.currentSlices.length);
    const tracker = createEndpointsChangeTracker({ family: 'IPv4', nodeName: TEST_NODE });
    const map = createEndpointsMap();

    for (const slice of tc.previousSlices) if (slice) tracker.endpointSliceUpdate(slice, false);
    map.update(tracker);
    expect(snapshot(map.endpoints)).toEqual(tc.previousMap);

    tc.previousSlices.forEach((prev, i) => {
      const cur = tc.currentSlices[i];
      if (cur) tracker.endpointSliceUpdate(cur, false);
      else if (prev) tracker.endpointSliceUpdate(prev, true);
    });
    const result = map.update(tracker);

    expect(snapshot(map.endpoints)).toEqual(tc.expectedMap);
    expect([...result.updatedServices].sort()).toEqual(tc.changed);
    expect(result.conntrackCleanupRequired).toBe(tc.conntrackCleanupRequired);
    expect(Object.fromEntries(map.localReadyEndpoints())).toEqual(tc.localEndpoints);
    // `current` holds exactly the changed Services' ports, as the map now has them.
    for (const [key, list] of result.current) expect(map.endpoints.get(key)).toBe(list);
  });
});
