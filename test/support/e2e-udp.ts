/**
 * Helpers for the conntrack e2e scenarios (test/e2e/conntrack): a node from e2e.ts with an uplink,
 * a proxy started with or without conntrack cleanup, a long-running UDP client stream whose
 * replies are collected as they arrive, server pods whose received datagrams are recorded, and
 * `conntrack -L` parsed inside the node namespace.
 *
 * The uplink. A real node has a default route; ours has none, so a datagram to an address no
 * rule translates (a cluster IP before its Service is programmed, an external IP) is dropped by
 * routing and its conntrack entry is never confirmed. That hides the very blackhole these tests
 * are about: in a cluster the un-NATed datagram leaves through the default route and its entry
 * lives on. So the node namespace gets an `uplink0` (a veth whose peer stays down) and a default
 * route through it; what goes there is confirmed by conntrack and then discarded, as if an
 * upstream router dropped it.
 * Only the node namespace is touched.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  type Backend,
  type E2ECluster,
  endpointSliceObject,
  type ProxyProcess,
  type ServicePortSpec,
  type SliceEndpoint,
  serviceObject,
  startE2ECluster,
} from './e2e.ts';
import { execInOk, run, runOk } from './netns.ts';
import type { Pod } from './topology.ts';

/** The client's fixed source port: one conntrack flow per destination. */
export const SPORT = 12345;
export const INTERVAL_MS = 100;
/** The promise under test: answers from the new endpoint within this long of its update. */
export const WINDOW_MS = 2000;
/** How long a twin run (cleanup disabled) watches for the answers that must not come. */
export const TWIN_OBSERVE_MS = WINDOW_MS + 1000;
export const DISABLE_CLEANUP_FLAG = '--debug-disable-conntrack-cleanup';
/** Where the pods listen (every Service port targets it). */
export const TARGET_PORT = 8080;
/** Bound on a proxy's start up to its first sync. */
export const START_TIMEOUT_MS = 90_000;
/** Hook timeout for starting a pair of nodes. */
export const SETUP_TIMEOUT_MS = 200_000;

export type Mode = 'cleanup' | 'no-cleanup';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One scenario's result line, in the format the suite's log readers grep for. */
export function report(scenario: string, measured: string, ms: number): void {
  console.log(`[conntrack-e2e] ${scenario}: ${measured} (${Math.round(ms)} ms)`);
}

// ---------------------------------------------------------------------------------------------
// conntrack -L

export interface ConntrackEntry {
  readonly proto: string;
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  readonly replySrc: string;
  readonly replyDst: string;
  readonly replySport: number;
  readonly replyDport: number;
  readonly id: string | undefined;
  readonly line: string;
}

/** Parses one line of `conntrack -L -o id` (the original tuple first, then the reply tuple). */
export function parseConntrackLine(line: string): ConntrackEntry | undefined {
  const proto = /^(\w+)\s/.exec(line.trim())?.[1];
  const all = (key: string) => [...line.matchAll(new RegExp(`\\b${key}=(\\S+)`, 'g'))].map((m) => m[1]!);
  const src = all('src');
  const dst = all('dst');
  const sport = all('sport');
  const dport = all('dport');
  if (!proto || src.length < 2 || dst.length < 2 || sport.length < 2 || dport.length < 2) return undefined;
  return {
    proto,
    src: src[0]!,
    dst: dst[0]!,
    sport: Number(sport[0]),
    dport: Number(dport[0]),
    replySrc: src[1]!,
    replyDst: dst[1]!,
    replySport: Number(sport[1]),
    replyDport: Number(dport[1]),
    id: /\bid=(\d+)/.exec(line)?.[1],
    line: line.trim(),
  };
}

/**
 * The node's entries of `proto` whose original destination is `dst:dport`. Every scenario sends
 * to its own frontend, so this is the scenario's flow (with its source port fixed, one entry).
 */
export async function flowEntries(
  node: string,
  dst: string,
  dport: number,
  proto: 'udp' | 'sctp' = 'udp',
): Promise<ConntrackEntry[]> {
  const out = await execInOk(node, [
    'conntrack',
    '-L',
    '-p',
    proto,
    '--orig-dst',
    dst,
    '--orig-port-dst',
    String(dport),
    '-o',
    'id',
  ]);
  return out
    .split('\n')
    .map(parseConntrackLine)
    .filter((e): e is ConntrackEntry => e !== undefined && e.dst === dst && e.dport === dport);
}

