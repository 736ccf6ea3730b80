/**
 * Network programming latency with the real daemon: from an EndpointSlice update at the
 * development API server to the new DNAT rule taking traffic in the node's kernel.
 *
 * The node is the e2e harness's (test/support/e2e.ts: namespaces, the API server in this
 * process, reached from the node namespace through a relay) with two pods serving their names on
 * TARGET_PORT; the daemon runs from source (`node cmd/kube-proxy-ts/main.ts`) inside the node
 * namespace with the e2e flags. Next to the synthetic cluster there is one probe Service whose
 * only endpoint moves between the two pods, one change at a time; after each update a prober in
 * the client namespace (prober.ts) opens fresh connections to the probe's cluster IP until the
 * new pod answers. A new connection is NATed by the rules the kernel holds at that moment, so
 * this is exactly "the rule is in", without reading the table (which costs seconds with legacy
 * iptables at 10,000 Services and holds the xtables lock meanwhile, delaying the very restore
 * being measured). The resolution is one connection plus a 5 ms pause.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { endpointChainName } from '../../proxier/chains.ts';
import { type Backend, type E2ECluster, REPO, startE2ECluster } from '../../test/support/e2e.ts';
import { inNetns } from '../../test/support/netns.ts';
import { median, percentile, round1 } from './result.ts';
import {
  BENCH_NAMESPACE,
  clusterIP,
  createSyntheticCluster,
  endpointIP,
  PORT_NAME,
  SERVICE_PORT,
  serviceName,
  serviceObject,
  sliceWithAddresses,
  TARGET_PORT,
} from './synthetic.ts';

const DAEMON = join(REPO, 'cmd/kube-proxy-ts/main.ts');
const PROBER = join(REPO, 'hack/bench/prober.ts');

export interface LatencyOptions {
  readonly services: number;
  readonly endpointsPerService: number;
  readonly backend: Backend;
  readonly changes: number;
  readonly minSyncPeriodMs: number;
  /** V8 flags for the daemon's node (the launcher's). */
  readonly nodeFlags: readonly string[];
  /** Longest wait for the first full sync. */
  readonly initialSyncTimeoutMs: number;
  /** Longest wait for one change. */
  readonly changeTimeoutMs: number;
  readonly progress?: (step: string) => void;
  /** Registers teardown with the caller, so that SIGINT can run it while this is in flight. */
  readonly onTeardown: (teardown: () => Promise<void>) => () => void;
}

export interface LatencyResult {
  readonly latencyChanges: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  /** Median duration of the probe connection that saw the new pod (the measurement's grain). */
  readonly latencyPollMs: number;
  readonly minSyncPeriodMs: number;
  readonly initialSyncMs: number;
  readonly daemonRssMB: number | null;
  /**
   * How the daemon's partial syncs render, read from proxier.ts when the run started: 'incremental'
   * once the sync loop uses the incremental renderer, else 'rewrite' (upstream's KEP-3453 way).
   */
  readonly daemonPartialRender: 'incremental' | 'rewrite';
}

