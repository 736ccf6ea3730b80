/**
 * Helpers for the service-feature and lifecycle e2e scenarios (test/e2e/services, test/e2e/lifecycle).
 * They wrap the lead's harness (e2e.ts, topology.ts, traffic.ts) without changing it:
 *
 * - Services and EndpointSlices written straight into the in-process API server's store;
 * - a second outside client on its own link (for source-range tests);
 * - servers whose UDP log (the `from` address of each datagram) the test can read;
 * - a tiny HTTP client run inside a namespace (health-check node ports, /healthz, /metrics);
 * - "foreign" rules of another program (a CNI-like filter chain and a hostport-like nat chain);
 * - a restart of the API server: new listeners and a new store holding the old objects.
 *
 * Every address used here lives inside the test namespaces; nothing runs in, or sends traffic
 * from, the machine's own namespace.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import type { KubeObject } from '../../pkg/apiserver/resources.ts';
import { type ApiServer, createApiServer } from '../../pkg/apiserver/server.ts';
import {
  type E2ECluster,
  endpointSliceObject,
  type ProxyProcess,
  request,
  type ServicePortSpec,
  type SliceEndpoint,
  serviceObject,
} from './e2e.ts';
import { createNetns, deleteNetns, execInOk, inNetns, run, runOk, vethPair } from './netns.ts';
import { CLIENT_IP, type Pod } from './topology.ts';

export const SERVICE_CIDR_PREFIX = '10.96.';

/**
 * Flags every scenario passes to the proxy. nf_conntrack_max and the conntrack hash size are
 * global (the machine's, not the node namespace's): --conntrack-max-per-core=0 keeps the proxy
 * from touching them, as upstream does with 0.
 */
export const SAFE_PROXY_ARGS: readonly string[] = ['--conntrack-max-per-core=0'];

export function startProxy(cluster: E2ECluster, extraArgs: readonly string[] = []): Promise<ProxyProcess> {
  return cluster.startProxy([...SAFE_PROXY_ARGS, ...extraArgs]);
}

/**
 * The first full sync of a proxy makes a few dozen iptables calls; on a loaded 2-core machine
 * (several suites at once) each takes up to ~0.5 s, so waits for a first sync are generous.
 */
export const FIRST_SYNC_TIMEOUT_MS = 45_000;

/** The time (ms since the epoch) of the first proxy log line after `fromIndex` matching `pattern`. */
export function logTime(logs: string, pattern: RegExp, fromIndex = 0): number | undefined {
  for (const line of logs.slice(fromIndex).split('\n')) {
    if (!pattern.test(line)) continue;
    try {
      return (JSON.parse(line) as { time?: number }).time;
    } catch {
      // not JSON: keep looking
    }
  }
  return undefined;
}

/** Awaits `p`; when it fails, prints the tail of the proxy's log first (the evidence for a report). */
export async function withProxyLogs<T>(proxy: ProxyProcess | undefined, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    console.log(`[e2e] proxy log tail:\n${proxy?.logs().slice(-12_000) ?? '(no proxy)'}`);
    throw err;
  }
}

