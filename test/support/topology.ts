/**
 * A Kubernetes node built from network namespaces, for kernel and e2e tests:
 *
 *   client (192.168.100.2) ── eth1 ── node (192.168.100.1, the node IP) ── veth-pN ── pod N
 *                                                                       10.244.N.1   10.244.N.2
 *
 * Each pod has its own routed /24 (as routed CNIs do), so every pod-to-pod packet crosses the
 * node's netfilter and no bridge netfilter is needed. The cluster CIDR is 10.244.0.0/16. All of
 * it exists only inside the namespaces made here; `destroy()` removes them and every process in
 * them.
 */
import { createNetns, deleteNetns, execInOk, runOk, vethPair } from './netns.ts';

export const CLUSTER_CIDR = '10.244.0.0/16';
export const NODE_IP = '192.168.100.1';
export const CLIENT_IP = '192.168.100.2';

export interface Pod {
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
}

export interface NodeTopology {
  readonly node: string;
  readonly client: string;
  readonly pods: Pod[];
  /** Adds a pod namespace wired to the node; `index` picks its /24 (10.244.index.0/24). */
  addPod(name: string, index: number): Promise<Pod>;
  /** Removes one pod namespace (its veth goes with it), as a deleted pod. */
  removePod(pod: Pod): Promise<void>;
  destroy(): Promise<void>;
}

async function wirePod(node: string, name: string, index: number): Promise<Pod> {
  const ns = await createNetns(`pod${index}`);
  await vethPair(
    { ns: node, ifname: `veth-p${index}`, addr: `10.244.${index}.1/24` },
    { ns, ifname: 'eth0', addr: `10.244.${index}.2/24` },
  );
  await runOk(['ip', '-n', ns, 'route', 'add', 'default', 'via', `10.244.${index}.1`]);
  return { name, ns, ip: `10.244.${index}.2` };
}

export async function buildNodeTopology(opts: { pods: number }): Promise<NodeTopology> {
  const made: string[] = [];
  try {
    const node = await createNetns('node');
    made.push(node);
    // Forwarding inside the node namespace only; the machine's own namespace is never touched.
    await execInOk(node, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const client = await createNetns('client');
    made.push(client);
    await vethPair(
      { ns: node, ifname: 'eth1', addr: `${NODE_IP}/24` },
      { ns: client, ifname: 'eth0', addr: `${CLIENT_IP}/24` },
    );
    await runOk(['ip', '-n', client, 'route', 'add', 'default', 'via', NODE_IP]);
    const pods: Pod[] = [];
    for (let i = 1; i <= opts.pods; i++) {
      const pod = await wirePod(node, `pod${i}`, i);
      made.push(pod.ns);
      pods.push(pod);
    }
    const topo: NodeTopology = {
      node,
      client,
      pods,
      async addPod(name, index) {
        const pod = await wirePod(node, name, index);
        made.push(pod.ns);
        pods.push(pod);
        return pod;
      },
      async removePod(pod) {
        await deleteNetns(pod.ns);
        const i = pods.indexOf(pod);
        if (i >= 0) pods.splice(i, 1);
      },
      async destroy() {
        for (const ns of made.reverse()) await deleteNetns(ns);
        made.length = 0;
      },
    };
    return topo;
  } catch (err) {
    for (const ns of made.reverse()) await deleteNetns(ns);
    throw err;
  }
}
