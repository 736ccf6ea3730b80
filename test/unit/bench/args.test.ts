import { describe, expect, it } from 'vitest';
import { createCpuTimingExec, parseGnuTime } from '../../../hack/bench/cpu-exec.ts';
import {
  BenchArgsError,
  DEFAULT_SIZES,
  daemonNodeFlags,
  lastJsonLine,
  parseBenchArgs,
  parseSize,
} from '../../../hack/bench/main.ts';

describe('parseSize', () => {
  it('reads SERVICES (5 endpoints each) and SERVICESxENDPOINTS', () => {
    expect(parseSize('1000')).toEqual({ services: 1000, endpointsPerService: 5 });
    expect(parseSize('10000x10')).toEqual({ services: 10000, endpointsPerService: 10 });
  });

  it.each(['', 'x5', '10x', '0x5', '10x0', '-1', '1e3', '10 x 5'])('refuses %j', (s) => {
    expect(() => parseSize(s)).toThrow(BenchArgsError);
  });
});

describe('parseBenchArgs', () => {
  it('defaults to the issue sizes, both backends, latency at 1k and 10k x 5', () => {
    const a = parseBenchArgs([]);
    expect(a.sizes).toEqual(DEFAULT_SIZES);
    expect(a.sizes.map((s) => `${s.services}x${s.endpointsPerService}`)).toEqual([
      '100x5',
      '1000x5',
      '5000x5',
      '10000x5',
      '10000x10',
    ]);
    expect(a.backends).toEqual(['legacy', 'nft']);
    expect(a.latencySizes).toEqual([
      { services: 1000, endpointsPerService: 5 },
      { services: 10000, endpointsPerService: 5 },
    ]);
    expect(a.latencyChanges).toBe(100);
    expect(a.trackerChanges).toBe(1000);
    expect(a.conntrackEntries).toBe(100_000);
    expect(a.reps).toBe(3);
  });

  it('--quick is one small size with latency and a small conntrack table', () => {
    const a = parseBenchArgs(['--quick', '--backends', 'nft']);
    expect(a.sizes).toEqual([{ services: 60, endpointsPerService: 3 }]);
    expect(a.latencySizes).toEqual(a.sizes);
    expect(a.backends).toEqual(['nft']);
    expect(a.reps).toBe(1);
    expect(a.conntrackEntries).toBeLessThan(100_000);
  });

  it('takes sizes, latency sizes and switches', () => {
    const a = parseBenchArgs(['500', '2000x2', '--latency-sizes', 'none', '--no-conntrack', '--reps', '2']);
    expect(a.sizes).toEqual([
      { services: 500, endpointsPerService: 5 },
      { services: 2000, endpointsPerService: 2 },
    ]);
    expect(a.latencySizes).toEqual([]);
    expect(a.conntrackEntries).toBe(0);
    expect(a.reps).toBe(2);
  });

  it('refuses unknown backends, flags, and too many repetitions for a small size', () => {
    expect(() => parseBenchArgs(['--backends', 'ebpf'])).toThrow(BenchArgsError);
    expect(() => parseBenchArgs(['--frobnicate'])).toThrow();
    // Each repetition needs three Services never changed before.
    expect(() => parseBenchArgs(['5', '--reps', '2'])).toThrow(BenchArgsError);
    expect(() => parseBenchArgs(['6', '--reps', '2'])).not.toThrow();
  });
});

describe('lastJsonLine', () => {
  it('takes the last non-empty line when it is a JSON object', () => {
    expect(lastJsonLine('noise\n{"a":1}\n{"b":2}\n\n')).toEqual({ b: 2 });
    expect(lastJsonLine('{"a":1}\nnot json')).toBeUndefined();
    expect(lastJsonLine('[1,2]')).toBeUndefined();
    expect(lastJsonLine('')).toBeUndefined();
  });
});

describe('parseGnuTime', () => {
  it('adds user and system seconds, after any exit-status line', () => {
    expect(parseGnuTime('0.25 0.10\n')).toBe(350);
    expect(parseGnuTime('Command exited with non-zero status 1\n1.00 0.02\n')).toBe(1020);
    expect(parseGnuTime('garbage')).toBeUndefined();
  });
});

describe('--child-node-options', () => {
  it("splits the flags for the rendering process; the launcher's by default, none when empty", () => {
    // The launcher's NODE_FLAGS line, so that memory is measured as the daemon runs.
    expect(daemonNodeFlags()).toEqual(['--max-semi-space-size=4']);
    expect(parseBenchArgs([]).childNodeOptions).toEqual(daemonNodeFlags());
    expect(parseBenchArgs(['--child-node-options=']).childNodeOptions).toEqual([]);
    expect(
      // A value starting with a dash goes after `=`, as node:util parseArgs requires.
      parseBenchArgs(['--child-node-options=--max-semi-space-size=4  --max-old-space-size=256'])
        .childNodeOptions,
    ).toEqual(['--max-semi-space-size=4', '--max-old-space-size=256']);
  });
});

describe('createCpuTimingExec', () => {
  it('measures a command with GNU time and passes its output and status through', async () => {
    const t = createCpuTimingExec();
    try {
      const r = await t.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('out\n');
      expect(r.stderr).toBe('err\n');
      expect(t.lastCpuMs()).toBeGreaterThanOrEqual(0);
    } finally {
      t.close();
    }
  });

  it('runs commands unmeasured when GNU time is missing', async () => {
    const t = createCpuTimingExec('/nonexistent/time');
    const r = await t.exec(['sh', '-c', 'echo hi']);
    expect(r.stdout).toBe('hi\n');
    expect(t.lastCpuMs()).toBeUndefined();
  });
});
