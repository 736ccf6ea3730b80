/**
 * The HTTP side of the development API server: turns REST requests into store calls and store
 * results into the JSON a Kubernetes client expects (objects, lists, tables, Status errors,
 * watch streams of JSON lines).
 *
 * There is no authentication or authorization: the server is meant for loopback use by tests and
 * the sandbox only, and the kubeconfig it writes carries no credentials.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.ts';
import {
  AGGREGATED_DISCOVERY_MEDIA,
  aggregatedDiscovery,
  apiGroupDocument,
  apiGroupList,
  apiResourceList,
  coreAPIVersions,
  versionInfo,
  wantsAggregatedDiscovery,
} from './discovery.ts';
import {
  ApiError,
  badRequest,
  internalError,
  methodNotAllowed,
  pathNotFound,
  unsupportedMediaType,
} from './errors.ts';
import { openAPIV3Document, openAPIV3Root } from './openapi.ts';
import { type KubeObject, RESOURCES, type ResourceInfo } from './resources.ts';
import { type ApiPath, parseApiPath } from './routes.ts';
import { parseSelector, type Selector, SelectorError } from './selectors.ts';
import type { EventType, PatchType, Store } from './store.ts';
import { type IncludeObject, renderTable, TABLE_MEDIA, wantsTable } from './table.ts';

/** Request bodies above this are refused, as upstream's 3 MiB limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** Watches without timeoutSeconds end after this, as upstream's --min-request-timeout. */
const DEFAULT_WATCH_TIMEOUT_S = 1800;

export type DropMode = 'end' | 'reset';

export interface HandlerOptions {
  readonly store: Store;
  readonly logger: Logger;
  readonly bookmarkIntervalMs: number;
  /** host:port clients use, for /api's serverAddressByClientCIDRs. */
  readonly serverAddress: () => string;
  /** How watch streams end when the store drops them (set by the server's dropWatches). */
  readonly dropMode: () => DropMode;
  readonly now?: () => Date;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const PATCH_TYPES: Readonly<Record<string, PatchType>> = {
  'application/merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
  'application/strategic-merge-patch+json': 'strategic',
};

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  contentType = 'application/json',
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, private',
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  sendJson(res, err.httpStatus, err.toStatus());
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'BadRequest', 'the request body is too large');
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}

const mediaType = (header: string | undefined) => (header ?? '').split(';')[0]!.trim().toLowerCase();

function truthy(v: string | null): boolean {
  return v === 'true' || v === '1';
}

