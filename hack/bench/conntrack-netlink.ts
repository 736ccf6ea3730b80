/**
 * Conntrack cleanup cost over a big table: one dump of every UDP entry, a filter that picks the
 * stale ones, and their deletion, timed inside a fresh network namespace.
 *
 *   node hack/bench/conntrack-netlink.ts [--entries N] [--stale S] [--cpu-profile FILE]  (as root)
 *
 * Prints one JSON line: { entries, stale, insertMs, coldDumpMs, filteredDumpMs, filteredCpuMs,
 * dumpMs, filterMs, deleteMs, totalMs, cpuMs, cpuSystemMs, netlinkRequests, dumpRequests,
 * deleteRequests, rssMB, conntrackMax, ok }. totalMs covers dump + filter + delete of a warm
 * process (what a sync pays); the insert and the first, cold dump are setup. filteredDumpMs
 * times one more dump, filtered on the dead endpoints (`dump(..., { replySources })`), which must
 * find exactly the stale entries. The namespace is always removed.
 *
 * `--cpu-profile FILE` writes a V8 CPU profile (.cpuprofile) of the measured part alone, without
 * the insert and cold dump that `node --cpu-prof` would mix in.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createConntrackClient } from '../../conntrack/netlink/client.ts';
import { IPS_SEEN_REPLY } from '../../conntrack/netlink/constants.ts';
import { flowKey } from '../../conntrack/netlink/flow.ts';
import type { NewConntrackFlow } from '../../conntrack/netlink/messages.ts';
import type { ConntrackFlow } from '../../conntrack/netlink/types.ts';

interface Args {
  entries: number;
  stale: number;
  inside: boolean;
  cpuProfile: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { entries: 100_000, stale: 16, inside: false, cpuProfile: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--entries') args.entries = Number(argv[++i]);
    else if (a === '--stale') args.stale = Number(argv[++i]);
    else if (a === '--inside') args.inside = true;
    else if (a === '--cpu-profile') args.cpuProfile = resolve(String(argv[++i]));
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(args.entries) || args.entries < args.stale || args.stale < 0) {
    throw new Error('--entries must be an integer >= --stale');
  }
  return args;
}

const DEAD_ENDPOINT_PREFIX = '10.244.255.';

/**
 * Entry i: client 10.x.y.z:port -> service 10.96.(i%256).(i%200) :53, DNATed to a live endpoint
 * 10.244.a.b:5353; the first `stale` entries point at dead endpoints in 10.244.255.0/24.
 */
function syntheticFlow(i: number, stale: number): NewConntrackFlow {
  const client = `10.${1 + ((i >> 16) & 0x3f)}.${(i >> 8) & 0xff}.${i & 0xff}`;
  const service = `10.96.${i % 256}.${i % 200}`;
  const endpoint =
    i < stale ? `${DEAD_ENDPOINT_PREFIX}${i % 256}` : `10.244.${(i >> 8) % 250}.${1 + (i % 250)}`;
  const port = 1024 + (i % 60000);
  return {
    family: 'IPv4',
    protocol: 'UDP',
    original: { src: client, dst: service, srcPort: port, dstPort: 53 },
    reply: { src: endpoint, dst: client, srcPort: 5353, dstPort: port },
    timeout: 600,
    status: IPS_SEEN_REPLY,
  };
}