/** Prints one scenario's measurement in the suite's format: `[e2e] <scenario>: <what> (<ms> ms)`. */
export function report(scenario: string, what: string, ms: number): void {
  console.log(`[e2e] ${scenario}: ${what} (${Math.round(ms)} ms)`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

// ---------------------------------------------------------------------------------------------
// API objects

export interface CreatedService {
  readonly name: string;
  readonly clusterIP: string;
  /** Allocated node ports, in port order (0 where none). */
  readonly nodePorts: number[];
  readonly healthCheckNodePort: number | undefined;
}

interface ServiceView {
  metadata: { name: string };
  spec: {
    clusterIP: string;
    ports: { nodePort?: number }[];
    healthCheckNodePort?: number;
  };
}

function viewOf(obj: unknown): CreatedService {
  const s = obj as ServiceView;
  return {
    name: s.metadata.name,
    clusterIP: s.spec.clusterIP,
    nodePorts: s.spec.ports.map((p) => p.nodePort ?? 0),
    healthCheckNodePort: s.spec.healthCheckNodePort,
  };
}

/** Creates a Service in `default`; the API server allocates its cluster IP and node ports. */
export function createService(
  api: ApiServer,
  name: string,
  ports: readonly ServicePortSpec[],
  spec: Record<string, unknown> = {},
): CreatedService {
  return viewOf(api.store.create('services', serviceObject(name, ports, spec)));
}

/** Sets the Service's status.loadBalancer.ingress to `ips` (what a cloud controller does). */
export function setLoadBalancerIngress(api: ApiServer, name: string, ips: readonly string[]): void {
  const cur = api.store.get('services', 'default', name);
  api.store.update(
    'services',
    { ...cur, status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } } },
    {
      subresource: 'status',
    },
  );
}

/** Creates the Service's one EndpointSlice, or replaces its endpoints when it exists. */
export function setEndpoints(
  api: ApiServer,
  service: string,
  ports: readonly ServicePortSpec[],
  endpoints: readonly SliceEndpoint[],
): void {
  const desired = endpointSliceObject(service, ports, endpoints);
  let current: KubeObject | undefined;
  try {
    current = api.store.get('endpointslices', 'default', desired.metadata.name);
  } catch {
    current = undefined;
  }
  if (!current) {
    api.store.create('endpointslices', desired);
    return;
  }
  api.store.update('endpointslices', { ...desired, metadata: { ...desired.metadata, ...current.metadata } });
}

// ---------------------------------------------------------------------------------------------
// Rules

export type SaveTable = 'nat' | 'filter';

/** Waits until iptables-save of `table` in the node matches `pattern`; returns the time taken. */
export function waitForRule(
  cluster: E2ECluster,
  table: SaveTable,
  pattern: string | RegExp,
  timeoutMs = 30_000,
): Promise<number> {
  const test = (text: string) => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
  return cluster.waitFor(
    `${table} rule ${String(pattern)}`,
    async () => test(await cluster.iptablesSave(table)),
    timeoutMs,
  );
}

// ---------------------------------------------------------------------------------------------
// Traffic

export interface Reply {
  readonly ok: boolean;
  readonly reply?: string;
  readonly error?: string;
  readonly ms?: number;
}

/** errno names for socat's "E connect(...): <strerror>" messages. */
const STRERROR_CODES: readonly [RegExp, string][] = [
  [/Connection refused/, 'ECONNREFUSED'],
  [/Connection timed out|Operation timed out/, 'ETIMEDOUT'],
  [/Network is unreachable/, 'ENETUNREACH'],
  [/No route to host/, 'EHOSTUNREACH'],
  [/Connection reset/, 'ECONNRESET'],
];

function errorCode(stderr: string): string {
  for (const [re, code] of STRERROR_CODES) if (re.test(stderr)) return code;
  return stderr.trim().split('\n').pop() || 'no reply';
}

/**
 * One TCP request from inside `ns` with socat (starts in milliseconds where a Node client takes a
 * second on a loaded machine): connects, reads the server's name until it closes. `ms` is the
 * wall time of the whole attempt, namespace entry included.
 */
export async function tcp(_cluster: E2ECluster, ns: string, to: string, timeoutMs = 2000): Promise<Reply> {
  const secs = (timeoutMs / 1000).toFixed(3);
  const start = performance.now();
  const r = await run(
    inNetns(ns, ['socat', '-u', '-T', secs, `TCP4:${to},connect-timeout=${secs}`, 'STDOUT']),
    undefined,
    timeoutMs + 5000,
  );
  const ms = Math.round(performance.now() - start);
  const reply = r.stdout.trim();
  if (r.code === 0 && reply) return { ok: true, reply, ms };
  return { ok: false, error: r.code === 0 ? 'ETIMEDOUT' : errorCode(r.stderr), ms };
}

