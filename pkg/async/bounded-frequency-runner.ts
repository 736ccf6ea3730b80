/**
 * Runs one function at a bounded frequency, as upstream's pkg/util/async BoundedFrequencyRunner:
 *
 * - `run()` asks for a run and never blocks; requests made while one is pending or running merge.
 * - Runs never overlap.
 * - Runs are rate limited by a token bucket of `burstRuns` tokens refilled at one per
 *   `minIntervalMs`: with minInterval 1 s and burst 2, two back-to-back changes sync at once, a
 *   third waits until a token is back.
 * - With no request at all, a run happens every `maxIntervalMs` (the periodic resync).
 * - `retryAfter(ms)` asks for a run no later than `ms` from now; the earliest deadline wins.
 *
 * Examples: minInterval 1000, maxInterval 30000, burst 2: requests at t=0, 10, 20 ms run at 0 and
 * 10; the one at 20 runs at ~1000. No requests: runs at 30000, 60000, ...
 */

export interface TimerHandle {
  readonly id: unknown;
}

/** Time source, injected so tests drive the runner exactly. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The runner must not keep a process alive by itself: stop() is how it ends.
    t.unref();
    return { id: t };
  },
  clearTimer: (h) => clearTimeout(h.id as NodeJS.Timeout),
};

export interface BoundedFrequencyRunnerOptions {
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly burstRuns: number;
  readonly clock?: Clock;
  /** Called with whatever the function threw; the runner itself never throws. */
  readonly onError?: (err: unknown) => void;
}

export class BoundedFrequencyRunner {
  private readonly fn: () => Promise<void>;
  private readonly minIntervalMs: number;
  private readonly maxIntervalMs: number;
  private readonly burstRuns: number;
  private readonly clock: Clock;
  private readonly onError: (err: unknown) => void;

  private tokens: number;
  private lastRefill: number;
  private running: Promise<void> | undefined;
  private requested = false;
  private timer: TimerHandle | undefined;
  private timerDeadline = Number.POSITIVE_INFINITY;
  private retryDeadline = Number.POSITIVE_INFINITY;
  private started = false;
  private stopped = false;

  constructor(fn: () => Promise<void>, opts: BoundedFrequencyRunnerOptions) {
    if (opts.minIntervalMs < 0 || opts.maxIntervalMs <= 0 || opts.minIntervalMs > opts.maxIntervalMs) {
      throw new Error(
        `BoundedFrequencyRunner: need 0 <= minInterval (${opts.minIntervalMs}) <= maxInterval (${opts.maxIntervalMs}) and maxInterval > 0`,
      );
    }
    if (opts.burstRuns < 1)
      throw new Error(`BoundedFrequencyRunner: burstRuns must be >= 1, got ${opts.burstRuns}`);
    this.fn = fn;
    this.minIntervalMs = opts.minIntervalMs;
    this.maxIntervalMs = opts.maxIntervalMs;
    this.burstRuns = opts.burstRuns;
    this.clock = opts.clock ?? realClock;
    this.onError = opts.onError ?? (() => {});
    this.tokens = opts.burstRuns;
    this.lastRefill = this.clock.now();
  }

  /** Starts the periodic schedule; the first run happens on the first request or after maxInterval. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.armAt(this.clock.now() + this.maxIntervalMs);
    if (this.requested) this.tryRun();
  }

  /** Asks for a run as soon as the rate limit allows. Never blocks. */
  run(): void {
    if (this.stopped) return;
    this.requested = true;
    if (this.started) this.tryRun();
  }

  /** Asks for a run no later than `ms` from now (after a failure); the earliest deadline wins. */
  retryAfter(ms: number): void {
    if (this.stopped) return;
    const at = this.clock.now() + ms;
    if (at < this.retryDeadline) this.retryDeadline = at;
    if (this.started && !this.running) this.armAt(Math.min(this.timerDeadline, this.retryDeadline));
  }

  /** Stops scheduling and waits for a run in progress. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.disarm();
    await this.running;
  }

  /** True while the function runs (for tests and health reporting). */
  get isRunning(): boolean {
    return this.running !== undefined;
  }

  private refill(): void {
    const now = this.clock.now();
    if (this.minIntervalMs === 0) {
      this.tokens = this.burstRuns;
    } else {
      this.tokens = Math.min(this.burstRuns, this.tokens + (now - this.lastRefill) / this.minIntervalMs);
    }
    this.lastRefill = now;
  }

  private tryRun(): void {
    if (this.stopped || this.running) return;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.execute();
      return;
    }
    // Not allowed yet: fire the timer as soon as a token is back (or earlier, if already armed).
    const wait = (1 - this.tokens) * this.minIntervalMs;
    this.armAt(Math.min(this.timerDeadline, this.clock.now() + wait));
  }

  private execute(): void {
    this.disarm();
    this.requested = false;
    this.retryDeadline = Number.POSITIVE_INFINITY;
    this.running = (async () => {
      try {
        await this.fn();
      } catch (err) {
        this.onError(err);
      }
    })().finally(() => {
      this.running = undefined;
      if (this.stopped) return;
      // The periodic run counts from the end of the last run; a retry asked for during the run
      // may pull it in.
      this.armAt(Math.min(this.clock.now() + this.maxIntervalMs, this.retryDeadline));
      if (this.requested) this.tryRun();
    });
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerDeadline = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    if (this.running) {
      this.requested = true;
      return;
    }
    // A timer run (periodic, retry, or a delayed request) still respects the rate limit.
    this.requested = true;
    this.tryRun();
  }

  private armAt(deadline: number): void {
    if (this.timer && deadline === this.timerDeadline) return;
    this.disarm();
    this.timerDeadline = deadline;
    this.timer = this.clock.setTimer(() => this.onTimer(), Math.max(0, deadline - this.clock.now()));
  }

  private disarm(): void {
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerDeadline = Number.POSITIVE_INFINITY;
  }
}
