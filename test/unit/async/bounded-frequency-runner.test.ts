import { describe, expect, it } from 'vitest';
import { BoundedFrequencyRunner } from '../../../pkg/async/bounded-frequency-runner.ts';
import { FakeClock, settle } from '../../support/fake-clock.ts';

function setup(opts: { min?: number; max?: number; burst?: number; runMs?: number } = {}) {
  const clock = new FakeClock();
  const runs: number[] = [];
  let active = 0;
  let overlapped = false;
  let fail = false;
  const runner = new BoundedFrequencyRunner(
    async () => {
      active++;
      if (active > 1) overlapped = true;
      runs.push(clock.now());
      if (opts.runMs) await new Promise<void>((resolve) => clock.setTimer(resolve, opts.runMs!));
      active--;
      if (fail) throw new Error('sync failed');
    },
    { minIntervalMs: opts.min ?? 1000, maxIntervalMs: opts.max ?? 30_000, burstRuns: opts.burst ?? 2, clock },
  );
  runner.start();
  return {
    clock,
    runner,
    runs,
    overlapped: () => overlapped,
    setFail: (f: boolean) => {
      fail = f;
    },
  };
}

describe('BoundedFrequencyRunner', () => {
  it('runs a request at once while burst tokens last, then waits for minInterval', async () => {
    const { clock, runner, runs } = setup();
    runner.run();
    await clock.advance(10);
    runner.run();
    await clock.advance(10);
    runner.run();
    await clock.advance(10);
    expect(runs).toEqual([0, 10]);
    await clock.advance(1000);
    // The two tokens were spent at 0 and 10; the first one is back at 1000.
    expect(runs).toEqual([0, 10, 1000]);
  });

  it('merges requests made while waiting into one run', async () => {
    const { clock, runner, runs } = setup({ burst: 1 });
    runner.run();
    await settle();
    for (let i = 0; i < 5; i++) {
      runner.run();
      await clock.advance(100);
    }
    await clock.advance(2000);
    expect(runs).toEqual([0, 1000]);
  });

  it('runs every maxInterval without requests', async () => {
    const { clock, runs } = setup({ max: 30_000 });
    await clock.advance(95_000);
    expect(runs).toEqual([30_000, 60_000, 90_000]);
  });

  it('never overlaps runs, and a request during a run runs after it', async () => {
    const { clock, runner, runs, overlapped } = setup({ min: 0, runMs: 500 });
    runner.run();
    await clock.advance(100);
    runner.run();
    runner.run();
    await clock.advance(2000);
    expect(overlapped()).toBe(false);
    expect(runs).toEqual([0, 500]);
  });

  it('retryAfter pulls the next run in, earliest deadline wins', async () => {
    const { clock, runner, runs } = setup({ min: 1000, max: 30_000 });
    await clock.advance(5000);
    runner.retryAfter(10_000);
    runner.retryAfter(3000);
    runner.retryAfter(20_000);
    await clock.advance(3000);
    expect(runs).toEqual([8000]);
  });

  it('a failed run does not stop the schedule', async () => {
    const { clock, runner, runs, setFail } = setup({ min: 1000, max: 10_000 });
    setFail(true);
    runner.run();
    await clock.advance(1);
    setFail(false);
    await clock.advance(10_000);
    expect(runs).toEqual([0, 10_000]);
  });

  it('stop() cancels the schedule and later requests', async () => {
    const { clock, runner, runs } = setup();
    await runner.stop();
    runner.run();
    await clock.advance(100_000);
    expect(runs).toEqual([]);
    expect(clock.pending()).toEqual([]);
  });

  it('rejects impossible settings', () => {
    expect(
      () => new BoundedFrequencyRunner(async () => {}, { minIntervalMs: 10, maxIntervalMs: 5, burstRuns: 1 }),
    ).toThrow(/minInterval/);
    expect(
      () => new BoundedFrequencyRunner(async () => {}, { minIntervalMs: 1, maxIntervalMs: 5, burstRuns: 0 }),
    ).toThrow(/burstRuns/);
  });
});
