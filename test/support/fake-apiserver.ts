/**
 * A small fake of the Kubernetes API server for informer tests: LIST and WATCH (chunked JSON
 * lines) of Services, EndpointSlices and Nodes on 127.0.0.1, with hooks to break things. Test-only;
 * the development API server the sandbox runs lives in pkg/apiserver.
 *
 * What it models: one global resourceVersion counter bumped by every write, an event history so a
 * watch from an old version replays what it missed, "compaction" (a watch from a version before
 * the compaction point gets an ERROR event with code 410, as a real server does), label selectors
 * (`k`, `!k`, `k=v`, `k==v`, `k!=v`) and field selectors on metadata.name/namespace, and `limit`
 * + `continue` paging. What it does not: selectors on watch events are applied to the event's
 * object only (no synthetic DELETED when a label change moves an object out of the selection).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export type Resource = 'services' | 'endpointslices' | 'nodes';

/** An API object as JSON; the fake never validates (tests feed it invalid objects on purpose). */
export type RawObject = {
  metadata: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
} & Record<string, unknown>;

export interface RecordedRequest {
  readonly method: string;
  readonly resource: Resource | undefined;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly watch: boolean;
  readonly authorization: string | undefined;
}

/** What the next watch request gets instead of a stream. */
export type WatchFailure =
  | { readonly kind: 'http'; readonly status: number }
  | { readonly kind: 'gone-event' };

interface HistoryEvent {
  readonly rv: number;
  readonly resource: Resource;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: RawObject;
}

interface OpenWatch {
  readonly resource: Resource;
  readonly query: URLSearchParams;
  readonly res: ServerResponse;
}