export function daemonPartialRender(proxierSource: string): 'incremental' | 'rewrite' {
  return /createIncrementalRenderer\s*\(/.test(proxierSource) ? 'incremental' : 'rewrite';
}

/** The KUBE-SEP chain of endpoint number `n` of Service `i`. */
export function sepChainOf(i: number, n: number): string {
  return endpointChainName(
    { namespace: BENCH_NAMESPACE, name: serviceName(i), port: PORT_NAME, protocol: 'TCP' },
    'TCP',
    `${endpointIP(n)}:${TARGET_PORT}`,
  );
}

/** Peak resident set of a process (VmHWM), or null when it is gone. */
function peakRssMB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    // `ip netns exec` execs the command, so the pid is the daemon's node process.
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round1(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

interface ProbeAnswer {
  readonly ok: boolean;
  readonly tries?: number;
  readonly connectMs?: number;
  readonly last?: string;
}

/** A prober process: `ask` sends one command and resolves with its answer line. */
function startProber(clientNs: string): { child: ChildProcess; ask(cmd: string): Promise<ProbeAnswer> } {
  const child = spawn('ip', inNetns(clientNs, [process.execPath, PROBER]).slice(1), {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: ((a: ProbeAnswer) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const w = waiting.shift();
    try {
      w?.(JSON.parse(line) as ProbeAnswer);
    } catch {
      w?.({ ok: false, last: line });
    }
  });
  child.once('exit', () => {
    for (const w of waiting.splice(0)) w({ ok: false, last: 'prober exited' });
  });
  return {
    child,
    ask: (cmd) =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin!.write(`${cmd}\n`);
      }),
  };
}

export async function measureLatency(o: LatencyOptions): Promise<LatencyResult> {
  const progress = o.progress ?? (() => {});
  let cluster: E2ECluster | undefined;
  let daemon: ChildProcess | undefined;
  let prober: ChildProcess | undefined;
  let logTail: string[] = [];
  const teardown = async () => {
    for (const c of [daemon, prober]) if (c && c.exitCode === null) c.kill('SIGKILL');
    await cluster?.destroy();
    cluster = undefined;
  };
  const unregister = o.onTeardown(teardown);
  try {
    progress('latency: node, pods and API server');
    cluster = await startE2ECluster({ pods: 2, backend: o.backend });
    const c = cluster;
    const pods = c.topo.pods.slice(0, 2);
    for (const pod of pods) await c.serve(pod, TARGET_PORT);
    const model = createSyntheticCluster(o.services, o.endpointsPerService);
    for (const i of model.serviceIndexes()) {
      c.api.store.create('services', serviceObject(i));
      c.api.store.create('endpointslices', model.sliceObject(i));
    }
    // The probe Service comes after the cluster's own: index `services`.
    const probe = o.services;
    const probeSlice = (k: number) => sliceWithAddresses(probe, [{ ip: pods[k % 2]!.ip, nodeName: 'node1' }]);
    c.api.store.create('services', serviceObject(probe));
    c.api.store.create('endpointslices', probeSlice(0));
    const target = `${clusterIP(probe)}:${SERVICE_PORT}`;

    const p = startProber(c.topo.client);
    prober = p.child;
    const waitFor = async (k: number, timeoutMs: number): Promise<ProbeAnswer> => {
      const a = await p.ask(`${pods[k % 2]!.name} ${target} ${timeoutMs}`);
      if (!a.ok) {
        throw new Error(
          `probe for ${pods[k % 2]!.name} failed (last answer ${a.last}); daemon ${daemon?.exitCode === null ? 'running' : `exited ${daemon?.exitCode}`}:\n${logTail.join('')}`,
        );
      }
      return a;
    };

    progress('latency: daemon start and first full sync');
    const args = [
      process.execPath,
      ...o.nodeFlags,
      DAEMON,
      `--kubeconfig=${c.kubeconfig}`,
      '--hostname-override=node1',
      '--cluster-cidr=10.244.0.0/16',
      `--iptables-backend=${o.backend}`,
      '--healthz-bind-address=127.0.0.1:10256',
      '--metrics-bind-address=127.0.0.1:10249',
      `--iptables-min-sync-period=${o.minSyncPeriodMs}ms`,
      // nf_conntrack_max is machine-wide: the daemon must not ask for it.
      '--conntrack-max-per-core=0',
    ];
    const renderMode = daemonPartialRender(readFileSync(join(REPO, 'proxier/proxier.ts'), 'utf8'));
    const started = performance.now();
    daemon = spawn('ip', inNetns(c.topo.node, args).slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      logTail.push(d.toString());
      if (logTail.length > 40) logTail = logTail.slice(-20);
    };
    daemon.stdout?.on('data', keep);
    daemon.stderr?.on('data', keep);
    await waitFor(0, o.initialSyncTimeoutMs);
    const initialSyncMs = performance.now() - started;

    const latencies: number[] = [];
    const grain: number[] = [];
    for (let k = 1; k <= o.changes; k++) {
      const t0 = performance.now();
      c.api.store.update('endpointslices', probeSlice(k));
      const a = await waitFor(k, o.changeTimeoutMs);
      latencies.push(performance.now() - t0);
      if (a.connectMs !== undefined) grain.push(a.connectMs);
      if (k % 20 === 0) progress(`latency: ${k}/${o.changes} changes`);
    }
    return {
      latencyChanges: latencies.length,
      latencyP50Ms: round1(percentile(latencies, 50)),
      latencyP99Ms: round1(percentile(latencies, 99)),
      latencyMaxMs: round1(Math.max(...latencies)),
      latencyPollMs: round1(median(grain)),
      minSyncPeriodMs: o.minSyncPeriodMs,
      initialSyncMs: round1(initialSyncMs),
      daemonRssMB: peakRssMB(daemon.pid),
      daemonPartialRender: renderMode,
    };
  } finally {
    await teardown();
    unregister();
  }
}