/** One UDP request through the harness's traffic tool (the server logs the datagram's source). */
export function udp(cluster: E2ECluster, ns: string, to: string, timeoutMs = 2000): Promise<Reply> {
  return request(cluster, ns, 'udp-request', to, timeoutMs);
}

/** Polls with TCP requests until one is answered; returns the answer and the time taken. */
export async function waitForAnswer(
  cluster: E2ECluster,
  ns: string,
  to: string,
  timeoutMs = 10_000,
): Promise<{ reply: string; ms: number }> {
  const start = performance.now();
  let last: Reply | undefined;
  while (performance.now() - start < timeoutMs) {
    last = await tcp(cluster, ns, to, 1000);
    if (last.ok && last.reply) return { reply: last.reply, ms: performance.now() - start };
    await sleep(100);
  }
  throw new Error(`no answer from ${to} in ${ns} within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** `n` TCP requests one after another; the replies (or error codes, prefixed with `!`). */
export async function tcpReplies(cluster: E2ECluster, ns: string, to: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await tcp(cluster, ns, to);
    out.push(r.ok ? (r.reply ?? '') : `!${r.error ?? 'unknown'}`);
  }
  return out;
}

export interface LoggedServer {
  readonly child: ChildProcess;
  readonly pod: Pod;
  /** Source addresses (`ip:port`) of the UDP datagrams received since the last `clear()`. */
  udpSources(): string[];
  clear(): void;
}

/** A name server in `pod` whose UDP log (traffic.ts prints the sender of each datagram) is kept. */
export async function serveLogged(cluster: E2ECluster, pod: Pod, port: number): Promise<LoggedServer> {
  const child = await cluster.serve(pod, port);
  let sources: string[] = [];
  let partial = '';
  child.stdout?.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const o = JSON.parse(line) as { from?: string };
        if (o.from) sources.push(o.from);
      } catch {
        // not a log line of ours
      }
    }
  });
  return {
    child,
    pod,
    udpSources: () => [...sources],
    clear() {
      sources = [];
    },
  };
}

/** The IP part of `ip:port`. */
export function hostOf(hostPort: string): string {
  return hostPort.replace(/:\d+$/, '');
}

// ---------------------------------------------------------------------------------------------
// HTTP from inside a namespace

export interface HttpAnswer {
  readonly status?: number;
  readonly body?: string;
  readonly error?: string;
}

const HTTP_CLIENT = `
const [url, timeout] = process.argv.slice(1);
fetch(url, { signal: AbortSignal.timeout(Number(timeout)) })
  .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))
  .catch((e) => console.log(JSON.stringify({ error: String(e.cause?.code ?? e.name ?? e) })));