/** An entry never translated: its reply comes from the address the client sent to. */
export function isUnNATed(e: ConntrackEntry): boolean {
  return e.replySrc === e.dst && e.replySport === e.dport;
}

export function describeEntries(entries: readonly ConntrackEntry[]): string {
  return entries.length === 0 ? '(no entry)' : entries.map((e) => e.line).join(' | ');
}

// ---------------------------------------------------------------------------------------------
// Line-oriented child processes

interface JsonLine {
  readonly t?: number;
  readonly reply?: string;
  readonly error?: string;
  readonly from?: string;
  readonly got?: string;
}

function onJsonLines(child: ChildProcess, sink: (o: JsonLine) => void): void {
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line.startsWith('{')) {
        try {
          sink(JSON.parse(line) as JsonLine);
        } catch {
          // a torn line from a killed process: nothing to learn from it
        }
      }
      i = buf.indexOf('\n');
    }
  });
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  return Promise.race([exited, sleep(5000)]);
}

// ---------------------------------------------------------------------------------------------
// The client stream

export interface Reply {
  readonly t: number;
  readonly from: string;
}

export interface UdpStream {
  readonly replies: readonly Reply[];
  /** Socket errors the client saw (ICMP port unreachable from a REJECT shows as ECONNREFUSED). */
  readonly errors: readonly { t: number; error: string }[];
  /** Time of the first reply from `pod` at or after `since`. */
  firstReplyFrom(pod: string, since: number): number | undefined;
  /** Replies from `pod` within [since, until]. */
  repliesFrom(pod: string, since: number, until?: number): Reply[];
  /**
   * Resolves with the time of the first reply from `pod` at or after `since`, or undefined when
   * `deadline` (epoch ms) passes first. Event driven: no polling delay in the measurement.
   */
  waitForReplyFrom(pod: string, since: number, deadline: number): Promise<number | undefined>;
  stop(): Promise<void>;
}

/**
 * Starts `udp-stream` in `ns`: one datagram every INTERVAL_MS from port SPORT to `to`, bounded by
 * `maxSeconds` (the process ends by itself even if nobody stops it).
 */
export function startUdpStream(
  cluster: E2ECluster,
  ns: string,
  to: string,
  opts: { sport?: number; maxSeconds?: number } = {},
): UdpStream {
  const count = Math.ceil(((opts.maxSeconds ?? 60) * 1000) / INTERVAL_MS);
  const argv = cluster.traffic(ns, [
    'udp-stream',
    '--to',
    to,
    '--sport',
    String(opts.sport ?? SPORT),
    '--interval-ms',
    String(INTERVAL_MS),
    '--count',
    String(count),
  ]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  const replies: Reply[] = [];
  const errors: { t: number; error: string }[] = [];
  const waiters = new Set<() => void>();
  onJsonLines(child, (o) => {
    if (typeof o.reply === 'string') replies.push({ t: o.t ?? Date.now(), from: o.reply });
    if (typeof o.error === 'string') errors.push({ t: o.t ?? Date.now(), error: o.error });
    for (const w of waiters) w();
  });
  const firstReplyFrom = (pod: string, since: number) =>
    replies.find((r) => r.from === pod && r.t >= since)?.t;
  return {
    replies,
    errors,
    firstReplyFrom,
    repliesFrom: (pod, since, until = Number.POSITIVE_INFINITY) =>
      replies.filter((r) => r.from === pod && r.t >= since && r.t <= until),
    waitForReplyFrom(pod, since, deadline) {
      return new Promise((resolve) => {
        const check = () => {
          const t = firstReplyFrom(pod, since);
          if (t !== undefined || Date.now() >= deadline) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(t !== undefined && t <= deadline ? t : undefined);
          }
        };
        const timer = setTimeout(check, Math.max(0, deadline - Date.now()));
        waiters.add(check);
        check();
      });
    },
    stop: () => killAndWait(child),
  };
}

// ---------------------------------------------------------------------------------------------
// Server pods

