/**
 * Traffic from outside the node to externally visible services (legacy backend): externalIPs, a
 * LoadBalancer IP with loadBalancerSourceRanges (allowed and denied source), and
 * externalTrafficPolicy Local (dropped without a local endpoint; health-check node port 503 then
 * 200; the client's source address kept).
 *
 *   client  192.168.100.2 ─┐
 *   client2 192.168.101.2 ─┴─ node 192.168.100.1 / 192.168.101.1 ── pod1, pod2, pod3
 *
 * Both clients route everything through the node, so packets for the external and LB IPs (which
 * exist nowhere) reach the node's PREROUTING as they would from a real load balancer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2ECluster, ProxyProcess } from '../../support/e2e.ts';
import { startE2ECluster } from '../../support/e2e.ts';
import {
  addNodeDefaultRoute,
  addOutsideClient,
  type CreatedService,
  createService,
  FIRST_SYNC_TIMEOUT_MS,
  hostOf,
  httpGet,
  type LoggedServer,
  type OutsideClient,
  report,
  serveLogged,
  setEndpoints,
  setLoadBalancerIngress,
  startProxy,
  tcp,
  tcpReplies,
  timed,
  udp,
  waitForRule,
} from '../../support/e2e-services.ts';
import { execInOk } from '../../support/netns.ts';
import { CLIENT_IP, NODE_IP } from '../../support/topology.ts';

const TCP_PORT = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];
const TCP_UDP_PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 8080, protocol: 'UDP' as const },
];
const EXTERNAL_IP = '192.168.200.20';
const LB_IP = '192.168.200.10';
const LOCAL_LB_IP = '192.168.200.30';

describe('externally visible services (legacy backend)', () => {
  let cluster: E2ECluster;
  let proxy: ProxyProcess | undefined;
  let client2: OutsideClient | undefined;
  let servers: LoggedServer[] = [];
  let lb: CreatedService;
  let local: CreatedService;

  beforeAll(async () => {
    cluster = await startE2ECluster({ pods: 3, backend: 'legacy' });
    await addNodeDefaultRoute(cluster);
    client2 = await addOutsideClient(cluster, 1);
    const [, p2, p3] = cluster.topo.pods;
    servers = [await serveLogged(cluster, p2!, 8080), await serveLogged(cluster, p3!, 8080)];
    const both = [{ ip: p2!.ip }, { ip: p3!.ip }];

    createService(cluster.api, 'ext', TCP_PORT, { externalIPs: [EXTERNAL_IP] });
    setEndpoints(cluster.api, 'ext', TCP_PORT, both);

    lb = createService(cluster.api, 'lb', TCP_PORT, {
      type: 'LoadBalancer',
      loadBalancerSourceRanges: ['192.168.100.0/24'],
    });
    setLoadBalancerIngress(cluster.api, 'lb', [LB_IP]);
    setEndpoints(cluster.api, 'lb', TCP_PORT, both);

    // eTP Local, and the only endpoint (pod2) runs on another node.
    local = createService(cluster.api, 'local', TCP_UDP_PORTS, {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
    });
    setLoadBalancerIngress(cluster.api, 'local', [LOCAL_LB_IP]);
    setEndpoints(cluster.api, 'local', TCP_UDP_PORTS, [{ ip: p2!.ip, nodeName: 'node2' }]);

    proxy = await startProxy(cluster);
    const ms = await waitForRule(
      cluster,
      'filter',
      '"default/local:http has no local endpoints"',
      FIRST_SYNC_TIMEOUT_MS,
    );
    await waitForRule(cluster, 'nat', '"default/lb:http loadbalancer IP"');
    report('external start', 'rules of ext, lb and local in the kernel after the proxy started', ms);
  }, 150_000);

  afterAll(async () => {
    await proxy?.stop();
    await client2?.destroy();
    await cluster?.destroy();
  });

  it('externalIPs: a client outside the node reaches the endpoints through the external IP', async () => {
    const to = `${EXTERNAL_IP}:80`;
    const { value: replies, ms } = await timed(() => tcpReplies(cluster, cluster.topo.client, to, 4));
    report('externalIPs', `client → ${to}: ${replies.join(',')}`, ms);
    for (const r of replies) expect(['pod2', 'pod3']).toContain(r);
  });

  it('LoadBalancer source ranges: the allowed source is answered, the denied one is dropped', async () => {
    const to = `${LB_IP}:80`;
    const dropRule =
      /^\[(\d+):\d+\] -A KUBE-PROXY-FIREWALL .*default\/lb:http traffic not accepted by KUBE-FW-\S+.* -j DROP$/m;
    const dropped = async () => {
      const save = await execInOk(cluster.topo.node, ['iptables-legacy-save', '-c', '-t', 'filter']);
      const m = dropRule.exec(save);
      if (!m) throw new Error(`no KUBE-PROXY-FIREWALL drop rule for default/lb:\n${save}`);
      return Number(m[1]);
    };
    const before = await dropped();
    const allowed = await tcp(cluster, cluster.topo.client, to);
    const denied = await tcp(cluster, client2!.ns, to, 1500);
    const after = await dropped();
    report(
      'LB source ranges',
      `allowed ${CLIENT_IP} → ${allowed.reply ?? allowed.error}; denied ${client2!.ip} → ${denied.error}, KUBE-PROXY-FIREWALL drops ${before}→${after}`,
      (allowed.ms ?? 0) + (denied.ms ?? 0),
    );
    expect(allowed.ok).toBe(true);
    expect(['pod2', 'pod3']).toContain(allowed.reply);
    expect(denied).toMatchObject({ ok: false, error: 'ETIMEDOUT' });
    // The SYN and its retransmissions were dropped by the proxy's firewall rule, not lost elsewhere.
    expect(after).toBeGreaterThan(before);
    // The denied client is still answered on the node port: the source ranges filter the LB IP only.
    const viaNodePort = await tcp(cluster, client2!.ns, `${NODE_IP}:${lb.nodePorts[0]}`);
    expect(viaNodePort.ok).toBe(true);
  });

  it('externalTrafficPolicy Local: dropped without a local endpoint, health check 503 then 200, source kept', async () => {
    const nodePort = `${NODE_IP}:${local.nodePorts[0]}`;
    const hc = `http://${NODE_IP}:${local.healthCheckNodePort}/`;
    expect(local.healthCheckNodePort).toBeGreaterThan(0);

    // No local endpoint: outside traffic is dropped (not rejected), on the node port and LB IP.
    const viaNodePort = await tcp(cluster, cluster.topo.client, nodePort, 1000);
    const viaLB = await tcp(cluster, cluster.topo.client, `${LOCAL_LB_IP}:80`, 1000);
    expect(viaNodePort).toMatchObject({ ok: false, error: 'ETIMEDOUT' });
    expect(viaLB).toMatchObject({ ok: false, error: 'ETIMEDOUT' });
    // Cluster traffic still reaches the remote endpoint (eTP only governs external traffic).
    const internal = await tcp(cluster, cluster.topo.pods[0]!.ns, `${local.clusterIP}:80`);
    expect(internal).toMatchObject({ ok: true, reply: 'pod2' });
    const unhealthy = await httpGet(cluster.topo.client, hc);
    expect(unhealthy.status).toBe(503);
    expect(JSON.parse(unhealthy.body ?? '{}')).toMatchObject({
      service: { namespace: 'default', name: 'local' },
      localEndpoints: 0,
    });

    // A local endpoint appears (pod3 on this node).
    const [, p2, p3] = cluster.topo.pods;
    const changed = performance.now();
    setEndpoints(cluster.api, 'local', TCP_UDP_PORTS, [{ ip: p2!.ip, nodeName: 'node2' }, { ip: p3!.ip }]);
    const healthyMs = await cluster.waitFor(
      'health check 200',
      async () => (await httpGet(cluster.topo.client, hc, 1000)).status === 200,
      30_000,
    );
    const healthy = await httpGet(cluster.topo.client, hc);
    expect(JSON.parse(healthy.body ?? '{}')).toMatchObject({ localEndpoints: 1 });
    const replies = await tcpReplies(cluster, cluster.topo.client, nodePort, 4);
    expect(replies).toEqual(['pod3', 'pod3', 'pod3', 'pod3']);
    const lbReply = await tcp(cluster, cluster.topo.client, `${LOCAL_LB_IP}:80`);
    expect(lbReply).toMatchObject({ ok: true, reply: 'pod3' });

    // The client's own address reaches the pod: no masquerade under eTP Local.
    const pod3 = servers[1]!;
    pod3.clear();
    const dns = await udp(cluster, cluster.topo.client, `${NODE_IP}:${local.nodePorts[1]}`);
    expect(dns).toMatchObject({ ok: true, reply: 'pod3' });
    const sources = pod3.udpSources().map(hostOf);
    report(
      'eTP Local',
      `no local endpoint: node port ${viaNodePort.error}, LB ${viaLB.error}, health 503; local endpoint: health 200 after ${healthyMs} ms, replies ${replies.join(',')}, pod3 saw source ${sources.join(',')}`,
      performance.now() - changed,
    );
    expect(sources).toEqual([CLIENT_IP]);
  });
});
