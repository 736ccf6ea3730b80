/**
 * The core service paths on both iptables backends, with the real binary and real traffic:
 * ClusterIP load balancing, NodePort from outside and from the node itself (its own IP and
 * 127.0.0.1), immediate REJECT of a service without endpoints, and recovery after a firewall
 * reload deleted every KUBE-* chain (the canary).
 *
 *   client 192.168.100.2 ── node 192.168.100.1 ── pod1 (client pod), pod2 and pod3 (servers)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2ECluster, ProxyProcess } from '../../support/e2e.ts';
import { startE2ECluster } from '../../support/e2e.ts';
import {
  addNodeDefaultRoute,
  type CreatedService,
  createService,
  flushAllTables,
  logTime,
  nodeSysctl,
  report,
  setEndpoints,
  startProxy,
  tcp,
  tcpReplies,
  timed,
  waitForAnswer,
  waitForRule,
} from '../../support/e2e-services.ts';
import { NODE_IP } from '../../support/topology.ts';

const PORTS = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];
/** Short, so that "within one sync period" is measurable in a test. */
const SYNC_PERIOD_MS = 2000;

describe.each(['legacy', 'nft'] as const)('service core paths (%s backend)', (backend) => {
  const tag = `${backend}`;
  let cluster: E2ECluster;
  let proxy: ProxyProcess | undefined;
  let web: CreatedService;
  let np: CreatedService;
  let empty: CreatedService;

  beforeAll(async () => {
    cluster = await startE2ECluster({ pods: 3, backend });
    await addNodeDefaultRoute(cluster);
    const [, p2, p3] = cluster.topo.pods;
    await cluster.serve(p2!, 8080);
    await cluster.serve(p3!, 8080);
    const both = [{ ip: p2!.ip }, { ip: p3!.ip }];
    web = createService(cluster.api, 'web', PORTS);
    setEndpoints(cluster.api, 'web', PORTS, both);
    np = createService(cluster.api, 'np', PORTS, { type: 'NodePort' });
    setEndpoints(cluster.api, 'np', PORTS, both);
    empty = createService(cluster.api, 'empty', PORTS, { type: 'NodePort' });
    proxy = await startProxy(cluster, [`--iptables-sync-period=${SYNC_PERIOD_MS}ms`]);
    const ms = await waitForRule(cluster, 'nat', '"default/np:http cluster IP"');
    await waitForRule(cluster, 'filter', '"default/empty:http has no endpoints"');
    report(`${tag} start`, 'rules of 3 services in the kernel after the proxy started', ms);
  }, 150_000);

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.destroy();
  });

  it('ClusterIP: requests from a pod are balanced over both endpoints', async () => {
    const { value: replies, ms } = await timed(() =>
      tcpReplies(cluster, cluster.topo.pods[0]!.ns, `${web.clusterIP}:80`, 12),
    );
    const counts = new Map<string, number>();
    for (const r of replies) counts.set(r, (counts.get(r) ?? 0) + 1);
    report(
      `${tag} ClusterIP LB`,
      `12 requests answered by ${JSON.stringify(Object.fromEntries(counts))}`,
      ms,
    );
    expect([...counts.keys()].sort()).toEqual(['pod2', 'pod3']);
  });

  it('NodePort: answered from outside the node', async () => {
    const to = `${NODE_IP}:${np.nodePorts[0]}`;
    const { value: replies, ms } = await timed(() => tcpReplies(cluster, cluster.topo.client, to, 4));
    report(`${tag} NodePort outside`, `client → ${to}: ${replies.join(',')}`, ms);
    for (const r of replies) expect(['pod2', 'pod3']).toContain(r);
  });

  it('NodePort: answered from the node itself on its own IP', async () => {
    const to = `${NODE_IP}:${np.nodePorts[0]}`;
    const { value: replies, ms } = await timed(() => tcpReplies(cluster, cluster.topo.node, to, 3));
    report(`${tag} NodePort node IP`, `node → ${to}: ${replies.join(',')}`, ms);
    for (const r of replies) expect(['pod2', 'pod3']).toContain(r);
  });

  it('NodePort: answered from the node on 127.0.0.1 (localhost NodePorts, route_localnet=1 as upstream)', async () => {
    // Upstream's default --iptables-localhost-nodeports=true renders the 127.0.0.0/8 NodePort
    // rules AND sets net.ipv4.conf.all.route_localnet=1; without the sysctl the kernel drops the
    // DNATed packet that still has source 127.0.0.1 as a martian.
    const to = `127.0.0.1:${np.nodePorts[0]}`;
    const routeLocalnet = await nodeSysctl(cluster, 'net.ipv4.conf.all.route_localnet');
    const { value: r, ms } = await timed(() => tcp(cluster, cluster.topo.node, to, 1500));
    report(
      `${tag} NodePort localhost`,
      `node → ${to}: ${JSON.stringify(r)}; route_localnet=${routeLocalnet}`,
      ms,
    );
    expect(routeLocalnet).toBe('1');
    expect(r.ok).toBe(true);
    expect(['pod2', 'pod3']).toContain(r.reply);
  });

  it('a service with no endpoints is REJECTed at once (cluster IP and node port)', async () => {
    const fromPod = await tcp(cluster, cluster.topo.pods[0]!.ns, `${empty.clusterIP}:80`, 3000);
    const fromOutside = await tcp(cluster, cluster.topo.client, `${NODE_IP}:${empty.nodePorts[0]}`, 3000);
    report(
      `${tag} no endpoints`,
      `pod → cluster IP ${fromPod.error} in ${fromPod.ms} ms; client → node port ${fromOutside.error}`,
      Math.max(fromPod.ms ?? 0, fromOutside.ms ?? 0),
    );
    expect(fromPod).toMatchObject({ ok: false, error: 'ECONNREFUSED' });
    expect(fromPod.ms).toBeLessThan(500);
    expect(fromOutside).toMatchObject({ ok: false, error: 'ECONNREFUSED' });
    expect(fromOutside.ms).toBeLessThan(500);
  });

  // Last: it wipes the tables.
  it('after a firewall reload deleted every KUBE-* chain, the canary notices within one sync period and the rules come back', async () => {
    const logsBefore = proxy!.logs().length;
    const flushedAt = Date.now();
    await flushAllTables(cluster);
    const wiped = await cluster.iptablesSave('nat');
    expect(wiped).not.toMatch(/KUBE-/);
    const cut = await tcp(cluster, cluster.topo.pods[0]!.ns, `${web.clusterIP}:80`, 500);
    expect(cut.ok).toBe(false);

    const restored = await waitForRule(cluster, 'nat', '"default/web:http cluster IP"', 30_000);
    const flowing = await waitForAnswer(cluster, cluster.topo.pods[0]!.ns, `${web.clusterIP}:80`, 10_000);
    const noticedAt = logTime(proxy!.logs(), /iptables canary (gone|deleted)/, logsBefore);
    const noticed = noticedAt === undefined ? undefined : noticedAt - flushedAt;
    report(
      `${tag} canary`,
      `flush noticed after ${noticed} ms (sync period ${SYNC_PERIOD_MS} ms), rules back after ${restored} ms, traffic ${flowing.ms.toFixed(0)} ms later`,
      restored,
    );
    // Noticed by the canary (not by chance through some other sync) within one sync period, plus
    // the monitor's wait for the other tables' canaries (polled every 100 ms) and some slack for
    // iptables calls on a loaded machine.
    expect(noticed).toBeDefined();
    expect(noticed!).toBeLessThan(SYNC_PERIOD_MS + 1500);
    const filter = await cluster.iptablesSave('filter');
    expect(filter).toContain('"default/empty:http has no endpoints"');
    const nodePort = await tcp(cluster, cluster.topo.client, `${NODE_IP}:${np.nodePorts[0]}`);
    expect(nodePort.ok).toBe(true);
  });
});
