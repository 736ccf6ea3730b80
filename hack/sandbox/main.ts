/**
 * `make run` without $KUBECONFIG: a whole sandbox on this machine, no cluster needed.
 *
 * - the development API server on 127.0.0.1:6443 (kubectl works against it);
 * - a node made of network namespaces: the node, three pods serving their name on TCP and UDP
 *   8080, and an outside client (see test/support/topology.ts for the addresses);
 * - sample Services with EndpointSlices: ClusterIP (TCP+UDP), NodePort, LoadBalancer with a
 *   source range, externalTrafficPolicy Local;
 * - kube-proxy-ts itself inside the node namespace.
 *
 * Everything lives in namespaces made here and on loopback; Ctrl-C (or SANDBOX_SECONDS) tears it
 * all down. Usage: node hack/sandbox/main.ts [--backend legacy|nft] [extra proxy flags...]
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderKubeconfig } from '../../pkg/apiserver/kubeconfig.ts';
import {
  endpointSliceObject,
  type ServicePortSpec,
  serviceObject,
  startE2ECluster,
} from '../../test/support/e2e.ts';
import { CLIENT_IP, NODE_IP } from '../../test/support/topology.ts';

const API_ADDRESS = '127.0.0.1:6443';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the sandbox builds network namespaces: run it as root');
  const backend = arg('backend') === 'legacy' ? 'legacy' : 'nft';
  const extra = process.argv.slice(2).filter((a, i, all) => a !== '--backend' && all[i - 1] !== '--backend');
  const cluster = await startE2ECluster({ pods: 3, backend, apiListen: API_ADDRESS });
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${why}: tearing the sandbox down...`);
    await proxy.stop();
    await cluster.destroy();
    console.log('sandbox removed (namespaces, processes, API server).');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('interrupted'));
  process.on('SIGTERM', () => void stop('terminated'));

  const [p1, p2, p3] = cluster.topo.pods as [
    (typeof cluster.topo.pods)[0],
    (typeof cluster.topo.pods)[0],
    (typeof cluster.topo.pods)[0],
  ];
  for (const p of [p1, p2, p3]) await cluster.serve(p, 8080);
  const store = cluster.api.store;
  const web: ServicePortSpec[] = [
    { name: 'http', port: 80, targetPort: 8080 },
    { name: 'dns', port: 53, targetPort: 8080, protocol: 'UDP' },
  ];
  const np: ServicePortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30080 }];
  const lb: ServicePortSpec[] = [{ name: 'http', port: 80, targetPort: 8080 }];
  store.create('services', serviceObject('web', web));
  store.create('endpointslices', endpointSliceObject('web', web, [{ ip: p1.ip }, { ip: p2.ip }]));
  store.create('services', serviceObject('web-nodeport', np, { type: 'NodePort' }));
  store.create('endpointslices', endpointSliceObject('web-nodeport', np, [{ ip: p2.ip }, { ip: p3.ip }]));
  store.create(
    'services',
    serviceObject('web-lb', lb, { type: 'LoadBalancer', loadBalancerSourceRanges: [`${CLIENT_IP}/32`] }),
  );
  const lbSvc = store.get('services', 'default', 'web-lb') as unknown as Record<string, unknown>;
  store.update(
    'services',
    { ...lbSvc, status: { loadBalancer: { ingress: [{ ip: '192.168.200.10' }] } } } as never,
    {
      subresource: 'status',
    },
  );
  store.create('endpointslices', endpointSliceObject('web-lb', lb, [{ ip: p3.ip }]));
  store.create('services', serviceObject('web-empty', lb));

  const kubeconfig = join(process.cwd(), 'sandbox.kubeconfig');
  await writeFile(kubeconfig, renderKubeconfig(`http://${API_ADDRESS}`), { mode: 0o600 });
  // Logs for a person at a terminal unless asked otherwise.
  const format = extra.some((a) => a.startsWith('--logging-format')) ? [] : ['--logging-format=text'];
  const proxy = await cluster.startProxy([...format, ...extra]);
  proxy.child.stdout?.pipe(process.stdout);
  proxy.child.stderr?.pipe(process.stderr);
  const get = (name: string) =>
    (store.get('services', 'default', name) as unknown as { spec: { clusterIP: string } }).spec.clusterIP;
  const tool = `${process.execPath} test/support/traffic.ts`;
  console.log(`
kube-proxy-ts sandbox is up (iptables backend: ${backend}).

  kubeconfig:   ${kubeconfig}      (API server http://${API_ADDRESS}, no auth, loopback only)
  node:         ip netns exec ${cluster.topo.node} ...   (node IP ${NODE_IP})
  pods:         ${cluster.topo.pods.map((p) => `${p.name}=${p.ip} (${p.ns})`).join(', ')}
  client:       ip netns exec ${cluster.topo.client} ...   (outside the node, ${CLIENT_IP})

Services: web ${get('web')} (tcp 80, udp 53), web-nodeport :30080, web-lb 192.168.200.10 (only ${CLIENT_IP}), web-empty ${get('web-empty')} (no endpoints)

Try:
  export KUBECONFIG=${kubeconfig}
  kubectl get svc,endpointslices
  ip netns exec ${p1.ns} ${tool} tcp-request --to ${get('web')}:80
  ip netns exec ${p1.ns} ${tool} udp-request --to ${get('web')}:53
  ip netns exec ${cluster.topo.client} ${tool} tcp-request --to ${NODE_IP}:30080
  ip netns exec ${p1.ns} ${tool} tcp-request --to ${get('web-empty')}:80     # refused at once
  kubectl delete endpointslice web-abc                                      # then retry web
  ip netns exec ${cluster.topo.node} iptables-${backend}-save -t nat | grep default/web
  ip netns exec ${cluster.topo.node} iptables-${backend}-save > /tmp/rules && \\
    bin/kube-proxy-ts trace --iptables-save /tmp/rules --src ${p1.ip} --dst ${get('web')} --dport 80 --protocol tcp --from pod

Ctrl-C tears everything down.
`);
  const seconds = Number(process.env.SANDBOX_SECONDS ?? 0);
  if (seconds > 0) setTimeout(() => void stop(`SANDBOX_SECONDS=${seconds} elapsed`), seconds * 1000);
  await new Promise(() => {});
}

main().catch((err: unknown) => {
  console.error(`sandbox: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