`;

/** GET `url` from inside `ns` (the test process's own Node binary, run in the namespace). */
export async function httpGet(ns: string, url: string, timeoutMs = 2000): Promise<HttpAnswer> {
  const r = await run(inNetns(ns, [process.execPath, '-e', HTTP_CLIENT, url, String(timeoutMs)]));
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as HttpAnswer;
  } catch {
    return { error: `no answer (exit ${r.code}): ${r.stderr.trim()}` };
  }
}

// ---------------------------------------------------------------------------------------------
// A second outside client

export interface OutsideClient {
  readonly ns: string;
  readonly ip: string;
  destroy(): Promise<void>;
}

/**
 * Another outside client on its own link to the node: node eth{index+1} 192.168.{100+index}.1/24,
 * client 192.168.{100+index}.2/24, default route via the node. `index` ≥ 1 (0 is the harness's).
 */
export async function addOutsideClient(cluster: E2ECluster, index: number): Promise<OutsideClient> {
  const ns = await createNetns(`client${index}`);
  try {
    const net = `192.168.${100 + index}`;
    await vethPair(
      { ns: cluster.topo.node, ifname: `eth${index + 1}`, addr: `${net}.1/24` },
      { ns, ifname: 'eth0', addr: `${net}.2/24` },
    );
    await runOk(['ip', '-n', ns, 'route', 'add', 'default', 'via', `${net}.1`]);
    return { ns, ip: `${net}.2`, destroy: () => deleteNetns(ns) };
  } catch (err) {
    await deleteNetns(ns);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// The node's default route

/**
 * Gives the node a default route through the outside client, as a real node has one through its
 * gateway. Without it a packet that is not DNATed (a service with no endpoints, a denied LB
 * source) dies in the node's routing with "network unreachable" before the filter table's REJECT
 * or DROP rules can see it. The client does not forward, so nothing leaves the test namespaces.
 */
export async function addNodeDefaultRoute(cluster: E2ECluster): Promise<void> {
  await runOk(['ip', '-n', cluster.topo.node, 'route', 'replace', 'default', 'via', CLIENT_IP]);
}

// ---------------------------------------------------------------------------------------------
// Sysctls of the node namespace (per namespace; the machine's own are never read or written)

export async function nodeSysctl(cluster: E2ECluster, name: string): Promise<string> {
  return (await execInOk(cluster.topo.node, ['sysctl', '-n', name])).trim();
}

// ---------------------------------------------------------------------------------------------
// Rules of another program

/** Chain names of the foreign program; they must not look like ours (no KUBE- anywhere). */
export const FOREIGN_FILTER_CHAIN = 'CNI-FORWARD-E2E';
export const FOREIGN_NAT_CHAIN = 'CNI-HOSTPORT-E2E';

/**
 * Installs a CNI-like filter chain (jumped to from FORWARD, with its own accept rules) and a
 * hostport-like nat chain with a DNAT rule (jumped to from PREROUTING), through the backend's own
 * iptables command in the node namespace.
 */
export async function installForeignRules(cluster: E2ECluster, dnatTo: string): Promise<void> {
  const ipt = `iptables-${cluster.backend}`;
  const node = cluster.topo.node;
  const cmds: string[][] = [
    ['-t', 'filter', '-N', FOREIGN_FILTER_CHAIN],
    [
      '-t',
      'filter',
      '-A',
      FOREIGN_FILTER_CHAIN,
      '-s',
      '10.244.0.0/16',
      '-m',
      'comment',
      '--comment',
      'cni e2e: pod egress',
      '-j',
      'ACCEPT',
    ],
    [
      '-t',
      'filter',
      '-A',
      FOREIGN_FILTER_CHAIN,
      '-d',
      '10.244.0.0/16',
      '-m',
      'conntrack',
      '--ctstate',
      'RELATED,ESTABLISHED',
      '-j',
      'ACCEPT',
    ],
    ['-t', 'filter', '-A', 'FORWARD', '-m', 'comment', '--comment', 'cni e2e', '-j', FOREIGN_FILTER_CHAIN],
    ['-t', 'nat', '-N', FOREIGN_NAT_CHAIN],
    [
      '-t',
      'nat',
      '-A',
      FOREIGN_NAT_CHAIN,
      '-p',
      'tcp',
      '-m',
      'addrtype',
      '--dst-type',
      'LOCAL',
      '-m',
      'tcp',
      '--dport',
      '8081',
      '-j',
      'DNAT',
      '--to-destination',
      dnatTo,
    ],
    [
      '-t',
      'nat',
      '-A',
      'PREROUTING',
      '-m',
      'comment',
      '--comment',
      'cni e2e hostports',
      '-j',
      FOREIGN_NAT_CHAIN,
    ],
  ];
  for (const c of cmds) await execInOk(node, [ipt, '-w', ...c]);
}

/**
 * The lines of an iptables-save text that are not kube-proxy's: every line that names no KUBE-
 * chain, without the `#` comment lines (they carry a date) and with chain counters zeroed (the
 * policy counters of built-in chains move with traffic).
 */