export function createRequestHandler(opts: HandlerOptions): RequestHandler {
  const { store, logger } = opts;
  const now = opts.now ?? (() => new Date());

  function listBody(
    info: ResourceInfo,
    items: KubeObject[],
    resourceVersion: string,
  ): Record<string, unknown> {
    return { kind: `${info.kind}List`, apiVersion: info.apiVersion, metadata: { resourceVersion }, items };
  }

  function selectorOf(q: URLSearchParams, name: string | undefined): Selector {
    let fields = q.get('fieldSelector') ?? '';
    // A watch of one object (/watch/.../<name>) is a watch with a name field selector.
    if (name !== undefined) fields = fields ? `${fields},metadata.name=${name}` : `metadata.name=${name}`;
    try {
      return parseSelector(q.get('labelSelector') ?? '', fields);
    } catch (e) {
      if (e instanceof SelectorError) throw badRequest(`unable to parse requirement: ${e.message}`);
      throw e;
    }
  }

  function serveWatch(
    req: IncomingMessage,
    res: ServerResponse,
    p: Extract<ApiPath, { kind: 'resource' }>,
    q: URLSearchParams,
  ): void {
    const info = RESOURCES[p.resource];
    const selector = selectorOf(q, p.name);
    const asTable = wantsTable(req.headers.accept);
    const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
    const timeoutParam = q.get('timeoutSeconds');
    const timeoutS =
      timeoutParam !== null && /^[0-9]+$/.test(timeoutParam) ? Number(timeoutParam) : DEFAULT_WATCH_TIMEOUT_S;
    res.writeHead(200, {
      'Content-Type': asTable ? TABLE_MEDIA : 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    let open = true;
    const write = (type: EventType | 'BOOKMARK' | 'ERROR', object: unknown) => {
      if (!open) return;
      let payload = object;
      if (asTable && type !== 'BOOKMARK' && type !== 'ERROR') {
        const o = object as KubeObject;
        payload = renderTable(p.resource, [o], o.metadata.resourceVersion ?? '', include, now());
      }
      res.write(`${JSON.stringify({ type, object: payload })}\n`);
    };
    const timers: NodeJS.Timeout[] = [];
    let handle: { close(): void } | undefined;
    const finish = (mode: DropMode) => {
      if (!open) return;
      open = false;
      for (const t of timers) clearTimeout(t);
      handle?.close();
      if (mode === 'reset') res.destroy();
      else res.end();
    };
    res.on('close', () => finish('end'));
    try {
      handle = store.watch(
        p.resource,
        {
          namespace: p.namespace,
          selector,
          resourceVersion: q.get('resourceVersion') ?? undefined,
          sendInitialEvents: truthy(q.get('sendInitialEvents')),
        },
        { event: write, closed: () => finish(opts.dropMode()) },
      );
    } catch (e) {
      // Upstream reports an expired resourceVersion inside the stream, as an ERROR event with
      // a Status, which is what client-go's reflector and client-node's informer look for.
      const err = e instanceof ApiError ? e : internalError((e as Error).message);
      write('ERROR', err.toStatus());
      finish('end');
      return;
    }
    if (!open) return;
    timers.push(setTimeout(() => finish('end'), timeoutS * 1000));
    if (truthy(q.get('allowWatchBookmarks'))) {
      const tick = () => {
        write('BOOKMARK', {
          kind: info.kind,
          apiVersion: info.apiVersion,
          metadata: { resourceVersion: store.resourceVersion() },
        });
        timers.push(setTimeout(tick, opts.bookmarkIntervalMs));
      };
      timers.push(setTimeout(tick, opts.bookmarkIntervalMs));
    }
    logger.debug(
      { resource: p.resource, namespace: p.namespace, rv: q.get('resourceVersion') },
      'watch opened',
    );
  }

  async function serveResource(
    req: IncomingMessage,
    res: ServerResponse,
    p: Extract<ApiPath, { kind: 'resource' }>,
    q: URLSearchParams,
  ): Promise<void> {
    const info = RESOURCES[p.resource];
    const method = req.method ?? 'GET';
    const sub = p.subresource as 'status' | undefined;
    if (q.has('dryRun')) throw badRequest('dryRun is not supported by the development API server');
    const isWatch = p.watchPrefix || truthy(q.get('watch'));
    if (isWatch) {
      if (method !== 'GET') throw methodNotAllowed(method, req.url ?? '');
      return serveWatch(req, res, p, q);
    }
    if (p.name === undefined) {
      switch (method) {
        case 'GET': {
          const list = store.list(p.resource, { namespace: p.namespace, selector: selectorOf(q, undefined) });
          if (wantsTable(req.headers.accept)) {
            const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
            return sendJson(
              res,
              200,
              renderTable(p.resource, list.items, list.resourceVersion, include, now()),
              TABLE_MEDIA,
            );
          }
          return sendJson(res, 200, listBody(info, list.items, list.resourceVersion));
        }
        case 'POST': {
          checkJson(req);
          const body = (await readBody(req)) as KubeObject;
          if (body === undefined) throw badRequest('the request body is empty');
          return sendJson(res, 201, store.create(p.resource, body, { namespace: p.namespace }));
        }
        case 'DELETE': {
          const items = store.deleteCollection(p.resource, {
            namespace: p.namespace,
            selector: selectorOf(q, undefined),
          });
          return sendJson(res, 200, listBody(info, items, store.resourceVersion()));
        }
        default:
          throw methodNotAllowed(method, req.url ?? '');
      }
    }
    const name = p.name;
    switch (method) {
      case 'GET': {
        const obj = store.get(p.resource, p.namespace, name);
        if (wantsTable(req.headers.accept)) {
          const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
          return sendJson(
            res,
            200,
            renderTable(p.resource, [obj], obj.metadata.resourceVersion ?? '', include, now()),
            TABLE_MEDIA,
          );
        }
        return sendJson(res, 200, obj);
      }
      case 'PUT': {
        checkJson(req);
        const body = (await readBody(req)) as KubeObject;
        if (typeof body !== 'object' || body === null) throw badRequest('the request body must be an object');
        if (
          typeof body.metadata === 'object' &&
          body.metadata !== null &&
          body.metadata.name !== undefined &&
          body.metadata.name !== name
        ) {
          throw badRequest(
            `the name of the object (${String(body.metadata.name)}) does not match the name on the URL (${name})`,
          );
        }
        const obj = { ...body, metadata: { ...(body.metadata ?? {}), name } };
        return sendJson(
          res,
          200,
          store.update(p.resource, obj, { namespace: p.namespace, subresource: sub }),
        );
      }
      case 'PATCH': {
        const ct = mediaType(req.headers['content-type']);
        const type = PATCH_TYPES[ct];
        if (!type) throw unsupportedMediaType(ct || '(none)');
        const body = await readBody(req);
        return sendJson(
          res,
          200,
          store.patch(p.resource, p.namespace, name, type, body, { subresource: sub }),
        );
      }
      case 'DELETE': {
        if (sub) throw methodNotAllowed(method, req.url ?? '');
        const body = (await readBody(req)) as
          | { preconditions?: { uid?: string; resourceVersion?: string } }
          | undefined;
        return sendJson(
          res,
          200,
          store.delete(p.resource, p.namespace, name, { preconditions: body?.preconditions }),
        );
      }
      default:
        throw methodNotAllowed(method, req.url ?? '');
    }
  }

  function checkJson(req: IncomingMessage): void {
    const ct = mediaType(req.headers['content-type']);
    if (ct !== '' && ct !== 'application/json' && ct !== '*/*') throw unsupportedMediaType(ct);
  }

  function serveDiscovery(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
    const accept = req.headers.accept;
    const path = pathname.replace(/\/+$/, '') || '/';
    if (path === '/version') {
      sendJson(res, 200, versionInfo());
      return true;
    }
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return true;
    }
    if (path === '/api' || path === '/apis') {
      const legacy = path === '/api';
      if (wantsAggregatedDiscovery(accept)) {
        sendJson(res, 200, aggregatedDiscovery(legacy), AGGREGATED_DISCOVERY_MEDIA);
      } else {
        sendJson(res, 200, legacy ? coreAPIVersions(opts.serverAddress()) : apiGroupList());
      }
      return true;
    }
    if (path === '/openapi/v3') {
      sendJson(res, 200, openAPIV3Root());
      return true;
    }
    if (path.startsWith('/openapi/v3/')) {
      const doc = openAPIV3Document(path.slice('/openapi/v3/'.length));
      if (!doc) return false;
      sendJson(res, 200, doc);
      return true;
    }
    const group = /^\/apis\/([^/]+)$/.exec(path);
    if (group) {
      const doc = apiGroupDocument(group[1]!);
      if (!doc) return false;
      sendJson(res, 200, doc);
      return true;
    }
    return false;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (serveDiscovery(req, res, url.pathname)) return;
    const p = parseApiPath(url.pathname);
    if (!p) throw pathNotFound(url.pathname);
    if (p.kind === 'groupVersion') {
      const doc = apiResourceList({ group: p.group, version: p.version });
      if (!doc) throw pathNotFound(url.pathname);
      return sendJson(res, 200, doc);
    }
    await serveResource(req, res, p, url.searchParams);
  }

  return (req, res) => {
    const started = Date.now();
    res.on('finish', () => {
      logger.debug(
        { method: req.method, url: req.url, status: res.statusCode, ms: Date.now() - started },
        'request',
      );
    });
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : internalError(e instanceof Error ? e.message : String(e));
      if (!(e instanceof ApiError))
        logger.error({ err: e, method: req.method, url: req.url }, 'request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(res, err);
    });
  };
}
