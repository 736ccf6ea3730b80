/**
 * An Exec (pkg/iptables/exec.ts) that also measures the CPU time (user + system) of each command
 * through GNU time. On a busy machine the wall time of a restore says as much about the other
 * processes as about the restore; its CPU time does not. `ip netns exec` execs the command in
 * place, so the measured process is the iptables binary itself. GNU time reports hundredths of a
 * second.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Exec, spawnExec } from '../../pkg/iptables/exec.ts';

export const GNU_TIME = '/usr/bin/time';

export interface CpuTimingExec {
  readonly exec: Exec;
  /** CPU milliseconds of the last command that finished, undefined when unknown. */
  lastCpuMs(): number | undefined;
  /** Removes the scratch directory. */
  close(): void;
}

/** `%U %S` as GNU time writes it (seconds, two decimals) → milliseconds. */
export function parseGnuTime(text: string): number | undefined {
  const lines = text.trim().split('\n');
  const m = /^(\d+(?:\.\d+)?) (\d+(?:\.\d+)?)$/.exec(lines[lines.length - 1] ?? '');
  if (!m) return undefined;
  return Math.round((Number(m[1]) + Number(m[2])) * 1000);
}

/**
 * The runner gives every iptables call 5 minutes, as upstream does for `-C`. A full restore of
 * 50,000+ chains with iptables-nft 1.8.9 takes longer on a busy 2-core machine (its cost grows
 * faster than linearly with the number of chains), so the benchmark allows more, to report the
 * number instead of a kill. The daemon keeps the 5 minutes.
 */
export const BENCH_CALL_TIMEOUT_MS = 60 * 60_000;

/** Without GNU time (Debian package `time`) commands run as they are and CPU times are unknown. */
export function createCpuTimingExec(gnuTime = GNU_TIME): CpuTimingExec {
  if (!existsSync(gnuTime)) {
    return {
      exec: (argv, opts) =>
        spawnExec(argv, { ...opts, timeoutMs: Math.max(opts?.timeoutMs ?? 0, BENCH_CALL_TIMEOUT_MS) }),
      lastCpuMs: () => undefined,
      close: () => {},
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'kpt-bench-time-'));
  const out = join(dir, 'time');
  let last: number | undefined;
  return {
    async exec(argv, opts) {
      last = undefined;
      const r = await spawnExec([gnuTime, '-o', out, '-f', '%U %S', ...argv], {
        ...opts,
        timeoutMs: Math.max(opts?.timeoutMs ?? 0, BENCH_CALL_TIMEOUT_MS),
      });
      try {
        last = parseGnuTime(readFileSync(out, 'utf8'));
      } catch {
        last = undefined;
      }
      return r;
    },
    lastCpuMs: () => last,
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
