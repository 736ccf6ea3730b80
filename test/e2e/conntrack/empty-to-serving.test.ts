/**
 * Empty → serving (PR #48524, widened to every frontend): a client streams UDP from one source
 * port to a frontend before anything serves it, so its conntrack entry is un-NATed; the Service
 * then appears with no endpoints, and later gets a ready one. The client must get answers from
 * that endpoint within 2 s of the EndpointSlice update. Cluster IP, NodePort and external IP,
 * on both iptables backends; each also runs with cleanup disabled and must stay blackholed.
 *
 * Why the client starts before the Service: once the proxy has programmed a Service with no
 * endpoints, its REJECT rule drops the first datagram of a flow before conntrack confirms the
 * entry, so no entry exists to go stale. An un-NATed entry is born when datagrams arrive before
 * the rules do (a new Service, a client that starts first), and then lives on: the REJECT rule
 * answers later datagrams with ICMP, but each of them refreshes the entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClusterPair,
  type ConntrackCluster,
  destroyPair,
  expectOutcome,
  isUnNATed,
  onBoth,
  SETUP_TIMEOUT_MS,
  SPORT,
  startPair,
  udpPort,
  waitForEntry,
  waitForRule,
} from '../../support/e2e-udp.ts';
import { NODE_IP } from '../../support/topology.ts';

interface Case {
  readonly scenario: string;
  readonly service: string;
  readonly client: 'pod' | 'outside';
  /** Fixed per flow; the two outside cases share the one client namespace, so they differ. */
  readonly sport: number;
  readonly dst: string;
  readonly dport: number;
  readonly ports: ReturnType<typeof udpPort>[];
  readonly spec: Record<string, unknown>;
  /** The filter chain that holds the Service's REJECT rule while it has no endpoints. */
  readonly rejectChain: string;
}

const EXTERNAL_IP = '203.0.113.10';

const CASES: readonly Case[] = [
  {
    scenario: 'empty→serving ClusterIP',
    service: 'cip',
    client: 'pod',
    sport: SPORT,
    dst: '10.96.101.1',
    dport: 53,
    ports: [udpPort(53)],
    spec: { clusterIP: '10.96.101.1' },
    rejectChain: 'KUBE-SERVICES',
  },
  {
    scenario: 'empty→serving NodePort',
    service: 'np',
    client: 'outside',
    sport: SPORT,
    dst: NODE_IP,
    dport: 30053,
    ports: [udpPort(53, 30053)],
    spec: { type: 'NodePort', clusterIP: '10.96.101.2' },
    rejectChain: 'KUBE-EXTERNAL-SERVICES',
  },
  {
    // Routed to the node by the client's default route; the node sends what it does not
    // translate out of its uplink (see e2e-udp.ts), as a node with a default route would.
    scenario: 'empty→serving external IP',
    service: 'eip',
    client: 'outside',
    sport: SPORT + 1,
    dst: EXTERNAL_IP,
    dport: 53,
    ports: [udpPort(53)],
    spec: { clusterIP: '10.96.101.3', externalIPs: [EXTERNAL_IP] },
    rejectChain: 'KUBE-EXTERNAL-SERVICES',
  },
];

/**
 * Stream to the frontend, see the un-NATed entry, create the Service with no endpoints, wait for
 * its REJECT rule, see the entry survive it, then mark a new pod ready and judge.
 */
async function emptyToServing(cc: ConntrackCluster, c: Case): Promise<void> {
  const pod = await cc.addServerPod(`${c.service}-a`);
  const clientNs =
    c.client === 'pod' ? (await cc.addClientPod(`${c.service}-client`)).ns : cc.cluster.topo.client;
  const stream = cc.stream(clientNs, `${c.dst}:${c.dport}`, { sport: c.sport });
  const entry = await waitForEntry(cc, 'the un-NATed entry', c.dst, c.dport, isUnNATed, 20_000);
  expect(isUnNATed(entry)).toBe(true);

  cc.createService(c.service, c.ports, c.spec);
  cc.setEndpoints(c.service, c.ports, []);
  await waitForRule(cc, 'filter', [
    `-A ${c.rejectChain} `,
    `"default/${c.service}:udp has no endpoints"`,
    '-j REJECT',
  ]);
  // The REJECT rule does not remove the entry: the flow is blackholed, not refused.
  await waitForEntry(cc, 'the un-NATed entry under the REJECT rule', c.dst, c.dport, isUnNATed, 2000);

  const since = cc.setEndpoints(c.service, c.ports, [{ ip: pod.ip }]);
  await expectOutcome({
    cc,
    stream,
    pod,
    since,
    scenario: `${cc.backend} ${c.scenario}`,
    dst: c.dst,
    dport: c.dport,
  });
  await stream.stop();
}

describe.concurrent.each(['legacy', 'nft'] as const)('UDP empty → serving (%s backend)', (backend) => {
  let pair: ClusterPair | undefined;

  beforeAll(async () => {
    pair = await startPair(backend);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await destroyPair(pair);
  }, 60_000);

  it.each(CASES)(
    '$scenario: answers within 2 s of the first ready endpoint; blackholed without cleanup',
    async (c) => {
      await onBoth(pair!, (cc) => emptyToServing(cc, c));
    },
    90_000,
  );
});
