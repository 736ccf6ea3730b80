/**
 * A list+watch informer that validates every object and never stays down.
 *
 * client-node's ListWatch (src/cache.ts) is the model for the shape, but it leaves things a
 * daemon cannot live with (STYLE.md section 4): after any error other than 410 or a client
 * timeout it only fires its error callbacks and stays down; its `start` resolves even when the
 * first list failed; objects arrive unvalidated. Here:
 *
 * - `start()` resolves only once a list has been delivered and a watch is open; until then the
 *   informer keeps retrying, and `hasSynced()` stays false.
 * - The watch resumes from the last resourceVersion seen (events and bookmarks) after a clean end,
 *   a dropped connection or a client inactivity timeout.
 * - 410 Gone, as an HTTP status or as a watch ERROR event, means our version is too old: relist,
 *   emitting deletes for what vanished and adds/updates for what changed (store.ts).
 * - Every other failure (refused connection, 5xx, 403, a broken list) is logged and retried after a
 *   backoff running from 1 s to 30 s, reset after a successful list or a healthy watch.
 * - Handlers run synchronously in event order; one that throws is logged, never propagated.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import { type Logger, silentLogger } from '../log/logger.ts';
import { ApiStatusError, InformerStoppedError, isGone } from './errors.ts';
import type { ListWatcher, WatchConnection, WatchEvent } from './listwatch.ts';
import { applyDelete, applyList, applyUpsert, rawMeta, type Store, type StoreEvent } from './store.ts';

export interface InformerHandlers<T> {
  readonly onAdd?: (obj: T) => void;
  /** Only called when the resourceVersion changed. */
  readonly onUpdate?: (oldObj: T, newObj: T) => void;
  /** Receives the last valid version we had. */
  readonly onDelete?: (obj: T) => void;
  /** Once, after the events of the first complete list. */
  readonly onSynced?: () => void;
  /** An object failed validation and was skipped (for the metric of invalid objects). */
  readonly onInvalid?: (kind: string, namespacedName: string, reason: string) => void;
}

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

export interface InformerOptions<T> {
  /** Kind for logs and `onInvalid`, e.g. "Service". */
  readonly kind: string;
  readonly schema: z.ZodType<T>;
  readonly listWatcher: ListWatcher;
  readonly handlers: InformerHandlers<T>;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  readonly logger?: Logger;
  /** Defaults to 1 s doubling up to 30 s, as client-node's ListWatch. */
  readonly backoff?: BackoffOptions;
  /** How to wait out a backoff; injectable so tests need not sleep. Must settle when aborted. */
  readonly delay?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Server-side watch timeout per request; defaults to 5-10 min at random, as client-go's reflector. */
  readonly watchTimeoutSeconds?: () => number;
  /** Page size of LIST requests (0: no paging). */
  readonly pageSize?: number;
  /** A watch shorter than this that delivered nothing counts as a failure (guards against tight loops). */
  readonly minHealthyWatchMs?: number;
}

export interface Informer<T> {
  readonly kind: string;
  /** Resolves once the first list is delivered and a watch is open; rejects only if stopped first. */
  start(signal?: AbortSignal): Promise<void>;
  /** Idempotent; no handler runs after it returns. */
  stop(): void;
  hasSynced(): boolean;
  /** The last valid version of every object, in no particular order. */
  list(): T[];
  /** By `namespace/name` (or `name` for cluster-scoped kinds). */
  get(key: string): T | undefined;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

/** The next backoff delay: the initial one after a success (prev 0), then doubling up to the max. */
export function nextBackoffMs(prevMs: number, opts: BackoffOptions): number {
  return prevMs <= 0 ? opts.initialMs : Math.min(prevMs * 2, opts.maxMs);
}

export function createInformer<T>(opts: InformerOptions<T>): Informer<T> {
  return new ValidatingInformer(opts);
}

const defaultDelay = (ms: number, signal: AbortSignal): Promise<void> =>
  sleep(ms, undefined, { signal }).then(
    () => undefined,
    () => undefined,
  );

const defaultWatchTimeout = (): number => Math.floor(300 * (1 + Math.random()));

class ValidatingInformer<T> implements Informer<T> {
  readonly kind: string;
  readonly #opts: InformerOptions<T>;
  readonly #log: Logger;
  readonly #store: Store<T> = new Map();
  readonly #abort = new AbortController();
  readonly #backoff: BackoffOptions;
  #backoffMs = 0;
  #resourceVersion = '';
  #synced = false;
  #stopped = false;
  #started: Promise<void> | undefined;
  #ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #watch: WatchConnection | undefined;
  /** Set by a watch ERROR event: why the current watch is being closed. */
  #watchFailure: Error | undefined;
  #watchEvents = 0;
  /** 410s in a row without a delivered event in between; the second one waits a backoff. */
  #goneInARow = 0;

