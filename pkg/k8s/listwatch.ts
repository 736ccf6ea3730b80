/**
 * The wire side of an informer: one paged LIST and one WATCH of a resource path, nothing else.
 *
 * Why raw requests rather than the typed API clients: the generated clients run every object
 * through client-node's ObjectSerializer, which turns timestamps into Date objects and reshapes
 * fields, and the watch stream delivers plain JSON anyway. Our zod schemas are the single
 * validation step, so both LIST and WATCH hand over the JSON exactly as the server sent it.
 * Both still go through the KubeConfig: `applySecurityAuthentication` adds the credentials and the
 * TLS dispatcher, the list is sent with client-node's own HTTP library, and the watch is
 * client-node's `Watch` (chunked JSON lines, connect and inactivity timeout, done-once callback).
 */
import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  RequestContext,
  Watch,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { ApiStatusError, statusCodeOf } from './errors.ts';

export interface ListQuery {
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  readonly limit?: number | undefined;
  readonly continue?: string | undefined;
}

export interface ListPage {
  /** Raw objects, not validated yet. */
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
  /** Token for the next page; undefined on the last one. */
  readonly continue: string | undefined;
}

export interface WatchQuery {
  readonly resourceVersion: string;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  /** Server-side timeout: the server ends the watch cleanly after this many seconds. */
  readonly timeoutSeconds: number;
}

export interface WatchEvent {
  /** ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (anything else is passed on as is). */
  readonly type: string;
  readonly object: unknown;
}

export interface WatchConnection {
  /**
   * Settles when the watch ends, never rejects: undefined for a clean end (server timeout, stream
   * closed), otherwise the error (dropped connection, client inactivity timeout, abort).
   */
  readonly ended: Promise<unknown>;
  abort(): void;
}

export interface ListWatcher {
  /** One page of the collection. Rejects with ApiStatusError on a non-200 answer. */
  list(query: ListQuery, signal: AbortSignal): Promise<ListPage>;
  /**
   * Opens a watch. Resolves once the server answered 200 and the stream is being read; rejects
   * when it could not be opened (ApiStatusError for an HTTP status, the network error otherwise).
   */
  watch(query: WatchQuery, onEvent: (event: WatchEvent) => void): Promise<WatchConnection>;
}

export interface ListWatcherOptions {
  /** Client-side limit for one LIST request. */
  readonly listTimeoutMs?: number;
  /**
   * Watch connect timeout, and inactivity timeout once open: a half-open TCP connection shows up
   * as silence, so this must exceed the server-side timeout the informer asks for.
   */
  readonly watchInactivityTimeoutMs?: number;
}

const listSchema = z.object({
  metadata: z.object({ resourceVersion: z.string().nullish(), continue: z.string().nullish() }).nullish(),
  items: z.array(z.unknown()).nullish(),
});

const statusSchema = z.object({ message: z.string().optional(), reason: z.string().optional() });

/** A ListWatcher for one collection path, e.g. `/api/v1/services`. */
export function createListWatcher(kc: KubeConfig, path: string, opts: ListWatcherOptions = {}): ListWatcher {
  const http = new IsomorphicFetchHttpLibrary();
  const listTimeoutMs = opts.listTimeoutMs ?? 60_000;

  async function list(query: ListQuery, signal: AbortSignal): Promise<ListPage> {
    const server = kc.getCurrentCluster()?.server;
    if (server === undefined) throw new Error('the kubeconfig has no current cluster');
    const url = new URL(server.replace(/\/+$/, '') + path);
    if (query.labelSelector) url.searchParams.set('labelSelector', query.labelSelector);
    if (query.fieldSelector) url.searchParams.set('fieldSelector', query.fieldSelector);
    if (query.limit !== undefined) url.searchParams.set('limit', String(query.limit));
    if (query.continue) url.searchParams.set('continue', query.continue);
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    await kc.applySecurityAuthentication(ctx);
    ctx.setSignal(AbortSignal.any([signal, AbortSignal.timeout(listTimeoutMs)]));
    const resp = await http.send(ctx).toPromise();
    const text = await resp.body.text();
    if (resp.httpStatusCode !== 200) {
      throw new ApiStatusError(
        resp.httpStatusCode,
        `list ${path}: ${statusMessage(resp.httpStatusCode, text)}`,
      );
    }
    const parsed = listSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`list ${path}: the answer is not a list`);
    return {
      items: parsed.data.items ?? [],
      resourceVersion: parsed.data.metadata?.resourceVersion ?? '',
      continue: parsed.data.metadata?.continue || undefined,
    };
  }

  async function watch(query: WatchQuery, onEvent: (event: WatchEvent) => void): Promise<WatchConnection> {
    const w = new Watch(kc);
    if (opts.watchInactivityTimeoutMs !== undefined) {
      // Not in client-node's typings, but a plain instance field it reads on every (re)arm.
      (w as unknown as { requestTimeoutMs: number }).requestTimeoutMs = opts.watchInactivityTimeoutMs;
    }
    let settle: (err: unknown) => void = () => {};
    const ended = new Promise<unknown>((resolve) => {
      settle = resolve;
    });
    let done = false;
    let endError: unknown;
    const params: Record<string, string | number | boolean | undefined> = {
      resourceVersion: query.resourceVersion || undefined,
      allowWatchBookmarks: true,
      timeoutSeconds: query.timeoutSeconds,
      labelSelector: query.labelSelector || undefined,
      fieldSelector: query.fieldSelector || undefined,
    };
    const controller = await w.watch(
      path,
      params,
      (type: string, object: unknown) => {
        if (!done) onEvent({ type, object });
      },
      (err: unknown) => {
        done = true;
        endError = err ?? undefined;
        settle(endError);
      },
    );
    // client-node reports a failed open (HTTP status, refused connection, connect timeout)
    // through `done` before `watch` returns: once the stream is open, `done` can only run from a
    // stream event, which comes later.
    if (done) {
      const code = statusCodeOf(endError);
      if (code !== undefined) throw new ApiStatusError(code, `watch ${path}: HTTP ${code}`);
      throw endError ?? new Error(`watch ${path}: could not open`);
    }
    return { ended, abort: () => controller.abort() };
  }

  return { list, watch };
}

function statusMessage(code: number, body: string): string {
  try {
    const s = statusSchema.safeParse(JSON.parse(body));
    if (s.success && s.data.message) return `HTTP ${code}: ${s.data.message}`;
  } catch {
    // not JSON: fall through
  }
  return `HTTP ${code}`;
}