const ROUTES: ReadonlyArray<{ re: RegExp; resource: Resource; listKind: string; apiVersion: string }> = [
  {
    re: /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?services$/,
    resource: 'services',
    listKind: 'ServiceList',
    apiVersion: 'v1',
  },
  {
    re: /^\/apis\/discovery\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?endpointslices$/,
    resource: 'endpointslices',
    listKind: 'EndpointSliceList',
    apiVersion: 'discovery.k8s.io/v1',
  },
  { re: /^\/api\/v1\/nodes$/, resource: 'nodes', listKind: 'NodeList', apiVersion: 'v1' },
];

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly #server: Server;
  readonly #objects = new Map<Resource, Map<string, RawObject>>([
    ['services', new Map()],
    ['endpointslices', new Map()],
    ['nodes', new Map()],
  ]);
  readonly #history: HistoryEvent[] = [];
  readonly #watches = new Set<OpenWatch>();
  readonly #sockets = new Set<Socket>();
  readonly #watchFailures: WatchFailure[] = [];
  readonly #listFailures: number[] = [];
  readonly #waiters: Array<() => void> = [];
  #rv = 100;
  #compactedRV = 0;
  #url = '';

  private constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  static async start(): Promise<FakeApiServer> {
    const f = new FakeApiServer();
    f.#server.listen(0, '127.0.0.1');
    await once(f.#server, 'listening');
    const { port } = f.#server.address() as AddressInfo;
    f.#url = `http://127.0.0.1:${port}`;
    return f;
  }

  get url(): string {
    return this.#url;
  }

  /** A KubeConfig for this server, built in memory, with a bearer token the fake records. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      // client-node refuses plain http unless TLS verification is marked as skipped.
      clusters: [{ name: 'fake', server: this.#url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
      currentContext: 'fake',
    });
    return kc;
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Stores a new object (or replaces one) and sends ADDED; returns the stored copy. */
  add(resource: Resource, obj: RawObject): RawObject {
    return this.#write(resource, obj, 'ADDED');
  }

  /** Replaces an object and sends MODIFIED. */
  modify(resource: Resource, obj: RawObject): RawObject {
    return this.#write(resource, obj, 'MODIFIED');
  }

  /** Deletes an object and sends DELETED; false when there was none. */
  remove(resource: Resource, namespace: string | undefined, name: string): boolean {
    const key = keyOf(namespace, name);
    const old = this.#objects.get(resource)?.get(key);
    if (old === undefined) return false;
    this.#objects.get(resource)?.delete(key);
    const rv = ++this.#rv;
    const object: RawObject = { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } };
    this.#record({ rv, resource, type: 'DELETED', object });
    return true;
  }

  /** Changes the store without any watch event, as if the events were lost (see `compact`). */
  silentRemove(resource: Resource, namespace: string | undefined, name: string): void {
    this.#objects.get(resource)?.delete(keyOf(namespace, name));
    this.#rv++;
  }

  /** Sends an event to open watches without storing anything (e.g. a repeat with the same version). */
  sendRaw(resource: Resource, type: string, object: unknown): void {
    for (const w of this.#watches) {
      if (w.resource === resource) w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  }

  /** Sends a BOOKMARK with the current version to watches that asked for bookmarks. */
  bookmark(resource: Resource): void {
    for (const w of this.#watches) {
      if (w.resource === resource && w.query.get('allowWatchBookmarks') === 'true') {
        w.res.write(
          `${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(this.#rv) } } })}\n`,
        );
      }
    }
  }

  /** Forgets history: watches from any version up to now get 410 Gone (an ERROR event). */
  compact(): void {
    this.#compactedRV = this.#rv;
    this.#history.length = 0;
  }

  /** Destroys the sockets of all open watches, as a network failure would. */
  dropWatches(): void {
    for (const w of this.#watches) w.res.socket?.destroy();
    this.#watches.clear();
  }

  /** Ends all open watches cleanly, as a server-side timeout does. */
  endWatches(): void {
    for (const w of this.#watches) w.res.end();
    this.#watches.clear();
  }

  /** The next watch requests (one per call) fail this way. */
  failNextWatch(failure: WatchFailure): void {
    this.#watchFailures.push(failure);
  }

  /** The next list requests (one per call) fail with this HTTP status. */
  failNextList(status: number): void {
    this.#listFailures.push(status);
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  watchRequests(resource?: Resource): RecordedRequest[] {
    return this.requests.filter((r) => r.watch && (resource === undefined || r.resource === resource));
  }

  listRequests(resource?: Resource): RecordedRequest[] {
    return this.requests.filter((r) => !r.watch && (resource === undefined || r.resource === resource));
  }

  /** Resolves once `pred` holds, checked after every request and every watch opening. */
  async waitFor(pred: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error('FakeApiServer.waitFor: timed out');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    for (const w of this.#watches) w.res.end();
    this.#watches.clear();
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
    await once(this.#server, 'close');
  }

  #write(resource: Resource, obj: RawObject, type: 'ADDED' | 'MODIFIED'): RawObject {
    const rv = ++this.#rv;
    const stored: RawObject = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
    this.#objects.get(resource)?.set(keyOf(obj.metadata.namespace, obj.metadata.name ?? ''), stored);
    this.#record({ rv, resource, type, object: stored });
    return stored;
  }

  #record(ev: HistoryEvent): void {
    this.#history.push(ev);
    for (const w of this.#watches) {
      if (w.resource === ev.resource && matches(ev.object, w.query)) {
        w.res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
      }
    }
  }

  #notify(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const route = ROUTES.find((r) => r.re.test(url.pathname));
    const watch = url.searchParams.get('watch') === 'true';
    this.requests.push({
      method: req.method ?? 'GET',
      resource: route?.resource,
      path: url.pathname,
      query: url.searchParams,
      watch,
      authorization: req.headers.authorization,
    });
    try {
      if (route === undefined || req.method !== 'GET') {
        sendStatus(res, 404, 'NotFound', `no route for ${req.method} ${url.pathname}`);
        return;
      }
      const namespace = route.re.exec(url.pathname)?.[1];
      if (watch) this.#serveWatch(route.resource, namespace, url.searchParams, res);
      else this.#serveList(route, namespace, url.searchParams, res);
    } finally {
      this.#notify();
    }
  }

  #selected(resource: Resource, namespace: string | undefined, query: URLSearchParams): RawObject[] {
    return [...(this.#objects.get(resource)?.values() ?? [])]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .filter((o) => matches(o, query))
      .sort((a, b) =>
        keyOf(a.metadata.namespace, a.metadata.name ?? '').localeCompare(
          keyOf(b.metadata.namespace, b.metadata.name ?? ''),
        ),
      );
  }

  #serveList(
    route: (typeof ROUTES)[number],
    namespace: string | undefined,
    query: URLSearchParams,
    res: ServerResponse,
  ): void {
    const failure = this.#listFailures.shift();
    if (failure !== undefined) {
      sendStatus(res, failure, 'InjectedFailure', `injected list failure ${failure}`);
      return;
    }
    const all = this.#selected(route.resource, namespace, query);
    // Paging: the continue token is the offset of the next page (a real server's is opaque).
    const start = Number(query.get('continue') ?? '0');
    const limit = Number(query.get('limit') ?? '0');
    const items = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const next = limit > 0 && start + limit < all.length ? String(start + limit) : undefined;
    const body = {
      kind: route.listKind,
      apiVersion: route.apiVersion,
      metadata: { resourceVersion: String(this.#rv), ...(next !== undefined ? { continue: next } : {}) },
      items,
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  #serveWatch(
    resource: Resource,
    namespace: string | undefined,
    query: URLSearchParams,
    res: ServerResponse,
  ): void {
    const failure = this.#watchFailures.shift();
    if (failure?.kind === 'http') {
      sendStatus(res, failure.status, 'InjectedFailure', `injected watch failure ${failure.status}`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const fromRV = Number(query.get('resourceVersion') ?? '0');
    if (failure?.kind === 'gone-event' || (fromRV > 0 && fromRV < this.#compactedRV)) {
      const status = {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        reason: 'Expired',
        code: 410,
        message: `too old resource version: ${fromRV} (${this.#rv})`,
      };
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    const inScope = (o: RawObject) =>
      (namespace === undefined || o.metadata.namespace === namespace) && matches(o, query);
    if (fromRV === 0) {
      // No version: the current state as ADDED events, then live events (as a real server does).
      for (const o of this.#selected(resource, namespace, query))
        res.write(`${JSON.stringify({ type: 'ADDED', object: o })}\n`);
    } else {
      for (const ev of this.#history) {
        if (ev.resource === resource && ev.rv > fromRV && inScope(ev.object)) {
          res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
        }
      }
    }
    const w: OpenWatch = { resource, query, res };
    this.#watches.add(w);
    res.on('close', () => this.#watches.delete(w));
  }
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }));
}

/** Label and field selectors, as far as the proxy uses them. */
export function matches(obj: RawObject, query: URLSearchParams): boolean {
  const labels = (obj.metadata.labels ?? {}) as Record<string, string>;
  for (const term of splitTerms(query.get('labelSelector'))) {
    if (!labelTermMatches(term, labels)) return false;
  }
  for (const term of splitTerms(query.get('fieldSelector'))) {
    const m = /^([^!=]+?)(!=|==|=)(.*)$/.exec(term);
    if (!m) return false;
    const field =
      m[1] === 'metadata.name'
        ? obj.metadata.name
        : m[1] === 'metadata.namespace'
          ? obj.metadata.namespace
          : undefined;
    if (m[2] === '!=' ? field === m[3] : field !== m[3]) return false;
  }
  return true;
}

/** One term of a label selector: `!k`, `k!=v`, `k=v`, `k==v` or `k`. */
function labelTermMatches(term: string, labels: Record<string, string>): boolean {
  const absent = /^!\s*(\S+)$/.exec(term);
  if (absent) return !(absent[1]! in labels);
  const notEqual = /^([^!=\s]+)\s*!=\s*(.*)$/.exec(term);
  if (notEqual) return labels[notEqual[1]!] !== notEqual[2];
  const equal = /^([^!=\s]+)\s*==?\s*(.*)$/.exec(term);
  if (equal) return labels[equal[1]!] === equal[2];
  return term in labels;
}

function splitTerms(sel: string | null): string[] {
  return (sel ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
}
