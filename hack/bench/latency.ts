/**
 * Network programming latency with the real daemon: from an EndpointSlice update at the
 * development API server to the new endpoint's KUBE-SEP chain being in the node's kernel.
 *
 * The node is the e2e harness's (test/support/e2e.ts: namespaces, the API server in this
 * process, reached from the node namespace through a relay); the daemon runs from source
 * (`node cmd/kube-proxy-ts/main.ts`) inside the node namespace with the e2e flags. Changes are
 * made one at a time: each replaces one endpoint of a different Service by a new address, and
 * `iptables -t nat -S KUBE-SEP-...` is polled in the node namespace until that chain exists. The
 * chain and its DNAT rule come in the same restore transaction as the KUBE-SVC jump to it, so
 * the chain being listed means the rule is live. A poll costs a process or two; its median
 * duration is reported (latencyPollMs) since it bounds the measurement's resolution.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { endpointChainName } from '../../proxier/chains.ts';
import { type Backend, type E2ECluster, REPO, startE2ECluster } from '../../test/support/e2e.ts';
import { inNetns, run } from '../../test/support/netns.ts';
import { median, percentile, round1 } from './result.ts';
import {
  BENCH_NAMESPACE,
  createSyntheticCluster,
  endpointIP,
  PORT_NAME,
  serviceName,
  serviceObject,
  TARGET_PORT,
} from './synthetic.ts';

const DAEMON = join(REPO, 'cmd/kube-proxy-ts/main.ts');

export interface LatencyOptions {
  readonly services: number;
  readonly endpointsPerService: number;
  readonly backend: Backend;
  readonly changes: number;
  readonly minSyncPeriodMs: number;
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The KUBE-SEP chain of endpoint number `n` of Service `i` (what the daemon will create). */
export function sepChainOf(i: number, n: number): string {
  return endpointChainName(
    { namespace: BENCH_NAMESPACE, name: serviceName(i), port: PORT_NAME, protocol: 'TCP' },
    'TCP',
    `${endpointIP(n)}:${TARGET_PORT}`,
  );
}

/** Resident set of a process, from /proc (the daemon's, read at the end). */
async function rssOfMB(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  // `ip netns exec` execs the command, so the pid is the daemon's node process.
  const r = await run(['cat', `/proc/${pid}/status`]);
  const m = /VmHWM:\s+(\d+) kB/.exec(r.stdout);
  return m ? round1(Number(m[1]) / 1024) : null;
}

export async function measureLatency(o: LatencyOptions): Promise<LatencyResult> {
  const progress = o.progress ?? (() => {});
  let cluster: E2ECluster | undefined;
  let daemon: ChildProcess | undefined;
  let logTail: string[] = [];
  const teardown = async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    await cluster?.destroy();
    cluster = undefined;
  };
  const unregister = o.onTeardown(teardown);
  try {
    progress('latency: node and API server');
    cluster = await startE2ECluster({ pods: 0, backend: o.backend });
    const c = cluster;
    const model = createSyntheticCluster(o.services, o.endpointsPerService);
    for (const i of model.serviceIndexes()) {
      c.api.store.create('services', serviceObject(i));
      c.api.store.create('endpointslices', model.sliceObject(i));
    }

    const polls: number[] = [];
    const chainExists = async (chain: string): Promise<boolean> => {
      const t0 = performance.now();
      const r = await run(
        inNetns(c.topo.node, [`iptables-${o.backend}`, '-t', 'nat', '-S', chain]),
        undefined,
        60_000,
      );
      polls.push(performance.now() - t0);
      return r.code === 0;
    };
    const waitForChain = async (chain: string, timeoutMs: number): Promise<number> => {
      const t0 = performance.now();
      while (performance.now() - t0 < timeoutMs) {
        if (await chainExists(chain)) return performance.now() - t0;
        if (daemon?.exitCode !== null) {
          throw new Error(`daemon exited ${daemon?.exitCode}:\n${logTail.join('')}`);
        }
        await sleep(10);
      }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${chain}:\n${logTail.join('')}`);
    };

    progress('latency: daemon start and first full sync');
    const args = [
      process.execPath,
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
    const first = model.endpointsOf(0)[0]!;
    await waitForChain(sepChainOf(0, first), o.initialSyncTimeoutMs);
    const initialSyncMs = performance.now() - started;
    polls.length = 0;

    const latencies: number[] = [];
    const indexes = model.serviceIndexes();
    for (let k = 0; k < o.changes; k++) {
      const i = indexes[(k * 7919 + 1) % indexes.length]!;
      const n = model.replaceEndpoint(i, k % o.endpointsPerService);
      const chain = sepChainOf(i, n);
      const t0 = performance.now();
      c.api.store.update('endpointslices', model.sliceObject(i));
      await waitForChain(chain, o.changeTimeoutMs);
      latencies.push(performance.now() - t0);
      if ((k + 1) % 20 === 0) progress(`latency: ${k + 1}/${o.changes} changes`);
    }
    const daemonRssMB = await rssOfMB(daemon.pid);
    return {
      latencyChanges: latencies.length,
      latencyP50Ms: round1(percentile(latencies, 50)),
      latencyP99Ms: round1(percentile(latencies, 99)),
      latencyMaxMs: round1(Math.max(...latencies)),
      latencyPollMs: round1(median(polls)),
      minSyncPeriodMs: o.minSyncPeriodMs,
      initialSyncMs: round1(initialSyncMs),
      daemonRssMB,
      daemonPartialRender: renderMode,
    };
  } finally {
    await teardown();
    unregister();
  }
}
