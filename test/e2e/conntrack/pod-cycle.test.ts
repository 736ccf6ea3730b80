/**
 * The UDP server-pod cycle (issue 6): a client sends one datagram every 100 ms from one source
 * port to a Service whose only server pod is deleted (its namespace removed, the slice emptied)
 * and replaced by a new pod with a new IP. The new pod must answer within 2 s of its
 * EndpointSlice. The client's entry was DNATed to the old pod; without cleanup (the twin) it
 * keeps sending there and never reaches the new one. ClusterIP from a pod, and NodePort from
 * outside the node, on both backends.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  type ClusterPair,
  type ConntrackCluster,
  destroyPair,
  expectOutcome,
  healthyFlow,
  onBoth,
  SETUP_TIMEOUT_MS,
  startPair,
  udpPort,
} from '../../support/e2e-udp.ts';
import { NODE_IP } from '../../support/topology.ts';

interface Case {
  readonly scenario: string;
  readonly service: string;
  readonly client: 'pod' | 'outside';
  readonly dst: string;
  readonly dport: number;
  readonly ports: ReturnType<typeof udpPort>[];
  readonly spec: Record<string, unknown>;
}

const CASES: readonly Case[] = [
  {
    scenario: 'server-pod cycle ClusterIP',
    service: 'cyc',
    client: 'pod',
    dst: '10.96.102.1',
    dport: 53,
    ports: [udpPort(53)],
    spec: { clusterIP: '10.96.102.1' },
  },
  {
    scenario: 'server-pod cycle NodePort',
    service: 'cycnp',
    client: 'outside',
    dst: NODE_IP,
    dport: 30054,
    ports: [udpPort(53, 30054)],
    spec: { type: 'NodePort', clusterIP: '10.96.102.2' },
  },
];

async function podCycle(cc: ConntrackCluster, c: Case): Promise<void> {
  const old = await cc.addServerPod(`${c.service}-a`);
  const { stream } = await healthyFlow(cc, {
    service: c.service,
    ports: c.ports,
    spec: c.spec,
    endpoints: [{ ip: old.ip }],
    pods: [old],
    clientNs: c.client === 'pod' ? (await cc.addClientPod(`${c.service}-client`)).ns : cc.cluster.topo.client,
    dst: c.dst,
    dport: c.dport,
  });

  // The pod is deleted: its namespace (and veth) go, the slice loses it.
  await cc.removePod(old);
  cc.setEndpoints(c.service, c.ports, []);
  // Its replacement comes up with a new IP and is published.
  const pod = await cc.addServerPod(`${c.service}-b`);
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

describe.concurrent.each(['legacy', 'nft'] as const)('UDP server-pod cycle (%s backend)', (backend) => {
  let pair: ClusterPair | undefined;

  beforeAll(async () => {
    pair = await startPair(backend);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await destroyPair(pair);
  }, 60_000);

  it.each(CASES)(
    '$scenario: the new pod answers within 2 s of its EndpointSlice; blackholed without cleanup',
    async (c) => {
      await onBoth(pair!, (cc) => podCycle(cc, c));
    },
    90_000,
  );
});
