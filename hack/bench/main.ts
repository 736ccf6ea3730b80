/**
 * `make bench`: sync costs, network programming latency, conntrack cleanup and memory at scale.
 *
 *   node hack/bench/main.ts [SIZE...] [--backends legacy,nft] [--reps N] [--latency-sizes LIST]
 *                           [--latency-changes N] [--min-sync-period-ms N]
 *                           [--conntrack-entries N] [--no-conntrack] [--skip-sync] [--quick]
 *                           [--child-node-options "FLAGS"]
 *                                                                                  (as root)
 *
 * SIZE is `services` or `servicesxendpoints` (default 100x5 1000x5 5000x5 10000x5 10000x10).
 * Prints one JSON object per size and backend on stdout, one per line (result.ts has the keys);
 * a markdown table, the targets of issue 7 and the machine go to stderr at the end.
 *
 * - Render and restore costs (sync.ts) run in a child process per size and backend, against a
 *   fresh network namespace made here; the child's peak RSS is that size's alone.
 * - Latency (latency.ts) runs the real daemon against the development API server at the sizes
 *   of --latency-sizes only (default 1000x5 and 10000x5: each change waits for a restore, and at
 *   10,000 Services a legacy restore takes seconds); other lines carry null and say so.
 * - Conntrack cleanup (conntrack-netlink.ts, 100,000 entries) does not depend on the cluster
 *   size: it runs once per run and its numbers are attached to every line.
 * - Node runs with the daemon's V8 flags (NODE_FLAGS in hack/kube-proxy-ts.sh) unless
 *   --child-node-options gives others (`--child-node-options=` for V8's defaults).
 * Every namespace is made for the run and removed at the end, on failure and on SIGINT; nothing
 * touches the machine's own namespace. Every step has a time limit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO } from '../../test/support/e2e.ts';
import { createNetns, deleteNetns, run } from '../../test/support/netns.ts';
import { measureLatency } from './latency.ts';
import {
  type BenchLine,
  checkTargets,
  type FieldValue,
  formatBenchLine,
  markdownTable,
  markdownTargets,
  round1,
} from './result.ts';

export interface Size {
  readonly services: number;
  readonly endpointsPerService: number;
}

export type BenchBackend = 'legacy' | 'nft';

export interface BenchArgs {
  readonly sizes: readonly Size[];
  readonly backends: readonly BenchBackend[];
  readonly reps: number;
  readonly trackerChanges: number;
  readonly latencySizes: readonly Size[];
  readonly latencyChanges: number;
  readonly minSyncPeriodMs: number;
  /** 0: no conntrack run. */
  readonly conntrackEntries: number;
  readonly conntrackStale: number;
  readonly quick: boolean;
  /** Latency (and conntrack) only: no render/restore measurements. */
  readonly skipSync: boolean;
  /**
   * Extra node flags for the process that renders (e.g. `--max-semi-space-size=4`): V8's heap
   * sizing decides much of the resident set of a process that makes as much garbage as a full
   * sync does, so rssPeakMB is reported with the flags used.
   */
  readonly childNodeOptions: readonly string[];
}

export const DEFAULT_SIZES: readonly Size[] = [
  { services: 100, endpointsPerService: 5 },
  { services: 1000, endpointsPerService: 5 },
  { services: 5000, endpointsPerService: 5 },
  { services: 10000, endpointsPerService: 5 },
  { services: 10000, endpointsPerService: 10 },
];

export class BenchArgsError extends Error {
  override readonly name = 'BenchArgsError';
  readonly code = 'InvalidArgument';
}

/** `1000` (5 endpoints each) or `1000x10`. */
export function parseSize(text: string): Size {
  const m = /^(\d+)(?:x(\d+))?$/.exec(text.trim());
  const services = m ? Number(m[1]) : Number.NaN;
  const endpointsPerService = m?.[2] === undefined ? 5 : Number(m[2]);
  if (!m || services < 1 || endpointsPerService < 1) {
    throw new BenchArgsError(`size "${text}": want SERVICES or SERVICESxENDPOINTS, both positive`);
  }
  return { services, endpointsPerService };
}