  constructor(opts: InformerOptions<T>) {
    this.kind = opts.kind;
    this.#opts = opts;
    this.#log = (opts.logger ?? silentLogger()).child({ informer: opts.kind });
    this.#backoff = opts.backoff ?? DEFAULT_BACKOFF;
  }

  start(signal?: AbortSignal): Promise<void> {
    if (this.#started !== undefined) return this.#started;
    if (this.#stopped) return Promise.reject(new InformerStoppedError(this.kind));
    this.#started = new Promise<void>((resolve, reject) => {
      this.#ready = { resolve, reject };
    });
    if (signal !== undefined) {
      if (signal.aborted) this.stop();
      else signal.addEventListener('abort', () => this.stop(), { once: true, signal: this.#abort.signal });
    }
    if (!this.#stopped) {
      this.#run().catch((err: unknown) => {
        // #run catches everything it expects; this is the last guard against a bug taking the
        // process down through an unhandled rejection.
        this.#log.error({ err }, 'informer loop failed');
      });
    }
    return this.#started;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#abort.abort();
    this.#watch?.abort();
    this.#watch = undefined;
    this.#ready?.reject(new InformerStoppedError(this.kind));
    this.#ready = undefined;
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  list(): T[] {
    return Array.from(this.#store.values(), (s) => s.obj);
  }

  get(key: string): T | undefined {
    return this.#store.get(key)?.obj;
  }

  async #run(): Promise<void> {
    let needList = true;
    while (!this.#stopped) {
      if (needList) {
        try {
          await this.#relist();
        } catch (err) {
          if (this.#stopped) return;
          await this.#waitBackoff(err, 'list failed');
          continue;
        }
        needList = false;
      }

      let conn: WatchConnection;
      this.#watchFailure = undefined;
      this.#watchEvents = 0;
      try {
        conn = await this.#opts.listWatcher.watch(
          {
            resourceVersion: this.#resourceVersion,
            labelSelector: this.#opts.labelSelector,
            fieldSelector: this.#opts.fieldSelector,
            timeoutSeconds: (this.#opts.watchTimeoutSeconds ?? defaultWatchTimeout)(),
          },
          (ev) => this.#onWatchEvent(ev),
        );
      } catch (err) {
        if (this.#stopped) return;
        if (isGone(err)) {
          needList = await this.#onGone();
          continue;
        }
        await this.#waitBackoff(err, 'watch failed');
        continue;
      }
      if (this.#stopped) {
        conn.abort();
        return;
      }
      this.#watch = conn;
      // An ERROR event may have come in before we held the connection.
      if (this.#watchFailure !== undefined) conn.abort();
      const openedAt = performance.now();
      this.#ready?.resolve();
      this.#ready = undefined;

      const endError = await conn.ended;
      this.#watch = undefined;
      if (this.#stopped) return;

      const failure = this.#watchFailure;
      if (failure !== undefined && isGone(failure)) {
        needList = await this.#onGone();
        continue;
      }
      if (failure !== undefined) {
        await this.#waitBackoff(failure, 'watch ended with an error event');
        continue;
      }
      const healthy =
        this.#watchEvents > 0 || performance.now() - openedAt >= (this.#opts.minHealthyWatchMs ?? 1000);
      if (healthy) {
        // A server timeout, a dropped connection or our inactivity timeout: resume at once from
        // the version we hold, as client-node does after its client-side timeout.
        this.#backoffMs = 0;
        this.#log.debug(
          { resourceVersion: this.#resourceVersion, reason: describe(endError) },
          'watch ended, resuming',
        );
      } else {
        await this.#waitBackoff(endError ?? new Error('closed at once'), 'watch ended right after opening');
      }
    }
  }

  /** Lists every page, then turns the result into events against the store. */
  async #relist(): Promise<void> {
    const items: unknown[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    const pageSize = this.#opts.pageSize ?? 500;
    do {
      const page = await this.#opts.listWatcher.list(
        {
          labelSelector: this.#opts.labelSelector,
          fieldSelector: this.#opts.fieldSelector,
          limit: pageSize > 0 ? pageSize : undefined,
          continue: cont,
        },
        this.#abort.signal,
      );
      items.push(...page.items);
      cont = page.continue;
      // The first page's version is the snapshot the continued pages belong to.
      if (resourceVersion === '') resourceVersion = page.resourceVersion;
    } while (cont !== undefined && !this.#stopped);
    if (this.#stopped) return;
    this.#emit(applyList(this.#store, items, this.#opts.schema));
    this.#resourceVersion = resourceVersion;
    this.#backoffMs = 0;
    this.#log.debug({ objects: items.length, resourceVersion }, 'listed');
    if (!this.#synced) {
      this.#synced = true;
      this.#call('onSynced', () => this.#opts.handlers.onSynced?.());
    }
  }

  /** Returns true: relist. A second 410 in a row with nothing delivered in between waits first. */
  async #onGone(): Promise<boolean> {
    this.#goneInARow++;
    this.#log.info(
      { resourceVersion: this.#resourceVersion },
      'resource version too old (410 Gone), relisting',
    );
    this.#resourceVersion = '';
    if (this.#goneInARow > 1) await this.#waitBackoff(undefined, '410 Gone again');
    return true;
  }

  #onWatchEvent(ev: WatchEvent): void {
    if (this.#stopped || this.#watchFailure !== undefined) return;
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED':
        this.#emit(applyUpsert(this.#store, ev.object, this.#opts.schema));
        break;
      case 'DELETED':
        this.#emit(applyDelete(this.#store, ev.object));
        break;
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const status = statusOf(ev.object);
        this.#watchFailure = new ApiStatusError(status.code, `watch error event: ${status.message}`);
        // The server closes the stream after an ERROR event; do not wait for it.
        this.#watch?.abort();
        return;
      }
      default:
        this.#log.warn({ type: ev.type }, 'unknown watch event type, ignored');
        return;
    }
    this.#watchEvents++;
    this.#goneInARow = 0;
    const rv = rawMeta(ev.object).resourceVersion;
    if (rv !== undefined) this.#resourceVersion = rv;
  }

  #emit(events: readonly StoreEvent<T>[]): void {
    const h = this.#opts.handlers;
    for (const ev of events) {
      switch (ev.type) {
        case 'add':
          this.#call('onAdd', () => h.onAdd?.(ev.obj));
          break;
        case 'update':
          this.#call('onUpdate', () => h.onUpdate?.(ev.oldObj, ev.newObj));
          break;
        case 'delete':
          this.#call('onDelete', () => h.onDelete?.(ev.obj));
          break;
        case 'invalid':
          this.#log.warn(
            { kind: this.kind, name: ev.namespacedName, reason: ev.reason },
            'invalid object skipped',
          );
          this.#call('onInvalid', () => h.onInvalid?.(this.kind, ev.namespacedName, ev.reason));
          break;
      }
    }
  }

  #call(handler: string, fn: () => void): void {
    if (this.#stopped) return;
    try {
      fn();
    } catch (err) {
      this.#log.error({ err, handler }, 'informer handler threw');
    }
  }

  async #waitBackoff(err: unknown, what: string): Promise<void> {
    this.#backoffMs = nextBackoffMs(this.#backoffMs, this.#backoff);
    if (err !== undefined) {
      this.#log.warn({ err: describe(err), retryInMs: this.#backoffMs }, what);
    }
    await (this.#opts.delay ?? defaultDelay)(this.#backoffMs, this.#abort.signal);
  }
}

function statusOf(obj: unknown): { code: number; message: string } {
  const o = typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>) : {};
  const code = typeof o.code === 'number' ? o.code : 500;
  const message =
    typeof o.message === 'string' ? o.message : typeof o.reason === 'string' ? o.reason : 'unknown';
  return { code, message };
}

/** A one-line reason for logs (no stack: these are expected, retried conditions). */
function describe(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined;
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}
