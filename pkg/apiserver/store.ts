/**
 * The in-memory object store behind the development API server: every served type in one place,
 * one global resourceVersion counter (as etcd's revision), and a bounded history of change
 * events from which watches resume.
 *
 * Semantics follow the real API server where kube-proxy and client libraries depend on them:
 * - every write bumps the counter; the object and the event carry the new value, lists carry
 *   the current one; a write that changes nothing keeps the old version and sends no event;
 * - a watch from resourceVersion R replays the retained events after R, then goes live; from
 *   "" or "0" it starts with synthetic ADDED events for the current objects; when R is older
 *   than the retained history it fails with 410 Expired;
 * - with a selector, a watch sees an object that starts matching as ADDED and one that stops
 *   matching as DELETED (upstream's cacheWatcher does the same);
 * - objects with finalizers are only marked for deletion (deletionTimestamp) until an update
 *   removes the last finalizer.
 *
 * The store is synchronous and single-threaded, so each write is atomic and every watcher has
 * seen every event up to the current version by the time a call returns.
 * Objects handed to watch sinks are the stored ones: sinks must not mutate them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  ApiError,
  alreadyExists,
  badRequest,
  conflict,
  type ErrorSubject,
  expired,
  forbidden,
  notFound,
} from './errors.ts';
import { canonicalJson, type Json, jsonPatch, mergePatch, PatchError, strategicMergePatch } from './patch.ts';
import {
  type KubeObject,
  type ObjectMeta,
  RESOURCES,
  type ResourceInfo,
  type ResourceName,
} from './resources.ts';
import { EVERYTHING, matchesSelector, type Selector } from './selectors.ts';
import type { Strategies } from './strategy.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  readonly type: EventType;
  readonly rv: number;
  readonly resource: ResourceName;
  readonly object: KubeObject;
  /** The state before a MODIFIED event, to turn selector transitions into ADDED/DELETED. */
  readonly prev: KubeObject | undefined;
}

export interface WatchSink {
  event(type: EventType | 'BOOKMARK', object: KubeObject): void;
  /** The store ended the watch (dropWatches). */
  closed(): void;
}

export interface WatchOptions {
  readonly namespace?: string | undefined;
  readonly selector?: Selector | undefined;
  /** "" or undefined or "0": start with the current state; a number: resume after it. */
  readonly resourceVersion?: string | undefined;
  /** Watch-list: after the initial ADDED events send a BOOKMARK marked initial-events-end. */
  readonly sendInitialEvents?: boolean | undefined;
}

export interface WatchHandle {
  close(): void;
}

export interface ListOptions {
  readonly namespace?: string | undefined;
  readonly selector?: Selector | undefined;
}

export interface ListResult {
  readonly items: KubeObject[];
  readonly resourceVersion: string;
}

export interface WriteOptions {
  /** For namespaced types: the namespace of the request; the object's own is used otherwise. */
  readonly namespace?: string | undefined;
  readonly subresource?: 'status' | undefined;
}

export interface DeleteOptions {
  readonly preconditions?: { readonly uid?: string; readonly resourceVersion?: string } | undefined;
}

export type PatchType = 'merge' | 'json' | 'strategic';

export interface Store {
  get(resource: ResourceName, namespace: string | undefined, name: string): KubeObject;
  list(resource: ResourceName, opts?: ListOptions): ListResult;
  create(resource: ResourceName, obj: KubeObject, opts?: WriteOptions): KubeObject;
  update(resource: ResourceName, obj: KubeObject, opts?: WriteOptions): KubeObject;
  patch(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    opts?: WriteOptions,
  ): KubeObject;
  delete(
    resource: ResourceName,
    namespace: string | undefined,
    name: string,
    opts?: DeleteOptions,
  ): KubeObject;
  deleteCollection(resource: ResourceName, opts?: ListOptions): KubeObject[];
  watch(resource: ResourceName, opts: WatchOptions, sink: WatchSink): WatchHandle;
  /** The current global resourceVersion. */
  resourceVersion(): string;
  /** Forgets all history: a watch from any version issued before this call gets 410. */
  compactHistory(): void;
  /** Ends every open watch (its sink's `closed` is called). */
  dropWatches(): void;
}

export interface StoreOptions {
  readonly strategies: Strategies;
  /** How many change events are kept for watch resumption. */
  readonly historyLimit?: number;
  /** Namespaces that exist from the start. */
  readonly initialNamespaces?: readonly string[];
  readonly now?: () => Date;
}

interface Watcher {
  readonly resource: ResourceName;
  readonly namespace: string | undefined;
  readonly selector: Selector;
  readonly sink: WatchSink;
}