export function nonKubeLines(saveText: string): string[] {
  return saveText
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#') && !l.includes('KUBE-'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'));
}

/** Chains kube-proxy owns that `--cleanup` must remove (KUBE-FIREWALL is kubelet's and may stay). */
export const KUBE_PROXY_CHAIN_PATTERN =
  /KUBE-(SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|EXTERNAL-SERVICES|FORWARD|PROXY-FIREWALL|PROXY-CANARY|SVC-|SVL-|SEP-|EXT-|FW-)/;

// ---------------------------------------------------------------------------------------------
// Firewall reload: delete every KUBE-* chain and jump

/**
 * What a firewall reload does to kube-proxy: mangle, nat and filter restored empty in one
 * `iptables-restore` without --noflush, which flushes every chain and deletes every
 * non-built-in chain of each table (KUBE-* and everyone else's), in the node namespace. One
 * restore, as reload tools do, so that a proxy sync cannot slip in between a flush and a delete.
 */
export async function flushAllTables(cluster: E2ECluster): Promise<void> {
  const empty = ['mangle', 'nat', 'filter'].map((t) => `*${t}\nCOMMIT\n`).join('');
  await execInOk(cluster.topo.node, [`iptables-${cluster.backend}-restore`, '-w', '5'], empty);
}

// ---------------------------------------------------------------------------------------------
// API server restart

const RESTART_KINDS = ['nodes', 'services', 'endpointslices'] as const;

/**
 * Restarts the API server under the proxy, as far as an in-memory server can: the running
 * server's listeners are closed (open watches are cut, new connections are refused while it is
 * down), then after `downMs` a NEW server, with a NEW store holding copies of the old objects (as
 * etcd would keep them), serves the same unix socket the node's relay points at. Its resource
 * versions are pushed past the old ones and its history is compacted, so a watch resumed from an
 * old version gets 410 Gone and must relist, as after a real restart with a cold watch cache.
 *
 * `whileDown` runs against the new store before it listens: objects changed during the outage.
 * Returns the new server; the caller stops it.
 */
export async function restartApiServer(
  cluster: E2ECluster,
  old: ApiServer,
  downMs: number,
  whileDown: (api: ApiServer) => void = () => {},
): Promise<ApiServer> {
  const sock = join(dirname(cluster.kubeconfig), 'api.sock');
  const oldRV = Number(old.store.resourceVersion());
  const copies = RESTART_KINDS.map((kind) => ({ kind, items: old.store.list(kind).items }));
  await old.stop();
  const started = performance.now();
  const fresh = createApiServer({ listen: '127.0.0.1:0' });
  try {
    for (const { kind, items } of copies) {
      for (const item of items) {
        // A new object with the old one's contents; the new store sets its own version and uid.
        const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...meta } = item.metadata;
        const created = fresh.store.create(kind, { ...item, metadata: meta });
        if (kind === 'services' && item.status !== undefined) {
          fresh.store.update('services', { ...created, status: item.status }, { subresource: 'status' });
        }
      }
    }
    whileDown(fresh);
    // Move the version counter past the old server's so that the proxy's resume versions are
    // neither "in the future" nor replayable; then forget the history: every old version is 410.
    for (let i = 0; Number(fresh.store.resourceVersion()) <= oldRV && i < 100_000; i++) {
      const ns = fresh.store.get('namespaces', undefined, 'kube-public');
      fresh.store.update('namespaces', {
        ...ns,
        metadata: { ...ns.metadata, labels: { 'e2e-rv-padding': String(i) } },
      });
    }
    fresh.store.compactHistory();
    const left = downMs - (performance.now() - started);
    if (left > 0) await sleep(left);
    await fresh.start();
    await fresh.serveUnixSocket(sock);
    return fresh;
  } catch (err) {
    await fresh.stop();
    throw err;
  }
}
