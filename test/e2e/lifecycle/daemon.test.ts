/**
 * The running daemon's own surfaces (legacy backend): /healthz, /livez and /metrics inside the
 * node namespace, and the API server restarted under it.
 *
 * The restart: the in-process API server's listeners are closed (the proxy's watches are cut and
 * its reconnects are refused for a while), then a new server with a new store, holding copies of
 * the objects as etcd would keep them, serves the same socket. Its history starts after every old
 * resource version, so the proxy's resumed watches get 410 Gone and it must relist, as after a
 * real restart with a cold watch cache. A Service created while the server was down, and one
 * created after the reconnect, must both get rules and carry traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../../pkg/apiserver/server.ts';
import { type E2ECluster, type ProxyProcess, startE2ECluster } from '../../support/e2e.ts';
import {
  createService,
  FIRST_SYNC_TIMEOUT_MS,
  httpGet,
  nodeSysctl,
  report,
  restartApiServer,
  setEndpoints,
  startProxy,
  tcp,
  timed,
  waitForAnswer,
  waitForRule,
  withProxyLogs,
} from '../../support/e2e-services.ts';
import { execInOk } from '../../support/netns.ts';
import { NODE_IP } from '../../support/topology.ts';

const PORTS = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];
/** The harness binds these in the node namespace (--healthz-bind-address, --metrics-bind-address). */
const HEALTHZ = 'http://127.0.0.1:10256';
const METRICS = 'http://127.0.0.1:10249';