function count(name: string, text: string, min = 0): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new BenchArgsError(`--${name}: want an integer >= ${min}`);
  return n;
}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      backends: { type: 'string' },
      reps: { type: 'string' },
      'tracker-changes': { type: 'string' },
      'latency-sizes': { type: 'string' },
      'latency-changes': { type: 'string' },
      'min-sync-period-ms': { type: 'string' },
      'conntrack-entries': { type: 'string' },
      'no-conntrack': { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      'skip-sync': { type: 'boolean', default: false },
      'child-node-options': { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const sizes =
    positionals.length > 0 ? positionals.map(parseSize) : quick ? [parseSize('60x3')] : DEFAULT_SIZES;
  const backends = (values.backends ?? 'legacy,nft').split(',').map((b) => b.trim());
  for (const b of backends) {
    if (b !== 'legacy' && b !== 'nft') throw new BenchArgsError(`--backends: unknown backend "${b}"`);
  }
  const latencyText =
    values['latency-sizes'] ??
    (quick ? sizes.map((s) => `${s.services}x${s.endpointsPerService}`).join(',') : '1000x5,10000x5');
  const latencySizes =
    latencyText === 'none' || latencyText === '' ? [] : latencyText.split(',').map(parseSize);
  const reps = count('reps', values.reps ?? (quick ? '1' : '3'), 1);
  const smallest = Math.min(...sizes.map((s) => s.services));
  // Each repetition changes three Services (endpoint, upstream style, delete) never changed before.
  if (3 * reps > smallest)
    throw new BenchArgsError(`--reps ${reps} needs at least ${3 * reps} services per size`);
  const conntrackEntries = values['no-conntrack']
    ? 0
    : count('conntrack-entries', values['conntrack-entries'] ?? (quick ? '2000' : '100000'), 16);
  return {
    sizes,
    backends: backends as BenchBackend[],
    reps,
    trackerChanges: count('tracker-changes', values['tracker-changes'] ?? (quick ? '100' : '1000')),
    latencySizes,
    latencyChanges: count('latency-changes', values['latency-changes'] ?? (quick ? '10' : '100'), 1),
    minSyncPeriodMs: count('min-sync-period-ms', values['min-sync-period-ms'] ?? '100'),
    conntrackEntries,
    conntrackStale: 16,
    quick,
    skipSync: values['skip-sync'] === true,
    childNodeOptions: (values['child-node-options'] ?? daemonNodeFlags().join(' '))
      .split(' ')
      .filter(Boolean),
  };
}

export function sameSize(a: Size, b: Size): boolean {
  return a.services === b.services && a.endpointsPerService === b.endpointsPerService;
}

// ---- teardown: every resource registers its removal; SIGINT runs them all ----

const teardowns = new Set<() => Promise<void>>();

function onTeardown(t: () => Promise<void>): () => void {
  teardowns.add(t);
  return () => teardowns.delete(t);
}

async function runTeardowns(): Promise<void> {
  const all = [...teardowns].reverse();
  teardowns.clear();
  for (const t of all) {
    await Promise.race([t().catch(() => {}), new Promise((r) => setTimeout(r, 20_000))]);
  }
}

let interrupted = false;
function installSignalHandlers(): void {
  const handler = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench: ${sig}, removing namespaces\n`);
    void runTeardowns().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

// ---- children ----

interface ChildOutcome {
  readonly code: number | null;
  readonly stdout: string;
}

/** Runs a node script; kills it with `killSignal` after `timeoutMs`. stderr passes through. */
function runNode(
  args: readonly string[],
  timeoutMs: number,
  killSignal: NodeJS.Signals,
): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const unregister = onTeardown(async () => {
      if (child.exitCode === null) child.kill(killSignal);
    });
    const timer = setTimeout(() => {
      process.stderr.write(`bench: ${args.join(' ')} timed out after ${timeoutMs} ms\n`);
      child.kill(killSignal);
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      unregister();
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      unregister();
      resolve({ code, stdout });
    });
  });
}

/** The last line of a child's stdout, as a JSON object. */
export function lastJsonLine(stdout: string): Record<string, FieldValue> | undefined {
  const lines = stdout.trim().split('\n').filter(Boolean);
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(last);
    return v !== null && typeof v === 'object' && !Array.isArray(v)
      ? (v as Record<string, FieldValue>)
      : undefined;
  } catch {
    return undefined;
  }
}

const HERE = join(REPO, 'hack/bench');

async function conntrackRun(args: BenchArgs): Promise<BenchLine> {
  const r = await runNode(
    [
      join(HERE, 'conntrack-netlink.ts'),
      '--entries',
      String(args.conntrackEntries),
      '--stale',
      String(args.conntrackStale),
    ],
    10 * 60_000,
    // conntrack-netlink.ts removes its namespace on SIGINT.
    'SIGINT',
  );
  const j = lastJsonLine(r.stdout);
  if (r.code !== 0 || j === undefined) {
    return { conntrackNote: `conntrack run failed (exit ${r.code})` };
  }
  return {
    conntrackEntries: j.entries ?? null,
    conntrackStale: j.stale ?? null,
    conntrackCleanupMs: j.totalMs ?? null,
    conntrackCpuMs: j.cpuMs ?? null,
    conntrackNetlinkRequests: j.netlinkRequests ?? null,
    conntrackDumpRequests: j.dumpRequests ?? null,
    conntrackDeleteRequests: j.deleteRequests ?? null,
    conntrackNote: `measured once per run (independent of the cluster size) in its own namespace: dump + filter + delete of ${j.stale} stale among ${j.entries} UDP entries, warm process`,
  };
}

/**
 * The V8 flags bin/kube-proxy-ts starts the daemon with (its NODE_FLAGS line): what the render
 * children and the latency daemon run with unless --child-node-options says otherwise, so that
 * memory is measured as shipped.
 */
export function daemonNodeFlags(): string[] {
  const launcher = readFileSync(join(REPO, 'hack/kube-proxy-ts.sh'), 'utf8');
  const m = /^NODE_FLAGS="([^"]*)"$/m.exec(launcher);
  if (m === null) throw new Error('hack/kube-proxy-ts.sh has no NODE_FLAGS="..." line');
  return (m[1] as string).split(' ').filter(Boolean);
}

async function syncRun(size: Size, backend: BenchBackend, args: BenchArgs): Promise<BenchLine> {
  const ns = await createNetns(`bench-${backend}`);
  const unregister = onTeardown(() => deleteNetns(ns));
  try {
    const r = await runNode(
      [
        '--expose-gc',
        ...args.childNodeOptions,
        join(HERE, 'sync-child.ts'),
        '--services',
        String(size.services),
        '--eps',
        String(size.endpointsPerService),
        '--backend',
        backend,
        '--ns',
        ns,
        '--reps',
        String(args.reps),
        '--tracker-changes',
        String(args.trackerChanges),
      ],
      // The biggest size on nft, on a busy machine, takes minutes.
      60 * 60_000,
      'SIGKILL',
    );
    const j = lastJsonLine(r.stdout);
    if (r.code !== 0 || j === undefined) return { ok: false, problems: [`sync run exited ${r.code}`] };
    return j;
  } finally {
    await deleteNetns(ns);
    unregister();
  }
}

function machine(): Record<string, string | number> {
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux: the bench would have failed earlier
  }
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMB: Math.round(totalmem() / 1024 / 1024),
    freeMemoryMB: Math.round(freemem() / 1024 / 1024),
    kernel,
    node: process.version,
  };
}

async function iptablesVersions(): Promise<string> {
  const out: string[] = [];
  for (const b of ['iptables-legacy', 'iptables-nft']) {
    const r = await run([b, '--version']).catch(() => undefined);
    out.push(r?.stdout.trim() ?? `${b}: not found`);
  }
  return out.join('; ');
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (it makes network namespaces)\n');
    return 2;
  }
  installSignalHandlers();
  const lines: BenchLine[] = [];
  try {
    let conntrack: BenchLine = { conntrackNote: 'not measured (--no-conntrack)' };
    if (args.conntrackEntries > 0) {
      process.stderr.write(`bench: conntrack cleanup over ${args.conntrackEntries} entries\n`);
      conntrack = await conntrackRun(args);
    }
    for (const size of args.sizes) {
      for (const backend of args.backends) {
        if (interrupted) return 130;
        const started = performance.now();
        const loadAverageStart = round1(loadavg()[0]!);
        process.stderr.write(`bench: ${size.services}x${size.endpointsPerService} ${backend}: sync costs\n`);
        const wantLatency = args.latencySizes.some((s) => sameSize(s, size));
        if (args.skipSync && !wantLatency) continue;
        const sync: BenchLine = args.skipSync ? { ok: true } : await syncRun(size, backend, args);
        let latency: BenchLine = {
          latencyNote: `not measured at this size (latency runs at ${args.latencySizes.map((s) => `${s.services}x${s.endpointsPerService}`).join(', ') || 'no size'})`,
        };
        if (wantLatency) {
          try {
            const l = await measureLatency({
              services: size.services,
              endpointsPerService: size.endpointsPerService,
              backend,
              changes: args.latencyChanges,
              minSyncPeriodMs: args.minSyncPeriodMs,
              nodeFlags: args.childNodeOptions,
              initialSyncTimeoutMs: 20 * 60_000,
              changeTimeoutMs: 60_000,
              progress: (s) =>
                process.stderr.write(
                  `bench: ${size.services}x${size.endpointsPerService} ${backend}: ${s}\n`,
                ),
              onTeardown,
            });
            latency = {
              ...l,
              latencyNote: `real daemon (from source), ${l.latencyChanges} sequential updates of a probe Service's EndpointSlice (its one endpoint moves between two pods) in a cluster of this size, each timed until a new TCP connection to the cluster IP reaches the new pod; first full sync took ${l.initialSyncMs} ms; daemon peak RSS ${l.daemonRssMB} MB; daemon partial syncs: ${l.daemonPartialRender}`,
            };
          } catch (e) {
            latency = { latencyNote: `latency run failed: ${(e as Error).message.split('\n')[0]}` };
          }
        }
        const problems = Array.isArray(sync.problems) ? [...sync.problems] : [];
        const line: BenchLine = {
          services: size.services,
          endpointsPerService: size.endpointsPerService,
          backend,
          ...sync,
          ...latency,
          ...conntrack,
          reps: args.reps,
          ...(args.childNodeOptions.length > 0 ? { childNodeOptions: args.childNodeOptions.join(' ') } : {}),
          loadAverageStart,
          loadAverageEnd: round1(loadavg()[0]!),
          wallMs: Math.round(performance.now() - started),
          ok: sync.ok === true && !String(latency.latencyNote ?? '').startsWith('latency run failed'),
          problems,
        };
        lines.push(line);
        process.stdout.write(`${formatBenchLine(line)}\n`);
      }
    }
  } finally {
    await runTeardowns();
  }
  const m = { ...machine(), iptables: await iptablesVersions() };
  process.stderr.write(
    [
      '',
      `Machine: ${JSON.stringify(m)}`,
      '',
      markdownTable(lines),
      '',
      markdownTargets(checkTargets(lines)),
      '',
    ].join('\n'),
  );
  return lines.every((l) => l.ok === true) ? 0 : 1;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
}
