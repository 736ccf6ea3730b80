/**
 * The proxy's lifecycle against the rules of another program (nft backend): a CNI-like filter
 * chain jumped to from FORWARD and a hostport-like nat chain with a DNAT rule jumped to from
 * PREROUTING must come out of every sync, a SIGTERM, a restart and `--cleanup` byte for byte as
 * they went in. SIGTERM leaves the proxy's rules in place (traffic keeps flowing while it is
 * down) and exits 0; `--cleanup` removes every chain of ours and nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY, type E2ECluster, type ProxyProcess, startE2ECluster } from '../../support/e2e.ts';
import {
  addNodeDefaultRoute,
  type CreatedService,
  createService,
  FIRST_SYNC_TIMEOUT_MS,
  FOREIGN_FILTER_CHAIN,
  FOREIGN_NAT_CHAIN,
  installForeignRules,
  KUBE_PROXY_CHAIN_PATTERN,
  nonKubeLines,
  report,
  setEndpoints,
  startProxy,
  tcp,
  timed,
  waitForRule,
} from '../../support/e2e-services.ts';
import { execIn, execInOk } from '../../support/netns.ts';
import { NODE_IP } from '../../support/topology.ts';

const PORTS = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' as const }];
const SYNC_PERIOD_MS = 2000;
const TABLES = ['filter', 'nat', 'mangle'] as const;
const SYNCED = /synced iptables rules/g;

describe('lifecycle with foreign rules: syncs, SIGTERM, restart, --cleanup (nft backend)', () => {
  let cluster: E2ECluster;
  let proxy: ProxyProcess | undefined;
  let svc: CreatedService;
  /** The foreign program's view of each table, before kube-proxy-ts ever ran. */
  const foreign = new Map<string, string[]>();

  const save = (table: string) => execInOk(cluster.topo.node, ['iptables-nft-save', '-t', table]);
  const foreignNow = async () =>
    new Map(await Promise.all(TABLES.map(async (t) => [t, nonKubeLines(await save(t))] as const)));
  const syncsSoFar = () => (proxy?.logs().match(SYNCED) ?? []).length;
  const hostPort = () => tcp(cluster, cluster.topo.client, `${NODE_IP}:8081`);

  beforeAll(async () => {
    cluster = await startE2ECluster({ pods: 2, backend: 'nft' });
    await addNodeDefaultRoute(cluster);
    const [p1, p2] = cluster.topo.pods;
    await cluster.serve(p1!, 8080);
    await cluster.serve(p2!, 8080);
    await installForeignRules(cluster, `${p1!.ip}:8080`);
    for (const [t, lines] of await foreignNow()) foreign.set(t, lines);
    expect(foreign.get('filter')!.join('\n')).toContain(
      `-A FORWARD -m comment --comment "cni e2e" -j ${FOREIGN_FILTER_CHAIN}`,
    );
    expect(foreign.get('nat')!.join('\n')).toContain(`-j DNAT --to-destination ${p1!.ip}:8080`);
    svc = createService(cluster.api, 'web', PORTS, { type: 'NodePort' });
    setEndpoints(cluster.api, 'web', PORTS, [{ ip: p2!.ip }]);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.destroy();
  });

  it('foreign rules survive the syncs of a running proxy, and keep working', async () => {
    proxy = await startProxy(cluster, [`--iptables-sync-period=${SYNC_PERIOD_MS}ms`]);
    const ms = await waitForRule(cluster, 'nat', '"default/web:http cluster IP"', FIRST_SYNC_TIMEOUT_MS);
    // A few periodic syncs on top of the first, full one.
    await cluster.waitFor('three syncs', async () => syncsSoFar() >= 3, 20_000);
    const after = await foreignNow();
    report('foreign rules: syncs', `${syncsSoFar()} syncs; filter, nat, mangle foreign lines identical`, ms);
    for (const t of TABLES) expect(after.get(t), t).toEqual(foreign.get(t));
    expect(await hostPort()).toMatchObject({ ok: true, reply: 'pod1' });
    expect(await tcp(cluster, cluster.topo.client, `${NODE_IP}:${svc.nodePorts[0]}`)).toMatchObject({
      ok: true,
      reply: 'pod2',
    });
  }, 60_000);

  it('SIGTERM: exits 0, leaves the rules in place, and traffic flows while the proxy is down', async () => {
    const { value: code, ms } = await timed(() => proxy!.stop('SIGTERM'));
    expect(code).toBe(0);
    const nat = await save('nat');
    expect(nat).toContain('"default/web:http cluster IP"');
    expect(nat).toMatch(/-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
    const fromPod = await tcp(cluster, cluster.topo.pods[0]!.ns, `${svc.clusterIP}:80`);
    const fromOutside = await tcp(cluster, cluster.topo.client, `${NODE_IP}:${svc.nodePorts[0]}`);
    report(
      'SIGTERM',
      `exit ${code}; while down: pod → cluster IP ${fromPod.reply ?? fromPod.error}, client → node port ${fromOutside.reply ?? fromOutside.error}`,
      ms,
    );
    expect(fromPod).toMatchObject({ ok: true, reply: 'pod2' });
    expect(fromOutside).toMatchObject({ ok: true, reply: 'pod2' });
    const after = await foreignNow();
    for (const t of TABLES) expect(after.get(t), t).toEqual(foreign.get(t));
  }, 30_000);

  it('a restarted proxy syncs over its old rules without touching the foreign ones', async () => {
    const started = performance.now();
    proxy = await startProxy(cluster, [`--iptables-sync-period=${SYNC_PERIOD_MS}ms`]);
    await cluster.waitFor(
      'two syncs after the restart',
      async () => syncsSoFar() >= 2,
      FIRST_SYNC_TIMEOUT_MS,
    );
    const after = await foreignNow();
    report(
      'restart',
      `${syncsSoFar()} syncs after the restart; foreign lines identical`,
      performance.now() - started,
    );
    for (const t of TABLES) expect(after.get(t), t).toEqual(foreign.get(t));
    expect(await tcp(cluster, cluster.topo.pods[0]!.ns, `${svc.clusterIP}:80`)).toMatchObject({
      ok: true,
      reply: 'pod2',
    });
    expect(await proxy.stop('SIGTERM')).toBe(0);
  }, 60_000);

  it('--cleanup removes every chain of ours and leaves the foreign rules byte-identical', async () => {
    const { value: r, ms } = await timed(() =>
      execIn(cluster.topo.node, [BINARY, '--cleanup', '--iptables-backend=nft', '-v=2']),
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const left: string[] = [];
    for (const t of TABLES) {
      for (const line of (await save(t)).split('\n'))
        if (KUBE_PROXY_CHAIN_PATTERN.test(line)) left.push(`${t}: ${line}`);
    }
    const after = await foreignNow();
    const foreignOk = await hostPort();
    const service = await tcp(cluster, cluster.topo.pods[0]!.ns, `${svc.clusterIP}:80`, 1000);
    report(
      '--cleanup',
      `exit ${r.code}; kube-proxy lines left: ${left.length}; foreign DNAT → ${foreignOk.reply ?? foreignOk.error}; service → ${service.reply ?? service.error}`,
      ms,
    );
    expect(left).toEqual([]);
    for (const t of TABLES) expect(after.get(t), t).toEqual(foreign.get(t));
    expect(after.get('nat')!.join('\n')).toContain(`:${FOREIGN_NAT_CHAIN} - [0:0]`);
    expect(foreignOk).toMatchObject({ ok: true, reply: 'pod1' });
    expect(service.ok).toBe(false);
  }, 30_000);
});