/** Namespaces that upstream refuses to delete. */
const UNDELETABLE_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

const keyOf = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;

function randomSuffix(): string {
  return [...randomBytes(5)].map((b) => GENERATE_ALPHABET[b % GENERATE_ALPHABET.length]).join('');
}

/** RFC 3339 with second precision, as metav1.Time marshals. */
function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function sameContent(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) =>
    canonicalJson({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return strip(a) === strip(b);
}

export function createStore(opts: StoreOptions): Store {
  const { strategies } = opts;
  const historyLimit = opts.historyLimit ?? 1000;
  const now = opts.now ?? (() => new Date());
  const objects = new Map<ResourceName, Map<string, KubeObject>>(
    (Object.keys(RESOURCES) as ResourceName[]).map((r) => [r, new Map()]),
  );
  const history: HistoryEntry[] = [];
  const watchers = new Set<Watcher>();
  let rv = 0;
  /** A watch from a version below this cannot be served: events after it were dropped. */
  let oldestResumable = 0;

  const subjectOf = (info: ResourceInfo, name: string): ErrorSubject => ({
    group: info.group,
    resource: info.name,
    kind: info.kind,
    name,
  });

  function withTypeMeta(info: ResourceInfo, obj: KubeObject): KubeObject {
    const { apiVersion: _a, kind: _k, ...rest } = obj;
    return { apiVersion: info.apiVersion, kind: info.kind, ...rest };
  }

  function namespaceOf(
    info: ResourceInfo,
    obj: KubeObject,
    requested: string | undefined,
  ): string | undefined {
    if (!info.namespaced) return undefined;
    const own = obj.metadata.namespace;
    if (requested !== undefined && own !== undefined && own !== '' && own !== requested) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    return requested ?? (own || 'default');
  }

  function checkTypeMeta(info: ResourceInfo, obj: KubeObject): void {
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw badRequest('the request body must be an object');
    if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = {};
    if (obj.kind !== undefined && obj.kind !== info.kind) {
      throw badRequest(
        `the kind of the provided object (${String(obj.kind)}) does not match the resource (${info.kind})`,
      );
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== info.apiVersion) {
      throw badRequest(
        `the API version of the provided object (${String(obj.apiVersion)}) is not ${info.apiVersion}`,
      );
    }
  }

  function record(type: EventType, resource: ResourceName, object: KubeObject, prev?: KubeObject): void {
    const entry: HistoryEntry = { type, rv, resource, object, prev };
    history.push(entry);
    while (history.length > historyLimit) {
      const dropped = history.shift()!;
      oldestResumable = dropped.rv;
    }
    for (const w of [...watchers]) deliver(w, entry);
  }

  /** What a watcher sees of one event, after namespace and selector filtering. */
  function view(w: Watcher, e: HistoryEntry): { type: EventType; object: KubeObject } | undefined {
    if (e.resource !== w.resource) return undefined;
    const passes = (o: KubeObject | undefined) =>
      o !== undefined &&
      (w.namespace === undefined || o.metadata.namespace === w.namespace) &&
      matchesSelector(w.selector, o);
    const cur = passes(e.object);
    if (e.type !== 'MODIFIED') return cur ? { type: e.type, object: e.object } : undefined;
    const was = passes(e.prev);
    if (cur && was) return { type: 'MODIFIED', object: e.object };
    if (cur) return { type: 'ADDED', object: e.object };
    if (was) {
      const gone = e.prev!;
      return {
        type: 'DELETED',
        object: { ...gone, metadata: { ...gone.metadata, resourceVersion: String(e.rv) } },
      };
    }
    return undefined;
  }

  function deliver(w: Watcher, e: HistoryEntry): void {
    const v = view(w, e);
    if (v) w.sink.event(v.type, v.object);
  }

  function bump(): string {
    rv += 1;
    return String(rv);
  }

  function mustGet(info: ResourceInfo, ns: string | undefined, name: string): KubeObject {
    const obj = objects.get(info.name)!.get(keyOf(info.namespaced ? ns : undefined, name));
    if (!obj) throw notFound(subjectOf(info, name));
    return obj;
  }

  function ensureNamespace(ns: string): void {
    const nsObj = objects.get('namespaces')!.get(keyOf(undefined, ns));
    if (!nsObj) throw notFound(subjectOf(RESOURCES.namespaces, ns));
    if (nsObj.metadata.deletionTimestamp) {
      throw forbidden(
        subjectOf(RESOURCES.namespaces, ns),
        'unable to create new content in namespace because it is being terminated',
      );
    }
  }

  function remove(info: ResourceInfo, stored: KubeObject): KubeObject {
    if (info.name === 'namespaces') {
      // No namespace controller here: the content goes with the namespace, at once.
      for (const r of Object.values(RESOURCES)) {
        if (!r.namespaced) continue;
        for (const o of [...objects.get(r.name)!.values()]) {
          if (o.metadata.namespace === stored.metadata.name) remove(r, o);
        }
      }
    }
    objects.get(info.name)!.delete(keyOf(stored.metadata.namespace, stored.metadata.name!));
    const gone = { ...stored, metadata: { ...stored.metadata, resourceVersion: bump() } };
    strategies[info.name].release(stored);
    record('DELETED', info.name, gone);
    return gone;
  }

  function commitUpdate(info: ResourceInfo, next: KubeObject, old: KubeObject): KubeObject {
    if (sameContent(next, old)) return old;
    const specChanged = canonicalJson(next.spec) !== canonicalJson(old.spec);
    const generation = (old.metadata.generation ?? 1) + (specChanged ? 1 : 0);
    const stored = { ...next, metadata: { ...next.metadata, generation, resourceVersion: bump() } };
    if (stored.metadata.deletionTimestamp && (stored.metadata.finalizers ?? []).length === 0) {
      objects.get(info.name)!.set(keyOf(stored.metadata.namespace, stored.metadata.name!), stored);
      return remove(info, stored);
    }
    objects.get(info.name)!.set(keyOf(stored.metadata.namespace, stored.metadata.name!), stored);
    record('MODIFIED', info.name, stored, old);
    return stored;
  }

  const store: Store = {
    get(resource, namespace, name) {
      const info = RESOURCES[resource];
      return structuredClone(mustGet(info, namespace, name));
    },

    list(resource, o = {}) {
      const sel = o.selector ?? EVERYTHING;
      const items = [...objects.get(resource)!.values()]
        .filter(
          (x) =>
            (o.namespace === undefined || x.metadata.namespace === o.namespace) && matchesSelector(sel, x),
        )
        .sort((a, b) =>
          keyOf(a.metadata.namespace, a.metadata.name!).localeCompare(
            keyOf(b.metadata.namespace, b.metadata.name!),
          ),
        );
      return { items: structuredClone(items), resourceVersion: String(rv) };
    },

    create(resource, input, o = {}) {
      const info = RESOURCES[resource];
      checkTypeMeta(info, input);
      const obj = withTypeMeta(info, structuredClone(input));
      const meta = obj.metadata;
      const ns = namespaceOf(info, obj, o.namespace);
      if (ns !== undefined) meta.namespace = ns;
      else delete meta.namespace;
      if (!meta.name && typeof meta.generateName === 'string' && meta.generateName !== '') {
        meta.name = meta.generateName + randomSuffix();
      }
      // Fields the server owns are set here whatever the client sent.
      for (const k of [
        'uid',
        'resourceVersion',
        'creationTimestamp',
        'deletionTimestamp',
        'generation',
      ] as const)
        delete meta[k];
      if (ns !== undefined) ensureNamespace(ns);
      if (meta.name && objects.get(resource)!.has(keyOf(ns, meta.name)))
        throw alreadyExists(subjectOf(info, meta.name));
      const prepared = strategies[resource].prepareCreate(obj);
      const stored: KubeObject = {
        ...prepared,
        metadata: {
          ...prepared.metadata,
          uid: randomUUID(),
          creationTimestamp: timestamp(now()),
          generation: 1,
          resourceVersion: bump(),
        },
      };
      objects.get(resource)!.set(keyOf(ns, meta.name!), stored);
      record('ADDED', resource, stored);
      return structuredClone(stored);
    },

    update(resource, input, o = {}) {
      const info = RESOURCES[resource];
      checkTypeMeta(info, input);
      const obj = withTypeMeta(info, structuredClone(input));
      const ns = namespaceOf(info, obj, o.namespace);
      const name = obj.metadata.name;
      if (!name) throw badRequest('name is required in the object to update');
      const old = mustGet(info, ns, name);
      const sent = obj.metadata.resourceVersion;
      if (sent !== undefined && sent !== '' && sent !== old.metadata.resourceVersion) {
        throw conflict(
          subjectOf(info, name),
          'the object has been modified; please apply your changes to the latest version and try again',
        );
      }
      const strategy = strategies[resource];
      // Identity and server-owned metadata are kept from the stored object.
      const meta: ObjectMeta = { ...obj.metadata, name };
      for (const k of [
        'uid',
        'creationTimestamp',
        'resourceVersion',
        'generation',
        'deletionTimestamp',
        'namespace',
      ] as const) {
        delete meta[k];
        if (old.metadata[k] !== undefined) meta[k] = old.metadata[k] as never;
      }
      let next: KubeObject;
      if (o.subresource === 'status') {
        // Only status changes through /status; metadata and spec stay as stored.
        next = { ...old, status: obj.status };
      } else {
        next = { ...obj, metadata: meta };
        if (strategy.statusSubresource) {
          if (old.status === undefined) delete next.status;
          else next.status = old.status;
        }
        next = strategy.prepareUpdate(next, old);
      }
      return structuredClone(commitUpdate(info, next, old));
    },

    patch(resource, namespace, name, type, body, o = {}) {
      const info = RESOURCES[resource];
      const old = mustGet(info, namespace, name);
      let patched: Json;
      try {
        const base = structuredClone(old) as unknown as Json;
        if (type === 'json') patched = jsonPatch(base, body as Json);
        else if (type === 'merge') patched = mergePatch(base, body as Json);
        else patched = strategicMergePatch(base, body as Json);
      } catch (e) {
        if (e instanceof PatchError)
          throw new ApiError(422, 'Invalid', `the patch could not be applied: ${e.message}`);
        throw e;
      }
      if (typeof patched !== 'object' || patched === null || Array.isArray(patched)) {
        throw badRequest('the patched object is not an object');
      }
      const obj = patched as unknown as KubeObject;
      if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = {};
      if (obj.metadata.name !== name) throw badRequest('the name of an object cannot be changed by a patch');
      return store.update(resource, obj, { namespace, subresource: o.subresource });
    },

    delete(resource, namespace, name, o = {}) {
      const info = RESOURCES[resource];
      const stored = mustGet(info, namespace, name);
      const pre = o.preconditions;
      if (pre?.uid && pre.uid !== stored.metadata.uid) {
        throw conflict(
          subjectOf(info, name),
          `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${stored.metadata.uid}`,
        );
      }
      if (pre?.resourceVersion && pre.resourceVersion !== stored.metadata.resourceVersion) {
        throw conflict(
          subjectOf(info, name),
          `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${stored.metadata.resourceVersion}`,
        );
      }
      if (resource === 'namespaces' && UNDELETABLE_NAMESPACES.has(name)) {
        throw forbidden(subjectOf(info, name), 'this namespace may not be deleted');
      }
      if ((stored.metadata.finalizers ?? []).length > 0) {
        if (stored.metadata.deletionTimestamp) return structuredClone(stored);
        const marked = { ...stored, metadata: { ...stored.metadata, deletionTimestamp: timestamp(now()) } };
        return structuredClone(commitUpdate(info, marked, stored));
      }
      return structuredClone(remove(info, stored));
    },

    deleteCollection(resource, o = {}) {
      const { items } = store.list(resource, o);
      return items.map((x) => store.delete(resource, x.metadata.namespace, x.metadata.name!));
    },

    watch(resource, o, sink) {
      const w: Watcher = { resource, namespace: o.namespace, selector: o.selector ?? EVERYTHING, sink };
      const from = o.resourceVersion ?? '';
      if (from === '' || from === '0') {
        for (const obj of store.list(resource, { namespace: o.namespace, selector: w.selector }).items) {
          sink.event('ADDED', obj);
        }
        if (o.sendInitialEvents) {
          const info = RESOURCES[resource];
          sink.event('BOOKMARK', {
            apiVersion: info.apiVersion,
            kind: info.kind,
            metadata: { resourceVersion: String(rv), annotations: { 'k8s.io/initial-events-end': 'true' } },
          });
        }
      } else {
        if (!/^[0-9]+$/.test(from)) throw badRequest(`invalid resource version "${from}"`);
        const since = Number(from);
        if (since < oldestResumable) {
          throw expired(`too old resource version: ${since} (${oldestResumable})`);
        }
        for (const e of history) if (e.rv > since) deliver(w, e);
      }
      watchers.add(w);
      return {
        close() {
          watchers.delete(w);
        },
      };
    },

    resourceVersion: () => String(rv),

    compactHistory() {
      // The counter moves on so that even the version of the newest list is now too old,
      // which is what a test of the relist path needs.
      bump();
      history.length = 0;
      oldestResumable = rv;
    },

    dropWatches() {
      const all = [...watchers];
      watchers.clear();
      for (const w of all) w.sink.closed();
    },
  };

  for (const ns of opts.initialNamespaces ?? []) {
    store.create('namespaces', { metadata: { name: ns } });
  }
  return store;
}
