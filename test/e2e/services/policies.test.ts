/**
 * Cluster-internal policies (nft backend): internalTrafficPolicy Local, sessionAffinity ClientIP,
 * and masquerading (traffic from outside the cluster CIDR to a cluster IP is masqueraded, pod
 * traffic is not).
 *
 *   client 192.168.100.2 ── node ── pod1 10.244.1.2 (client pod), pod2 10.244.2.2, pod3 10.244.3.2
 *
 * pod3's endpoints are declared on another node ("node2"): it is reachable, but not local.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { E2ECluster, ProxyProcess } from '../../support/e2e.ts';
import { startE2ECluster } from '../../support/e2e.ts';
import {
  addNodeDefaultRoute,
  type CreatedService,
  createService,
  FIRST_SYNC_TIMEOUT_MS,
  hostOf,
  type LoggedServer,
  report,
  serveLogged,
  setEndpoints,
  startProxy,
  tcp,
  tcpReplies,
  timed,
  udp,
  waitForRule,
  withProxyLogs,
} from '../../support/e2e-services.ts';

const PORTS = [
  { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, targetPort: 8080, protocol: 'UDP' as const },
];

describe('internal policies and masquerading (nft backend)', () => {
  let cluster: E2ECluster;
  let proxy: ProxyProcess | undefined;
  let pod2Server: LoggedServer;
  let itp: CreatedService;
  let itpNone: CreatedService;
  let sticky: CreatedService;
  let masq: CreatedService;

  beforeAll(async () => {
    cluster = await startE2ECluster({ pods: 3, backend: 'nft' });
    await addNodeDefaultRoute(cluster);
    const [, p2, p3] = cluster.topo.pods;
    pod2Server = await serveLogged(cluster, p2!, 8080);
    await cluster.serve(p3!, 8080);
    const local = { ip: p2!.ip };
    const remote = { ip: p3!.ip, nodeName: 'node2' };

    itp = createService(cluster.api, 'itp', PORTS, { internalTrafficPolicy: 'Local' });
    setEndpoints(cluster.api, 'itp', PORTS, [local, remote]);
    itpNone = createService(cluster.api, 'itp-none', PORTS, { internalTrafficPolicy: 'Local' });
    setEndpoints(cluster.api, 'itp-none', PORTS, [remote]);
    sticky = createService(cluster.api, 'sticky', PORTS, { sessionAffinity: 'ClientIP' });
    setEndpoints(cluster.api, 'sticky', PORTS, [local, remote]);
    masq = createService(cluster.api, 'masq', PORTS);
    setEndpoints(cluster.api, 'masq', PORTS, [local]);

    proxy = await startProxy(cluster);
    const ms = await withProxyLogs(
      proxy,
      waitForRule(cluster, 'nat', '"default/masq:dns cluster IP"', FIRST_SYNC_TIMEOUT_MS),
    );
    await withProxyLogs(
      proxy,
      waitForRule(cluster, 'filter', '"default/itp-none:http has no local endpoints"'),
    );
    report('policies start', 'rules of itp, itp-none, sticky and masq after the proxy started', ms);
  }, 150_000);

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.destroy();
  });

  it('internalTrafficPolicy Local: only the local endpoint is used; without one, traffic is dropped', async () => {
    const pod1 = cluster.topo.pods[0]!.ns;
    const { value: replies, ms } = await timed(() => tcpReplies(cluster, pod1, `${itp.clusterIP}:80`, 8));
    const none = await tcp(cluster, pod1, `${itpNone.clusterIP}:80`, 1000);
    report('iTP Local', `local + remote endpoint: ${replies.join(',')}; remote only: ${none.error}`, ms);
    expect(replies).toEqual(Array(8).fill('pod2'));
    // DROP, not REJECT: the client hears nothing.
    expect(none).toMatchObject({ ok: false, error: 'ETIMEDOUT' });
    // The remote endpoint itself is reachable: the policy, not the network, keeps traffic off it.
    const direct = await tcp(cluster, pod1, `${cluster.topo.pods[2]!.ip}:8080`);
    expect(direct).toMatchObject({ ok: true, reply: 'pod3' });
  });

  it('sessionAffinity ClientIP: one client gets the same endpoint for 20 requests', async () => {
    const { value: fromPod, ms } = await timed(() =>
      tcpReplies(cluster, cluster.topo.pods[0]!.ns, `${sticky.clusterIP}:80`, 20),
    );
    const fromClient = await tcpReplies(cluster, cluster.topo.client, `${sticky.clusterIP}:80`, 20);
    report(
      'sessionAffinity ClientIP',
      `pod1 got ${[...new Set(fromPod)].join(',')} ×20; client got ${[...new Set(fromClient)].join(',')} ×20`,
      ms,
    );
    expect(['pod2', 'pod3']).toContain(fromPod[0]);
    expect(new Set(fromPod).size).toBe(1);
    expect(['pod2', 'pod3']).toContain(fromClient[0]);
    expect(new Set(fromClient).size).toBe(1);
  });

  it('masquerading: outside traffic to a cluster IP is masqueraded, pod traffic is not', async () => {
    const to = `${masq.clusterIP}:53`;
    const started = performance.now();
    pod2Server.clear();
    const fromOutside = await udp(cluster, cluster.topo.client, to);
    const outsideSources = pod2Server.udpSources().map(hostOf);
    pod2Server.clear();
    const fromPod = await udp(cluster, cluster.topo.pods[0]!.ns, to);
    const podSources = pod2Server.udpSources().map(hostOf);
    report(
      'masquerade',
      `client 192.168.100.2 seen as ${outsideSources.join(',')}; pod1 ${cluster.topo.pods[0]!.ip} seen as ${podSources.join(',')}`,
      performance.now() - started,
    );
    expect(fromOutside).toMatchObject({ ok: true, reply: 'pod2' });
    expect(fromPod).toMatchObject({ ok: true, reply: 'pod2' });
    // MASQUERADE takes the address of the node's interface towards pod2 (veth-p2).
    expect(outsideSources).toEqual(['10.244.2.1']);
    expect(podSources).toEqual([cluster.topo.pods[0]!.ip]);
  });
});
