/**
 * An e2e harness: a node built from namespaces (topology.ts), the development API server in this
 * process, and the real `bin/kube-proxy-ts` binary running inside the node namespace.
 *
 * The API server stays in the machine's namespace on loopback and also serves a unix socket;
 * namespaces share the filesystem, so a socat inside the node namespace relays the node's own
 * 127.0.0.1:6443 to that socket. Nothing is routed between the machine and the test namespaces.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { renderKubeconfig } from '../../pkg/apiserver/kubeconfig.ts';
import { type ApiServer, createApiServer } from '../../pkg/apiserver/server.ts';
import { execInOk, inNetns, run } from './netns.ts';
import { buildNodeTopology, CLUSTER_CIDR, NODE_IP, type NodeTopology, type Pod } from './topology.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const BINARY = join(REPO, 'bin/kube-proxy-ts');
export const TRAFFIC = join(REPO, 'test/support/traffic.ts');
export const NODE_NAME = 'node1';
const API_PORT = 6443;

export type Backend = 'legacy' | 'nft';

export interface ProxyProcess {
  readonly child: ChildProcess;
  /** Everything the proxy logged so far. */
  logs(): string;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface E2ECluster {
  readonly topo: NodeTopology;
  readonly api: ApiServer;
  readonly backend: Backend;
  /** Kubeconfig path as seen from inside the node namespace. */
  readonly kubeconfig: string;
  startProxy(extraArgs?: readonly string[]): Promise<ProxyProcess>;
  /** argv that runs the traffic tool inside `ns`. */
  traffic(ns: string, args: readonly string[]): string[];
  /** Starts a TCP+UDP name server in a pod; killed with the pod's namespace. */
  serve(pod: Pod, port: number): Promise<ChildProcess>;
  iptablesSave(table: 'nat' | 'filter'): Promise<string>;
  /** Polls `check` until it is true or `timeoutMs` passes; returns the time it took. */
  waitFor(what: string, check: () => Promise<boolean>, timeoutMs?: number): Promise<number>;
  destroy(): Promise<void>;
}

export interface ServicePortSpec {
  readonly name?: string;
  readonly port: number;
  readonly targetPort: number;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  readonly nodePort?: number;
}

/** A Service object for the store; the API server allocates the cluster IP. */
export function serviceObject(
  name: string,
  ports: readonly ServicePortSpec[],
  spec: Record<string, unknown> = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: {
      ports: ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol ?? 'TCP',
        ...(p.nodePort ? { nodePort: p.nodePort } : {}),
      })),
      ...spec,
    },
  };
}

export interface SliceEndpoint {
  readonly ip: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly nodeName?: string;
}

export function endpointSliceObject(
  service: string,
  ports: readonly ServicePortSpec[],
  endpoints: readonly SliceEndpoint[],
  sliceName = `${service}-abc`,
) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: sliceName, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      nodeName: e.nodeName ?? NODE_NAME,
    })),
    ports: ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      port: p.targetPort,
      protocol: p.protocol ?? 'TCP',
    })),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function startE2ECluster(opts: {
  pods: number;
  backend: Backend;
  /** Where the API server listens in the machine's namespace; default a free loopback port. */
  apiListen?: string;
}): Promise<E2ECluster> {
  const dir = await mkdtemp(join(tmpdir(), 'kpt-e2e-'));
  const api = createApiServer({ listen: opts.apiListen ?? '127.0.0.1:0' });
  let topo: NodeTopology | undefined;
  const children: ChildProcess[] = [];
  const cleanup = async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await topo?.destroy();
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await api.start();
    const sock = join(dir, 'api.sock');
    await api.serveUnixSocket(sock);
    topo = await buildNodeTopology({ pods: opts.pods });
    const t = topo;
    const relay = spawn(
      'ip',
      inNetns(t.node, [
        'socat',
        `TCP-LISTEN:${API_PORT},bind=127.0.0.1,reuseaddr,fork`,
        `UNIX-CONNECT:${sock}`,
      ]).slice(1),
      { stdio: 'ignore' },
    );
    children.push(relay);
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, renderKubeconfig(`http://127.0.0.1:${API_PORT}`), { mode: 0o600 });
    api.store.create('nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME } },
      spec: { podCIDR: CLUSTER_CIDR, podCIDRs: [CLUSTER_CIDR] },
      status: { addresses: [{ type: 'InternalIP', address: NODE_IP }] },
    });

    const cluster: E2ECluster = {
      topo: t,
      api,
      backend: opts.backend,
      kubeconfig,
      traffic: (ns, args) => inNetns(ns, [process.execPath, TRAFFIC, ...args]),
      async startProxy(extraArgs = []) {
        const args = [
          BINARY,
          `--kubeconfig=${kubeconfig}`,
          `--hostname-override=${NODE_NAME}`,
          `--cluster-cidr=${CLUSTER_CIDR}`,
          `--iptables-backend=${opts.backend}`,
          '--healthz-bind-address=127.0.0.1:10256',
          '--metrics-bind-address=127.0.0.1:10249',
          '--iptables-min-sync-period=100ms',
          // nf_conntrack_max and the module's hashsize are machine-wide; a test leaves them alone.
          '--conntrack-max-per-core=0',
          '-v=2',
          ...extraArgs,
        ];
        const child = spawn('ip', inNetns(t.node, args).slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(child);
        let logs = '';
        child.stdout?.on('data', (d: Buffer) => {
          logs += d.toString();
        });
        child.stderr?.on('data', (d: Buffer) => {
          logs += d.toString();
        });
        const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
        return {
          child,
          logs: () => logs,
          async stop(signal = 'SIGTERM') {
            if (child.exitCode !== null) return child.exitCode;
            child.kill(signal);
            return Promise.race([
              exited,
              sleep(10_000)
                .then(() => child.kill('SIGKILL'))
                .then(() => exited),
            ]);
          },
        };
      },
      async serve(pod, port) {
        const child = spawn(
          'ip',
          cluster.traffic(pod.ns, ['serve', '--name', pod.name, '--port', String(port)]).slice(1),
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        children.push(child);
        await new Promise<void>((r, j) => {
          child.stdout?.once('data', () => r());
          child.once('exit', (c) => j(new Error(`server in ${pod.name} exited ${c}`)));
        });
        return child;
      },
      async iptablesSave(table) {
        return execInOk(t.node, [`iptables-${opts.backend}-save`, '-t', table]);
      },
      async waitFor(what, check, timeoutMs = 15_000) {
        const start = Date.now();
        while (Date.now() - start < timeoutMs) {
          if (await check()) return Date.now() - start;
          await sleep(50);
        }
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      },
      destroy: cleanup,
    };
    return cluster;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** One request through the traffic tool; returns its JSON answer. */
export async function request(
  cluster: E2ECluster,
  ns: string,
  kind: 'tcp-request' | 'udp-request',
  to: string,
  timeoutMs = 2000,
): Promise<{ ok: boolean; reply?: string; error?: string; ms?: number }> {
  const r = await run(cluster.traffic(ns, [kind, '--to', to, '--timeout-ms', String(timeoutMs)]));
  return JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as {
    ok: boolean;
    reply?: string;
    error?: string;
  };
}