export interface ServerPod extends Pod {
  /** Datagrams this pod received: source address:port and the client's sequence number. */
  readonly received: readonly { t: number; from: string; seq: number }[];
  readonly server: ChildProcess;
}

// ---------------------------------------------------------------------------------------------
// The cluster

export interface ConntrackCluster {
  readonly cluster: E2ECluster;
  readonly mode: Mode;
  readonly backend: Backend;
  readonly node: string;
  /** The proxy, started with `--debug-disable-conntrack-cleanup` in mode 'no-cleanup'. */
  proxy(): ProxyProcess;
  /** Starts the proxy and resolves after its first successful sync; returns that sync's time. */
  startProxy(): Promise<number>;
  /** Stops the proxy with SIGTERM (rules stay). */
  stopProxy(): Promise<void>;
  /** The running proxy's completed syncs (from its log). */
  syncs(): SyncRecord[];
  /** Resolves with the time of the first completed sync that started after `after`. */
  waitForSync(after: number, timeoutMs?: number): Promise<number>;
  /**
   * A pod that only sends: one per scenario, so that concurrent scenarios can all use the fixed
   * source port SPORT without sharing a socket.
   */
  addClientPod(name: string): Promise<Pod>;
  /** A new pod namespace (a new IP, or `index` to reuse one) serving UDP/TCP on TARGET_PORT. */
  addServerPod(name: string, index?: number): Promise<ServerPod>;
  removePod(pod: Pod): Promise<void>;
  /** Creates a Service; `clusterIP` fixed so that a client can send before it exists. */
  createService(name: string, ports: readonly ServicePortSpec[], spec: Record<string, unknown>): void;
  deleteService(name: string): void;
  /** Creates or replaces the Service's one EndpointSlice; returns the time of the write. */
  setEndpoints(
    service: string,
    ports: readonly ServicePortSpec[],
    endpoints: readonly SliceEndpoint[],
  ): number;
  /** Streams tracked for cleanup. */
  stream(ns: string, to: string, opts?: { sport?: number; maxSeconds?: number }): UdpStream;
  destroy(): Promise<void>;
}

const SYNC_LOG = /"time":(\d+)[^\n]*"ms":(\d+)[^\n]*"msg":"synced iptables rules"/g;

export interface SyncRecord {
  /** When the sync finished (its log line). */
  readonly time: number;
  /** How long it took, as the proxy measured it. */
  readonly ms: number;
}

function syncRecords(logs: string): SyncRecord[] {
  return [...logs.matchAll(SYNC_LOG)].map((m) => ({ time: Number(m[1]), ms: Number(m[2]) }));
}

function syncTimes(logs: string): number[] {
  return syncRecords(logs).map((r) => r.time);
}

/**
 * A node (e2e.ts) with no pods yet and the uplink described above. `mode` decides whether the
 * proxy runs with conntrack cleanup (the product) or without it (the twin that must fail).
 */