function readSysctl(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Samples the main thread from now until `stop`, which writes the profile. */
async function startProfiler(): Promise<{ stop(file: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 100 µs: the measured part lasts under a second, the default 1 ms gives too few samples.
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

async function inside(args: Args): Promise<Record<string, unknown>> {
  // nf_conntrack_max is per network namespace on recent kernels; raise this namespace's own
  // limit if it is too low (never the machine's).
  const maxPath = '/proc/sys/net/netfilter/nf_conntrack_max';
  let conntrackMax = readSysctl(maxPath);
  let conntrackMaxNote: string | undefined;
  if (conntrackMax !== undefined && conntrackMax !== 0 && conntrackMax < args.entries + 1000) {
    try {
      writeFileSync(maxPath, String(args.entries + 1000));
      conntrackMax = readSysctl(maxPath);
    } catch (err) {
      conntrackMaxNote = `cannot raise nf_conntrack_max in the namespace: ${(err as Error).message}`;
    }
  }

  const client = createConntrackClient();
  try {
    const t0 = performance.now();
    const flows = Array.from({ length: args.entries }, (_, i) => syntheticFlow(i, args.stale));
    const inserted = await client.insert(flows);
    const t1 = performance.now();
    if (inserted.created !== args.entries) {
      throw new Error(
        `inserted ${inserted.created} of ${args.entries}: ${JSON.stringify(inserted.errors.slice(0, 3))}`,
      );
    }

    // A daemon dumps on every sync that needs cleanup, so its code is warm; the first dump of
    // a fresh process also pays JIT compilation and V8's pretenuring warm-up. Report both.
    const tc0 = performance.now();
    const cold = await client.dump('IPv4', 'UDP');
    const coldDumpMs = performance.now() - tc0;

    // The same question asked with a dump filter, as a cleaner that knows the gone endpoints can:
    // the entries are still all read, but only the matching ones become flows.
    const deadEndpoints = new Set<string>();
    for (let i = 0; i < args.stale; i++) deadEndpoints.add(syntheticFlow(i, args.stale).reply!.src);
    const fcpu0 = process.cpuUsage();
    const tf0 = performance.now();
    const filtered = await client.dump('IPv4', 'UDP', { replySources: deadEndpoints });
    const filteredDumpMs = performance.now() - tf0;
    const fcpu = process.cpuUsage(fcpu0);

    const profiler = args.cpuProfile ? await startProfiler() : undefined;
    const before = client.stats();
    const cpu0 = process.cpuUsage();
    const t2 = performance.now();
    const dumped = await client.dump('IPv4', 'UDP');
    const t3 = performance.now();
    const stale = dumped.filter((f) => f.reply.src.startsWith(DEAD_ENDPOINT_PREFIX));
    const t4 = performance.now();
    const deleted = await client.delete(stale);
    const t5 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const after = client.stats();
    if (profiler && args.cpuProfile) await profiler.stop(args.cpuProfile);

    const remaining = await client.dump('IPv4', 'UDP');
    const keys = (flows: readonly ConntrackFlow[]) => flows.map(flowKey).sort().join(',');
    const ok =
      keys(filtered) === keys(stale) &&
      cold.length === args.entries &&
      dumped.length === args.entries &&
      stale.length === args.stale &&
      deleted.deleted === args.stale &&
      remaining.length === args.entries - args.stale;
    const round = (n: number) => Math.round(n * 10) / 10;
    return {
      entries: dumped.length,
      stale: stale.length,
      insertMs: round(t1 - t0),
      coldDumpMs: round(coldDumpMs),
      filteredDumpMs: round(filteredDumpMs),
      filteredCpuMs: round((fcpu.user + fcpu.system) / 1000),
      dumpMs: round(t3 - t2),
      filterMs: round(t4 - t3),
      deleteMs: round(t5 - t4),
      totalMs: round(t5 - t2),
      // CPU time of dump + filter + delete (user + system, this process): wall time on a busy
      // machine says more about the other processes than about this code.
      cpuMs: round((cpu.user + cpu.system) / 1000),
      // System time is mostly the kernel walking the table and copying the dump to us.
      cpuSystemMs: round(cpu.system / 1000),
      loadAverage: round(loadavg()[0]!),
      netlinkRequests:
        after.dumpRequests + after.deleteRequests - before.dumpRequests - before.deleteRequests,
      dumpRequests: after.dumpRequests - before.dumpRequests,
      deleteRequests: after.deleteRequests - before.deleteRequests,
      rssMB: round(process.resourceUsage().maxRSS / 1024),
      conntrackMax,
      ...(conntrackMaxNote ? { conntrackMaxNote } : {}),
      ok,
    };
  } finally {
    client.close();
  }
}

function outside(args: Args): number {
  if (process.getuid?.() !== 0) {
    process.stderr.write('conntrack-netlink bench: needs root (network namespaces)\n');
    return 2;
  }
  const ns = `kpt-bench-ct-${randomBytes(3).toString('hex')}`;
  const cleanup = () => spawnSync('ip', ['netns', 'del', ns]);
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (add.status !== 0) {
    process.stderr.write(`ip netns add failed: ${add.stderr}`);
    return 1;
  }
  try {
    const self = fileURLToPath(import.meta.url);
    const child = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        self,
        '--inside',
        '--entries',
        String(args.entries),
        '--stale',
        String(args.stale),
        ...(args.cpuProfile ? ['--cpu-profile', args.cpuProfile] : []),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000 },
    );
    process.stdout.write(child.stdout);
    return child.status ?? 1;
  } finally {
    cleanup();
  }
}

const args = parseArgs(process.argv.slice(2));
if (args.inside) {
  inside(args).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      if (!r.ok) process.exitCode = 1;
    },
    (err: unknown) => {
      process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
} else {
  process.exitCode = outside(args);
}
