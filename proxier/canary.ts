/**
 * The canary monitor (upstream: Monitor in pkg/util/iptables/iptables.go). Firewall reloads
 * (firewalld, `iptables -F`, a config-management run) can wipe kube-proxy's rules without telling
 * anyone; partial syncs would then only rewrite what changed and leave services broken. So an empty
 * chain, KUBE-PROXY-CANARY, is kept in mangle, nat and filter, and polled; when it disappears the
 * proxier is asked for a full sync.
 *
 * The loop, each step scheduled on the injected clock:
 *
 *   setup ──all canaries made──▶ poll (every interval) ──mangle canary gone──▶ wait for the others
 *     ▲  ╰─failed: retry after interval                                  (every 100 ms, up to 5 s)
 *     ╰──────────────────────────── onFlushed() ◀──────────────────────────────────╯
 *
 * Only mangle is polled: it is the first table to be flushed and the cheapest to list (kube-proxy
 * writes nothing else there). A reload flushes tables one at a time, so before calling back the
 * monitor waits for the nat and filter canaries to go too; otherwise the resync could run between
 * two flushes and be wiped by the second.
 */
import { type Clock, realClock, type TimerHandle } from '../pkg/async/bounded-frequency-runner.ts';
import { IptablesError } from '../pkg/iptables/errors.ts';
import type { Iptables, Table } from '../pkg/iptables/types.ts';
import type { Logger } from '../pkg/log/logger.ts';
import { KUBE_PROXY_CANARY } from './chains.ts';

/** How often the other tables are checked once the first canary is gone (upstream iptablesFlushPollTime). */
export const FLUSH_POLL_MS = 100;
/** How long to wait for the other canaries before going on anyway (upstream iptablesFlushTimeout). */
export const FLUSH_TIMEOUT_MS = 5000;
/** The tables holding a canary; the first one is the one polled. */
export const CANARY_TABLES: readonly Table[] = ['mangle', 'nat', 'filter'];

export interface CanaryMonitorOptions {
  readonly iptables: Iptables;
  /** Poll period; upstream uses --iptables-sync-period. */
  readonly intervalMs: number;
  /** Called once per detected flush, after the canaries of every table are gone (or 5 s passed). */
  readonly onFlushed: () => void;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** The canary's name; KUBE-PROXY-CANARY unless a test needs another. */
  readonly chain?: string;
}

export interface CanaryMonitor {
  /** Starts the loop: creates the canaries now, then polls. A second call does nothing. */
  start(): void;
  /**
   * Stops polling, waits for an iptables call in flight, then deletes the canaries (as upstream
   * does when its stop channel closes). Idempotent: every call returns the same promise.
   */
  stop(): Promise<void>;
}

/**
 * Whether an error means "iptables could not answer" rather than "the chain is not there":
 * exit status 4 (RESOURCE_PROBLEM, mostly the xtables lock), as upstream's isResourceError.
 */
function isResourceError(err: unknown): boolean {
  return err instanceof IptablesError && (err.code === 'lock-timeout' || err.exitCode === 4);
}

export function createCanaryMonitor(opts: CanaryMonitorOptions): CanaryMonitor {
  const { iptables, intervalMs, onFlushed } = opts;
  if (!(intervalMs > 0)) throw new RangeError(`canary interval must be > 0, got ${intervalMs}`);
  const clock = opts.clock ?? realClock;
  const chain = opts.chain ?? KUBE_PROXY_CANARY;
  const [polled, ...others] = CANARY_TABLES as [Table, ...Table[]];
  const log = opts.logger.child({ component: 'canary', family: iptables.family, chain });

  let started = false;
  let stopping: Promise<void> | undefined;
  let timer: TimerHandle | undefined;
  // The step running now (an iptables call in flight); stop() waits for it.
  let inFlight: Promise<void> = Promise.resolve();

  /** Runs `step` after `ms` (0: on the next turn), unless stopped meanwhile. */
  function schedule(ms: number, step: () => Promise<void>): void {
    if (stopping) return;
    timer = clock.setTimer(() => {
      timer = undefined;
      if (stopping) return;
      inFlight = step().catch((err: unknown) => {
        // Every step handles its own errors; this only guards the loop against a bug.
        log.error({ err }, 'canary monitor step failed');
        schedule(intervalMs, setup);
      });
    }, ms);
  }

  /** Makes the canary in every table; on failure retries the whole set after an interval. */
  async function setup(): Promise<void> {
    for (const table of CANARY_TABLES) {
      try {
        await iptables.ensureChain(table, chain);
      } catch (err) {
        log.error({ err, table }, 'could not set up iptables canary');
        schedule(intervalMs, setup);
        return;
      }
    }
    schedule(intervalMs, poll);
  }

  async function poll(): Promise<void> {
    let exists: boolean;
    try {
      exists = await iptables.chainExists(polled, chain);
    } catch (err) {
      if (isResourceError(err)) {
        log.error({ err, table: polled }, 'could not check for iptables canary');
        exists = true;
      } else {
        // As upstream: an answer other than "it is there" counts as gone.
        log.warn({ err, table: polled }, 'iptables canary check failed; treating it as deleted');
        exists = false;
      }
    }
    if (exists) {
      schedule(intervalMs, poll);
      return;
    }
    log.debug({ table: polled }, 'iptables canary deleted');
    await waitForOthers(clock.now());
  }

  /** Waits until the other canaries are gone too, then calls back and starts over. */
  async function waitForOthers(since: number): Promise<void> {
    let allGone = true;
    for (const table of others) {
      try {
        if (await iptables.chainExists(table, chain)) allGone = false;
      } catch (err) {
        if (isResourceError(err)) allGone = false;
      }
      if (!allGone) break;
    }
    if (!allGone && clock.now() - since < FLUSH_TIMEOUT_MS) {
      schedule(FLUSH_POLL_MS, () => waitForOthers(since));
      return;
    }
    if (!allGone) log.warn({ waitedMs: FLUSH_TIMEOUT_MS }, 'inconsistent iptables state detected');
    if (stopping) return;
    log.info('reloading after iptables flush');
    try {
      onFlushed();
    } catch (err) {
      log.error({ err }, 'onFlushed failed');
    }
    schedule(0, setup);
  }

  async function deleteCanaries(): Promise<void> {
    for (const table of CANARY_TABLES) {
      try {
        await iptables.deleteChain(table, chain);
      } catch (err) {
        log.warn({ err, table }, 'could not delete iptables canary');
      }
    }
  }

  return {
    start() {
      if (started || stopping) return;
      started = true;
      schedule(0, setup);
    },
    stop() {
      stopping ??= (async () => {
        if (timer) clock.clearTimer(timer);
        timer = undefined;
        await inFlight;
        if (started) await deleteCanaries();
      })();
      return stopping;
    },
  };
}
