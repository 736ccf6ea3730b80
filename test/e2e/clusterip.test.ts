/**
 * The first slice end to end: the real binary, the development API server, real
 * iptables-restore, real traffic. A ClusterIP Service with TCP and UDP ports reaches its pods.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type E2ECluster,
  endpointSliceObject,
  type ProxyProcess,
  request,
  serviceObject,
  startE2ECluster,
} from '../support/e2e.ts';

const PORTS = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' as const },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP' as const },
];

describe.each(['legacy', 'nft'] as const)('ClusterIP end to end (%s backend)', (backend) => {
  let cluster: E2ECluster;
  let proxy: ProxyProcess;
  let clusterIP: string;

  beforeAll(async () => {
    cluster = await startE2ECluster({ pods: 3, backend });
    const [, p2, p3] = cluster.topo.pods;
    await cluster.serve(p2!, 8080);
    await cluster.serve(p3!, 8080);
    const svc = cluster.api.store.create('services', serviceObject('web', PORTS)) as unknown as {
      spec: { clusterIP: string };
    };
    clusterIP = svc.spec.clusterIP;
    cluster.api.store.create(
      'endpointslices',
      endpointSliceObject('web', PORTS, [{ ip: p2!.ip }, { ip: p3!.ip }]),
    );
    proxy = await cluster.startProxy();
    const ms = await cluster.waitFor('the service rules', async () =>
      (await cluster.iptablesSave('nat')).includes('"default/web:tcp cluster IP"'),
    );
    console.log(`[e2e ${backend}] rules for default/web in the kernel ${ms} ms after start`);
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.destroy();
  });

  it('renders the upstream chain layout into the kernel', async () => {
    const nat = await cluster.iptablesSave('nat');
    expect(nat).toMatch(
      /-A KUBE-SERVICES -d \S+\/32 -p tcp -m comment --comment "default\/web:tcp cluster IP" -m tcp --dport 80 -j KUBE-SVC-/,
    );
    expect(nat).toMatch(/-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
    expect(nat).toMatch(/-j DNAT --to-destination 10\.244\.2\.2:8080/);
    expect(nat).toMatch(/-m statistic --mode random --probability 0\.5/);
  });

  it('a TCP request from a pod to the ClusterIP reaches a serving pod', async () => {
    const r = await request(cluster, cluster.topo.pods[0]!.ns, 'tcp-request', `${clusterIP}:80`);
    expect(r.ok).toBe(true);
    expect(['pod2', 'pod3']).toContain(r.reply);
  });

  it('a UDP request from a pod to the ClusterIP reaches a serving pod', async () => {
    const r = await request(cluster, cluster.topo.pods[0]!.ns, 'udp-request', `${clusterIP}:53`);
    expect(r.ok).toBe(true);
    expect(['pod2', 'pod3']).toContain(r.reply);
  });

  it('load-balances TCP over both endpoints', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) {
      const r = await request(cluster, cluster.topo.pods[0]!.ns, 'tcp-request', `${clusterIP}:80`);
      if (r.reply) seen.add(r.reply);
    }
    expect([...seen].sort()).toEqual(['pod2', 'pod3']);
  });
});