/** The value of the first sample of `name`, with or without labels (ours carry ip_family). */
function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('daemon: health, metrics, API server restart (legacy backend)', () => {
  let cluster: E2ECluster;
  let proxy: ProxyProcess | undefined;
  /** The API server after the restart; the harness stops only its own. */
  let restarted: ApiServer | undefined;

  beforeAll(async () => {
    cluster = await startE2ECluster({ pods: 3, backend: 'legacy' });
    const [, p2, p3] = cluster.topo.pods;
    await cluster.serve(p2!, 8080);
    await cluster.serve(p3!, 8080);
    createService(cluster.api, 'before', PORTS);
    setEndpoints(cluster.api, 'before', PORTS, [{ ip: p2!.ip }]);
    proxy = await startProxy(cluster);
    const ms = await withProxyLogs(
      proxy,
      waitForRule(cluster, 'nat', '"default/before:http cluster IP"', FIRST_SYNC_TIMEOUT_MS),
    );
    report('daemon start', 'rules of default/before after the proxy started', ms);
  }, 120_000);

  afterAll(async () => {
    await proxy?.stop();
    await restarted?.stop();
    await cluster?.destroy();
  });

  it('/healthz and /livez answer 200 and /metrics has the sync metrics', async () => {
    const node = cluster.topo.node;
    const { value: healthz, ms } = await timed(() => httpGet(node, `${HEALTHZ}/healthz`));
    const livez = await httpGet(node, `${HEALTHZ}/livez`);
    const metrics = await httpGet(node, `${METRICS}/metrics`);
    const body = metrics.body ?? '';
    const lastSync = metricValue(body, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds');
    const syncCount = metricValue(body, 'kubeproxy_sync_proxy_rules_duration_seconds_count');
    report(
      'health and metrics',
      `/healthz ${healthz.status} ${healthz.body}; /livez ${livez.status}; /metrics ${metrics.status}, ${syncCount} syncs, last at ${lastSync}`,
      ms,
    );
    expect(healthz.status).toBe(200);
    expect(JSON.parse(healthz.body ?? '{}')).toHaveProperty('lastUpdated');
    expect(livez.status).toBe(200);
    expect(metrics.status).toBe(200);
    expect(body).toMatch(/^# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram$/m);
    expect(body).toMatch(/^# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge$/m);
    expect(syncCount).toBeGreaterThanOrEqual(1);
    // The last sync happened during this test run (seconds since the epoch).
    expect(lastSync).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(lastSync).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });

  it('the API server restarts under the proxy: it reconnects, relists and catches up', async () => {
    const [, p2, p3] = cluster.topo.pods;
    const logsBefore = proxy!.logs().length;
    const started = performance.now();
    restarted = await restartApiServer(cluster, cluster.api, 2000, (api) => {
      createService(api, 'during', PORTS);
      setEndpoints(api, 'during', PORTS, [{ ip: p3!.ip }]);
    });
    const upAt = performance.now();
    const during = await withProxyLogs(
      proxy,
      waitForRule(cluster, 'nat', '"default/during:http cluster IP"', 45_000),
    );
    const after = createService(restarted, 'after', PORTS);
    setEndpoints(restarted, 'after', PORTS, [{ ip: p2!.ip }, { ip: p3!.ip }]);
    const afterRules = await withProxyLogs(
      proxy,
      waitForRule(cluster, 'nat', '"default/after:http cluster IP"', 20_000),
    );
    const answer = await waitForAnswer(cluster, cluster.topo.pods[0]!.ns, `${after.clusterIP}:80`);
    // Each informer's resumed watch got 410 from the new server and relisted.
    const restartLogs = proxy!.logs().slice(logsBefore);
    const relisted = ['Service', 'EndpointSlice'].filter((kind) =>
      new RegExp(`"informer":"${kind}".*410 Gone\\), relisting`).test(restartLogs),
    );
    report(
      'API server restart',
      `down ${(upAt - started).toFixed(0)} ms; Service made while down got rules ${during} ms after the server came back, one made after the reconnect ${afterRules} ms after its creation and answered (${answer.reply}); relisted after 410: ${relisted.join(', ')}`,
      performance.now() - started,
    );
    expect(['pod2', 'pod3']).toContain(answer.reply);
    expect(relisted).toEqual(['Service', 'EndpointSlice']);
    // The Service from before the restart still works, and the proxy is still healthy.
    const before = restarted.store.get('services', 'default', 'before') as unknown as {
      spec: { clusterIP: string };
    };
    expect(await tcp(cluster, cluster.topo.pods[0]!.ns, `${before.spec.clusterIP}:80`)).toMatchObject({
      ok: true,
      reply: 'pod2',
    });
    expect((await httpGet(cluster.topo.node, `${HEALTHZ}/healthz`)).status).toBe(200);
    expect(proxy!.child.exitCode).toBeNull();
  }, 90_000);

  // Last: it restarts the proxy with other flags.
  it('--nodeport-addresses without loopback: no localhost NodePorts and route_localnet left alone, as upstream', async () => {
    // Upstream (NewProxier) turns localhostNodePorts off when nodePortAddresses has no IPv4
    // loopback address, and only then skips route_localnet=1, the sysctl that opens the hole
    // KUBE-FIREWALL has to close (issue #90259).
    const api = restarted ?? cluster.api;
    const [, p2] = cluster.topo.pods;
    const np = createService(api, 'np', PORTS, { type: 'NodePort' });
    setEndpoints(api, 'np', PORTS, [{ ip: p2!.ip }]);
    expect(await proxy!.stop('SIGTERM')).toBe(0);
    await execInOk(cluster.topo.node, ['sysctl', '-q', '-w', 'net.ipv4.conf.all.route_localnet=0']);
    const started = performance.now();
    proxy = await startProxy(cluster, ['--nodeport-addresses=192.168.100.0/24']);
    await withProxyLogs(
      proxy,
      cluster.waitFor(
        'a first sync',
        async () => /synced iptables rules/.test(proxy!.logs()),
        FIRST_SYNC_TIMEOUT_MS,
      ),
    );
    const routeLocalnet = await nodeSysctl(cluster, 'net.ipv4.conf.all.route_localnet');
    const viaNodeIP = await tcp(cluster, cluster.topo.node, `${NODE_IP}:${np.nodePorts[0]}`);
    const viaLoopback = await tcp(cluster, cluster.topo.node, `127.0.0.1:${np.nodePorts[0]}`, 1000);
    report(
      'nodeport-addresses without loopback',
      `node IP → ${viaNodeIP.reply ?? viaNodeIP.error}; 127.0.0.1 → ${viaLoopback.reply ?? viaLoopback.error}; route_localnet=${routeLocalnet}`,
      performance.now() - started,
    );
    expect(viaNodeIP).toMatchObject({ ok: true, reply: 'pod2' });
    expect(viaLoopback.ok).toBe(false);
    expect(routeLocalnet).toBe('0');
  }, 90_000);
});
