/**
 * One size on one backend (sync.ts), in a process of its own so that its peak RSS is that size's
 * alone. main.ts starts it with the namespace it made and owns:
 *
 *   node --expose-gc hack/bench/sync-child.ts --services N --eps M --backend legacy|nft \
 *     --ns NS --reps R --tracker-changes K
 *
 * Prints one JSON line (SyncBenchResult); progress goes to stderr. The iptables commands run
 * inside NS through `ip netns exec`; this process itself stays where it was started.
 */
import { parseArgs } from 'node:util';
import { createIptablesRunner } from '../../pkg/iptables/runner.ts';
import type { Backend } from '../../pkg/iptables/types.ts';
import { createCpuTimingExec } from './cpu-exec.ts';
import { measureSync } from './sync.ts';

function positiveInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      services: { type: 'string' },
      eps: { type: 'string' },
      backend: { type: 'string' },
      ns: { type: 'string' },
      reps: { type: 'string', default: '3' },
      'tracker-changes': { type: 'string', default: '1000' },
    },
    strict: true,
  });
  const backend = values.backend;
  if (backend !== 'legacy' && backend !== 'nft') throw new Error('--backend must be legacy or nft');
  if (!values.ns) throw new Error('--ns is required');
  const b: Backend = backend;
  const timing = createCpuTimingExec();
  const iptables = createIptablesRunner({
    family: 'IPv4',
    backend: b,
    execPrefix: ['ip', 'netns', 'exec', values.ns],
    exec: timing.exec,
  });
  const started = performance.now();
  const result = await measureSync({
    lastExecCpuMs: timing.lastCpuMs,
    services: positiveInt('services', values.services),
    endpointsPerService: positiveInt('eps', values.eps),
    iptables,
    reps: Math.max(1, positiveInt('reps', values.reps)),
    trackerChanges: positiveInt('tracker-changes', values['tracker-changes']),
    progress: (step) =>
      process.stderr.write(
        `bench: ${values.services}x${values.eps} ${backend}: ${step} (${Math.round(performance.now() - started)} ms)\n`,
      ),
  });
  timing.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exitCode = 1;
});