export async function startConntrackCluster(opts: {
  backend: Backend;
  mode: Mode;
}): Promise<ConntrackCluster> {
  const cluster = await startE2ECluster({ pods: 0, backend: opts.backend });
  const streams: UdpStream[] = [];
  const servers: ChildProcess[] = [];
  let proxy: ProxyProcess | undefined;
  // Pod indexes (their /24) handed out in order.
  let nextIndex = 1;
  const destroy = async () => {
    await Promise.all(streams.map((s) => s.stop()));
    await proxy?.stop().catch(() => {});
    await Promise.all(servers.map(killAndWait));
    await cluster.destroy();
  };
  try {
    const node = cluster.topo.node;
    // A veth whose peer stays down (no dummy driver on every kernel): admin-up, no carrier,
    // so what is routed there passes POSTROUTING (conntrack confirms it) and is then dropped.
    await runOk(['ip', '-n', node, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0-peer']);
    await runOk(['ip', '-n', node, 'link', 'set', 'uplink0', 'up']);
    await runOk(['ip', '-n', node, 'route', 'add', 'default', 'dev', 'uplink0']);

    const waitForSync = async (after: number, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (!proxy) throw new Error('the proxy is not running');
        const t = syncTimes(proxy.logs()).find((x) => x > after);
        if (t !== undefined) return t;
        if (proxy.child.exitCode !== null)
          throw new Error(`the proxy exited ${proxy.child.exitCode}:\n${proxy.logs().slice(-4000)}`);
        await sleep(25);
      }
      throw new Error(`no sync after ${after} within ${timeoutMs} ms:\n${proxy?.logs().slice(-4000)}`);
    };
    const cc: ConntrackCluster = {
      cluster,
      mode: opts.mode,
      backend: opts.backend,
      node,
      proxy() {
        if (!proxy) throw new Error('the proxy is not running');
        return proxy;
      },
      async startProxy() {
        const started = Date.now();
        proxy = await cluster.startProxy(opts.mode === 'no-cleanup' ? [DISABLE_CLEANUP_FLAG] : []);
        // Generous: a cold start loads Node and ~40 iptables calls, slow on a busy 2-core box.
        return waitForSync(started, START_TIMEOUT_MS);
      },
      async stopProxy() {
        const code = await proxy?.stop('SIGTERM');
        if (code !== 0)
          throw new Error(`the proxy exited ${code} on SIGTERM:\n${proxy?.logs().slice(-4000)}`);
      },
      waitForSync,
      syncs: () => (proxy ? syncRecords(proxy.logs()) : []),
      addClientPod: (name) => cluster.topo.addPod(name, nextIndex++),
      async addServerPod(name, index) {
        if (index !== undefined) {
          // Reusing an IP: the old pod's veth goes away with its namespace, which the kernel
          // tears down in the background; wait for it before wiring the new one.
          await cluster.waitFor(`veth-p${index} to go`, async () => {
            const r = await run(['ip', '-n', node, 'link', 'show', `veth-p${index}`]);
            return r.code !== 0;
          });
        }
        const pod = await cluster.topo.addPod(name, index ?? nextIndex++);
        const server = await cluster.serve(pod, TARGET_PORT);
        servers.push(server);
        const received: { t: number; from: string; seq: number }[] = [];
        onJsonLines(server, (o) => {
          const seq = /^hostname (\d+)$/.exec(o.got ?? '')?.[1];
          if (o.from && seq) received.push({ t: o.t ?? Date.now(), from: o.from, seq: Number(seq) });
        });
        return { ...pod, received, server };
      },
      async removePod(pod) {
        await cluster.topo.removePod(cluster.topo.pods.find((p) => p.ns === pod.ns) ?? pod);
      },
      createService(name, ports, spec) {
        cluster.api.store.create('services', serviceObject(name, ports, spec));
      },
      deleteService(name) {
        cluster.api.store.delete('endpointslices', 'default', `${name}-abc`);
        cluster.api.store.delete('services', 'default', name);
      },
      setEndpoints(service, ports, endpoints) {
        const obj = endpointSliceObject(service, ports, endpoints);
        const exists = cluster.api.store
          .list('endpointslices', { namespace: 'default' })
          .items.some((x) => x.metadata.name === obj.metadata.name);
        const t = Date.now();
        if (exists) cluster.api.store.update('endpointslices', obj);
        else cluster.api.store.create('endpointslices', obj);
        return t;
      },
      stream(ns, to, o) {
        const s = startUdpStream(cluster, ns, to, o);
        streams.push(s);
        return s;
      },
      destroy,
    };
    return cc;
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** The /24 index of a pod address 10.244.N.2. */
export function podIndex(pod: Pod): number {
  return Number(pod.ip.split('.')[2]);
}

/** UDP port spec with the shared target port. */
export function udpPort(port: number, nodePort?: number): ServicePortSpec {
  return { name: 'udp', port, targetPort: TARGET_PORT, protocol: 'UDP', ...(nodePort ? { nodePort } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Waiting and judging

/** Polls the node's iptables table until a line contains every one of `parts`. */
export async function waitForRule(
  cc: ConntrackCluster,
  table: 'nat' | 'filter',
  parts: readonly string[],
): Promise<number> {
  return cc.cluster.waitFor(`a ${table} rule with ${parts.join(' ')}`, async () =>
    (await cc.cluster.iptablesSave(table)).split('\n').some((l) => parts.every((p) => l.includes(p))),
  );
}

/** Polls conntrack until the flow to dst:dport has an entry matching `pred`; returns it. */
export async function waitForEntry(
  cc: ConntrackCluster,
  what: string,
  dst: string,
  dport: number,
  pred: (e: ConntrackEntry) => boolean,
  timeoutMs = 10_000,
  proto: 'udp' | 'sctp' = 'udp',
): Promise<ConntrackEntry> {
  let found: ConntrackEntry | undefined;
  await cc.cluster.waitFor(
    what,
    async () => {
      found = (await flowEntries(cc.node, dst, dport, proto)).find(pred);
      return found !== undefined;
    },
    timeoutMs,
  );
  return found!;
}

export interface CleanupLine {
  readonly time: number;
  readonly byReason: Record<string, number>;
  /** A few of the deleted flows, as the proxy formats them (`reason: flow`). */
  readonly examples: readonly string[];
}

/** The proxy's "Deleted stale conntrack entries" log lines. */
export function cleanupLines(logs: string): CleanupLine[] {
  const out: CleanupLine[] = [];
  for (const line of logs.split('\n')) {
    if (!line.includes('"msg":"Deleted stale conntrack entries"')) continue;
    try {
      const o = JSON.parse(line) as Partial<CleanupLine>;
      if (typeof o.time === 'number')
        out.push({ time: o.time, byReason: o.byReason ?? {}, examples: o.examples ?? [] });
    } catch {
      // not one of the proxy's JSON lines
    }
  }
  return out;
}

/**
 * What the proxy did between `since` and `until`, from its log: the syncs that ended (end time
 * after `since` / duration) and its conntrack deletions with their reasons.
 */
export function proxyNotes(cc: ConntrackCluster, since: number, until: number): string {
  const syncs = cc
    .syncs()
    .filter((x) => x.time >= since && x.time <= until)
    .map((x) => `+${x.time - since}/${x.ms}ms`);
  const deletions = cleanupLines(cc.proxy().logs())
    .filter((x) => x.time >= since && x.time <= until)
    .map(
      (x) =>
        `+${x.time - since}ms ${Object.entries(x.byReason)
          .map(([r, n]) => `${r}=${n}`)
          .join(',')}`,
    );
  return `syncs ${syncs.join(' ') || 'none'}; deleted ${deletions.join(' ') || 'nothing'}`;
}

function describeSyncs(cc: ConntrackCluster, since: number): string {
  return cc
    .syncs()
    .filter((x) => x.time >= since - 3000)
    .map((x) => `+${x.time - since}/${x.ms}ms`)
    .join(' ');
}

export interface OutcomeCheck {
  readonly cc: ConntrackCluster;
  readonly stream: UdpStream;
  /** The endpoint that must (cleanup) or must not (twin) answer. */
  readonly pod: Pod;
  /** When the change that should end the blackhole was made (or the proxy's first sync). */
  readonly since: number;
  readonly scenario: string;
  /** The flow's original destination, to show its conntrack entry. */
  readonly dst: string;
  readonly dport: number;
}

/**
 * The verdict of one scenario. With cleanup, the first answer from `pod` must come within
 * WINDOW_MS of `since`. Without it (the twin), no answer from `pod` may come within
 * TWIN_OBSERVE_MS, and the flow's entry must still lead somewhere else: the test can fail.
 */
export async function expectOutcome(c: OutcomeCheck): Promise<void> {
  const { cc, stream, pod, since } = c;
  if (cc.mode === 'cleanup') {
    // Wait past the window so that a late answer is reported with its real latency.
    const t = await stream.waitForReplyFrom(pod.name, since, since + WINDOW_MS + 3000);
    if (t === undefined || t - since > WINDOW_MS) {
      const entries = await flowEntries(cc.node, c.dst, c.dport);
      throw new Error(
        `${c.scenario}: ${t === undefined ? 'no answer' : `first answer after ${t - since} ms`} from ${pod.name} (${pod.ip}); ` +
          `want one within ${WINDOW_MS} ms.\nconntrack: ${describeEntries(entries)}\nsyncs around it (end time - since, duration): ${describeSyncs(cc, since)}` +
          `\nproxy log tail:\n${cc.proxy().logs().slice(-3000)}`,
      );
    }
    report(
      c.scenario,
      `first answer from the new endpoint ${pod.ip} (${proxyNotes(cc, since, t)}) after`,
      t - since,
    );
    return;
  }
  const deadline = since + TWIN_OBSERVE_MS;
  const t = await stream.waitForReplyFrom(pod.name, since, deadline);
  const entries = await flowEntries(cc.node, c.dst, c.dport);
  if (t !== undefined)
    throw new Error(
      `${c.scenario} (cleanup disabled): ${pod.name} answered after ${t - since} ms; the flow should stay blackholed.\n` +
        `conntrack: ${describeEntries(entries)}`,
    );
  const stale = entries.filter((e) => e.replySrc !== pod.ip);
  if (stale.length === 0)
    throw new Error(`${c.scenario} (cleanup disabled): no stale entry left: ${describeEntries(entries)}`);
  report(
    `${c.scenario} [cleanup disabled]`,
    `still blackholed, entry replies from ${stale[0]!.replySrc}:${stale[0]!.replySport}, no answer from ${pod.ip} within`,
    Date.now() - since,
  );
}

// ---------------------------------------------------------------------------------------------
// The product and its twin, side by side

/** Two nodes on one backend: the proxy with conntrack cleanup, and its twin without. */
export interface ClusterPair {
  readonly cleanup: ConntrackCluster;
  readonly twin: ConntrackCluster;
}

/** Starts both nodes and their proxies at once (each waits for its proxy's first sync). */
export async function startPair(backend: Backend): Promise<ClusterPair> {
  const [a, b] = await Promise.allSettled([
    startConntrackCluster({ backend, mode: 'cleanup' }).then(async (cc) => {
      await cc.startProxy().catch(async (err: unknown) => {
        await cc.destroy();
        throw err;
      });
      return cc;
    }),
    startConntrackCluster({ backend, mode: 'no-cleanup' }).then(async (cc) => {
      await cc.startProxy().catch(async (err: unknown) => {
        await cc.destroy();
        throw err;
      });
      return cc;
    }),
  ]);
  if (a.status === 'rejected' || b.status === 'rejected') {
    if (a.status === 'fulfilled') await a.value.destroy();
    if (b.status === 'fulfilled') await b.value.destroy();
    throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
  }
  return { cleanup: a.value, twin: b.value };
}

export async function destroyPair(pair: ClusterPair | undefined): Promise<void> {
  if (!pair) return;
  await Promise.allSettled([pair.cleanup.destroy(), pair.twin.destroy()]);
}

/**
 * Runs one scenario on both nodes at once and waits for both to finish, so neither is torn down
 * under the other; the first failure is rethrown (the cleanup node's first).
 */
export async function onBoth(
  pair: ClusterPair,
  scenario: (cc: ConntrackCluster) => Promise<void>,
): Promise<void> {
  const results = await Promise.allSettled([scenario(pair.cleanup), scenario(pair.twin)]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

export interface HealthyFlow {
  readonly stream: UdpStream;
  /** The pod that answered first (the flow's endpoint). */
  readonly pod: Pod;
  /** The flow's conntrack entry, DNATed to `pod`. */
  readonly entry: ConntrackEntry;
}

/**
 * Creates the Service and its slice, waits until the rules DNAT to `pods[0]`, then streams from
 * `clientNs` to `dst:dport` until one of `pods` answers: a healthy flow with its entry.
 */
export async function healthyFlow(
  cc: ConntrackCluster,
  o: {
    service: string;
    ports: readonly ServicePortSpec[];
    spec: Record<string, unknown>;
    endpoints: readonly SliceEndpoint[];
    pods: readonly Pod[];
    clientNs: string;
    dst: string;
    dport: number;
    sport?: number;
  },
): Promise<HealthyFlow> {
  cc.createService(o.service, o.ports, o.spec);
  cc.setEndpoints(o.service, o.ports, o.endpoints);
  await waitForRule(cc, 'nat', ['-j DNAT', `--to-destination ${o.pods[0]!.ip}:${TARGET_PORT}`]);
  const stream = cc.stream(o.clientNs, `${o.dst}:${o.dport}`, o.sport ? { sport: o.sport } : {});
  const started = Date.now();
  await cc.cluster.waitFor(`an answer from ${o.pods.map((p) => p.name).join(' or ')}`, async () =>
    o.pods.some((p) => stream.firstReplyFrom(p.name, started) !== undefined),
  );
  const pod = o.pods.find((p) => stream.firstReplyFrom(p.name, started) !== undefined)!;
  const entry = await waitForEntry(
    cc,
    `the entry DNATed to ${pod.ip}`,
    o.dst,
    o.dport,
    (e) => e.replySrc === pod.ip,
  );
  return { stream, pod, entry };
}

// ---------------------------------------------------------------------------------------------
// SCTP without SCTP sockets
//
// Many kernels (this CI's among them) have no SCTP socket support (no sctp module), while
// conntrack tracks SCTP and iptables matches it all the same. So the SCTP client and server are
// raw IP sockets opened by socat (protocol 132): the client sends an SCTP INIT every
// INTERVAL_MS from one source port, as a client retrying its association does (the case of
// #70020/#106651: the retries reuse the entry and stay blackholed), and each pod records the
// INITs that reach it. What is measured is where the client's packets land, which is all a
// conntrack entry decides.

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32c (Castagnoli), the SCTP checksum (RFC 9260 appendix A). */
export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An SCTP packet holding one INIT chunk (common header with tag 0, as INIT requires). */
export function sctpInit(sport: number, dport: number, initiateTag: number): Buffer {
  const p = Buffer.alloc(32);
  p.writeUInt16BE(sport, 0);
  p.writeUInt16BE(dport, 2);
  p.writeUInt32BE(0, 4); // verification tag: 0 for INIT
  p.writeUInt8(1, 12); // chunk type INIT
  p.writeUInt8(0, 13);
  p.writeUInt16BE(20, 14); // chunk length
  p.writeUInt32BE(initiateTag, 16);
  p.writeUInt32BE(65535, 20); // a_rwnd
  p.writeUInt16BE(10, 24); // outbound streams
  p.writeUInt16BE(10, 26); // inbound streams
  p.writeUInt32BE(initiateTag, 28); // initial TSN
  // The checksum goes in little-endian byte order (as Linux's sctp_compute_cksum stores it).
  p.writeUInt32LE(crc32c(p), 8);
  return p;
}

export interface SctpReceipt {
  readonly t: number;
  readonly sport: number;
  readonly chunk: number;
}

/**
 * Reads `socat -x` dumps (stderr) of a raw SCTP receiver: each received packet is a header line
 * with socat's own receive time (`> 2026/11/25 13:34:49.000213856  length=32 from=0 to=31`)
 * followed by its bytes in hex. Taking socat's time, not this process's, keeps a busy test
 * process from adding its own lag to the measurement. socat hands over the SCTP packet without
 * its IPv4 header (a build that kept it would show a first nibble of 4, skipped here; our
 * source ports never start with that nibble).
 */
/**
 * socat 1.7 prints the microseconds of its timestamps zero-padded to nine digits
 * (`13:39:07.000957171` is .957171 s), where a fixed socat prints nanoseconds. A nine-digit value
 * under 10^6 is read as microseconds; read the other way it would be under 1 ms, so either
 * reading is right to the millisecond.
 */
export function fractionMs(frac: string): number {
  const n = Number(frac);
  if (frac.length === 9 && n < 1_000_000) return Math.floor(n / 1000);
  return Math.floor(n / 10 ** (frac.length - 3));
}

export function createSocatDumpParser(sink: (r: SctpReceipt) => void): (chunk: Buffer | string) => void {
  let text = '';
  let t: number | undefined;
  let bytes: number[] = [];
  const flush = () => {
    if (t === undefined) return;
    const start = bytes[0] !== undefined && bytes[0] >> 4 === 4 ? (bytes[0] & 0x0f) * 4 : 0;
    if (bytes.length < start + 13) return;
    sink({ t, sport: (bytes[start]! << 8) | bytes[start + 1]!, chunk: bytes[start + 12]! });
    t = undefined;
  };
  return (chunk) => {
    text += chunk.toString();
    let i = text.indexOf('\n');
    while (i >= 0) {
      const line = text.slice(0, i);
      text = text.slice(i + 1);
      const h = /^[<>] (\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+)\s+length=/.exec(line);
      if (h) {
        const [, y, mo, d, hh, mm, ss] = h.map(Number) as number[];
        t = new Date(y!, mo! - 1, d!, hh!, mm!, ss!, fractionMs(h[7]!)).getTime();
        bytes = [];
      } else if (t !== undefined && /^\s+[0-9a-f]{2}( |$)/.test(line)) {
        for (const b of line.trim().split(/\s+/))
          if (/^[0-9a-f]{2}$/.test(b)) bytes.push(Number.parseInt(b, 16));
        flush();
      }
      i = text.indexOf('\n');
    }
  };
}

export interface SctpPod extends Pod {
  readonly received: readonly SctpReceipt[];
  /** Resolves with the time of the first INIT from `sport` at or after `since`, or undefined. */
  waitForInit(sport: number, since: number, deadline: number): Promise<number | undefined>;
}

export interface SctpClient {
  stop(): Promise<void>;
}

function spawnIn(ns: string, argv: readonly string[], stdin: 'pipe' | 'ignore'): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: [stdin, 'pipe', 'pipe'] });
}

/** A pod whose raw SCTP receiver records every SCTP packet addressed to it. */
export async function addSctpPod(cc: ConntrackCluster, name: string): Promise<SctpPod> {
  const pod = await cc.addClientPod(name);
  const child = spawnIn(pod.ns, ['socat', '-u', '-x', 'IP4-RECV:132', 'OPEN:/dev/null'], 'ignore');
  const received: SctpReceipt[] = [];
  const waiters = new Set<() => void>();
  child.stderr?.on(
    'data',
    createSocatDumpParser((r) => {
      received.push(r);
      for (const w of waiters) w();
    }),
  );
  // The receiver dies with the pod's namespace; give socat a moment to open its socket.
  await sleep(200);
  if (child.exitCode !== null) throw new Error(`SCTP receiver in ${name} exited ${child.exitCode}`);
  const first = (sport: number, since: number) => received.find((r) => r.sport === sport && r.t >= since)?.t;
  return {
    ...pod,
    received,
    waitForInit(sport, since, deadline) {
      return new Promise((resolve) => {
        const check = () => {
          const t = first(sport, since);
          if (t !== undefined || Date.now() >= deadline) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(t !== undefined && t <= deadline ? t : undefined);
          }
        };
        const timer = setTimeout(check, Math.max(0, deadline - Date.now()));
        waiters.add(check);
        check();
      });
    },
  };
}

/**
 * Sends an SCTP INIT from `sport` to `dst:dport` every INTERVAL_MS (one association being
 * retried: one conntrack entry), for at most `maxSeconds`.
 */
export function startSctpInits(
  ns: string,
  dst: string,
  dport: number,
  opts: { sport?: number; maxSeconds?: number } = {},
): SctpClient {
  const packet = sctpInit(opts.sport ?? SPORT, dport, 0x1badb002);
  const escaped = [...packet].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
  const count = Math.ceil(((opts.maxSeconds ?? 60) * 1000) / INTERVAL_MS);
  // The pacing runs in its own shell, not in this (busy) test process: a stall of more than 3 s
  // would let the COOKIE_WAIT entry expire and hide the blackhole. One printf per interval:
  // socat reads each as one block and sends it as one datagram.
  const loop = `for i in $(seq ${count}); do printf '${escaped}'; sleep ${INTERVAL_MS / 1000}; done`;
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, 'bash', '-c', `${loop} | socat -u STDIN IP4-SENDTO:${dst}:132`],
    { stdio: 'ignore', detached: true },
  );
  return {
    async stop() {
      // The shell, its loop and socat form one process group.
      if (child.pid !== undefined && child.exitCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await Promise.race([exited, sleep(5000)]);
      }
    },
  };
}

/** Whether the iptables backend can match SCTP ports (the `sctp` match); probed in `ns`. */
export async function iptablesMatchesSctp(
  ns: string,
  backend: Backend,
): Promise<{ ok: boolean; why: string }> {
  const r = await run([
    'ip',
    'netns',
    'exec',
    ns,
    `iptables-${backend}`,
    '-t',
    'filter',
    '-C',
    'INPUT',
    '-p',
    'sctp',
    '-m',
    'sctp',
    '--dport',
    '1',
    '-j',
    'ACCEPT',
  ]);
  // 1: the rule does not exist (the match loaded); anything else: the match is missing.
  return r.code === 1 ? { ok: true, why: '' } : { ok: false, why: r.stderr.trim() };
}
