/**
 * Proxy restarts under UDP traffic.
 *
 * - A healthy flow while the proxy stops (SIGTERM) and starts again: the rules stay while it is
 *   down, so no datagram is lost; and the new proxy's first sync, which reconciles the whole
 *   table, must not cut the flow (upstream #122740: every restart flushed healthy UDP flows,
 *   because on a first sync every port looks newly serving). Two endpoints, so that a deleted
 *   entry would show: the next datagram could be balanced to the other pod, and its entry would
 *   have a new id. No twin: this asserts that cleanup does NOT act.
 * - The Service's only endpoint replaced while the proxy is down: no event will ever tell the
 *   new proxy that the client's entry points at a pod that is gone; its first sync must find it
 *   (the reconciler) and the new pod must answer within 2 s of that sync. Its twin (cleanup
 *   disabled) stays blackholed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClusterPair,
  type ConntrackCluster,
  destroyPair,
  expectOutcome,
  flowEntries,
  healthyFlow,
  INTERVAL_MS,
  onBoth,
  report,
  SETUP_TIMEOUT_MS,
  sleep,
  startPair,
  udpPort,
} from '../../support/e2e-udp.ts';

const BACKEND = 'legacy';
const PORTS = [udpPort(53)];
/** How long the proxy stays down, and how long the flow is watched after its first sync. */
const DOWN_MS = 1500;
const AFTER_MS = 1500;

async function restartWithHealthyFlow(cc: ConntrackCluster): Promise<void> {
  const clusterIP = '10.96.104.1';
  const client = await cc.addClientPod('steady-client');
  const pods = [await cc.addServerPod('steady-a'), await cc.addServerPod('steady-b')];
  const { stream, pod, entry } = await healthyFlow(cc, {
    service: 'steady',
    ports: PORTS,
    spec: { clusterIP },
    endpoints: pods.map((p) => ({ ip: p.ip })),
    pods,
    clientNs: client.ns,
    dst: clusterIP,
    dport: 53,
  });
  const other = pods.find((p) => p !== pod)!;
  const server = pod as (typeof pods)[number];
  await sleep(1000);

  const from = Date.now();
  await cc.stopProxy();
  const stopped = Date.now();
  await sleep(DOWN_MS);
  const downUntil = Date.now();
  const firstSync = await cc.startProxy();
  await sleep(AFTER_MS);
  const until = Date.now();

  // Not cut: the same entry (same id) still leads to the same pod.
  const after = await flowEntries(cc.node, clusterIP, 53);
  expect(
    after.map((e) => e.id),
    `entries after the restart: ${after.map((e) => e.line).join(' | ')}`,
  ).toEqual([entry.id]);
  expect(after[0]!.replySrc).toBe(pod.ip);
  expect(stream.repliesFrom(other.name, from, until)).toEqual([]);

  // No datagram lost, down or up: the pod received every sequence number in the window.
  const seqs = server.received.filter((r) => r.t >= from && r.t <= until).map((r) => r.seq);
  expect(seqs.length).toBeGreaterThan(Math.floor((until - from) / INTERVAL_MS / 2));
  const missing: number[] = [];
  for (let s = seqs[0]!; s <= seqs.at(-1)!; s++) if (!seqs.includes(s)) missing.push(s);
  expect(missing, 'datagrams the pod never received').toEqual([]);
  const downSeqs = server.received.filter((r) => r.t >= stopped && r.t <= downUntil).length;
  expect(downSeqs, 'datagrams received while the proxy was down').toBeGreaterThanOrEqual(
    Math.floor(DOWN_MS / INTERVAL_MS / 2),
  );

  // No gap in the answers longer than about two intervals (timer jitter on a busy machine aside).
  const times = stream.repliesFrom(pod.name, from, until).map((r) => r.t);
  let maxGap = 0;
  for (let i = 1; i < times.length; i++) maxGap = Math.max(maxGap, times[i]! - times[i - 1]!);
  expect(maxGap, 'longest silence between two answers').toBeLessThanOrEqual(2 * INTERVAL_MS + 150);
  report(
    `${cc.backend} proxy restart with a healthy flow`,
    `${seqs.length} datagrams, none lost (${downSeqs} while down), same entry id ${entry.id} after the first sync at +${firstSync - from} ms, longest gap ${maxGap} ms, window`,
    until - from,
  );
  await stream.stop();
}

async function restartWhileEndpointChanges(cc: ConntrackCluster): Promise<void> {
  const clusterIP = '10.96.104.2';
  const client = await cc.addClientPod('moved-client');
  const old = await cc.addServerPod('moved-a');
  const { stream } = await healthyFlow(cc, {
    service: 'moved',
    ports: PORTS,
    spec: { clusterIP },
    endpoints: [{ ip: old.ip }],
    pods: [old],
    clientNs: client.ns,
    dst: clusterIP,
    dport: 53,
  });

  await cc.stopProxy();
  await cc.removePod(old);
  const pod = await cc.addServerPod('moved-b');
  cc.setEndpoints('moved', PORTS, [{ ip: pod.ip }]);
  await sleep(500);
  // While the proxy is down the client keeps feeding its entry to the pod that is gone.
  const stale = await flowEntries(cc.node, clusterIP, 53);
  expect(stale.map((e) => e.replySrc)).toEqual([old.ip]);

  const firstSync = await cc.startProxy();
  await expectOutcome({
    cc,
    stream,
    pod,
    since: firstSync,
    scenario: `${cc.backend} proxy restart while the only endpoint changed (from its first sync)`,
    dst: clusterIP,
    dport: 53,
  });
  await stream.stop();
}

describe(`UDP across proxy restarts (${BACKEND} backend)`, () => {
  let pair: ClusterPair | undefined;

  beforeAll(async () => {
    pair = await startPair(BACKEND);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await destroyPair(pair);
  }, 60_000);

  it('a restart during a healthy flow loses no datagram and does not cut the flow', async () => {
    await restartWithHealthyFlow(pair!.cleanup);
  }, 90_000);

  it('endpoint replaced while the proxy is down: answers within 2 s of the first sync; blackholed without cleanup', async () => {
    await onBoth(pair!, restartWhileEndpointChanges);
  }, 120_000);
});
