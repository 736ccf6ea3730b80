/**
 * The informer's cache of validated objects, and the rules that turn raw API objects into
 * handler events. These functions update the map they are given (an informer may hold 100,000
 * slices; copying it per event is not an option) and return the events to emit, so the rules can be
 * tested without a server.
 *
 * The rules (STYLE.md "validation happens once, at the boundary"):
 * - an object that fails its schema is never stored and yields an `invalid` event;
 * - an invalid version of a known object leaves the last valid version in place, so the proxy keeps
 *   serving it instead of dropping its rules;
 * - a delete always carries the last valid version we stored, whatever the deleted object looks
 *   like, and is dropped when we never had a valid version;
 * - an update is reported only when the resourceVersion changed (a watch resumed at an older
 *   version, or a relist, repeats objects we already have).
 */
import type { z } from 'zod';
import { formatIssues } from './schemas.ts';

export interface StoredObject<T> {
  readonly obj: T;
  readonly resourceVersion: string | undefined;
}

/** Keyed by `namespace/name`, or `name` for cluster-scoped objects. */
export type Store<T> = Map<string, StoredObject<T>>;

export type StoreEvent<T> =
  | { readonly type: 'add'; readonly obj: T }
  | { readonly type: 'update'; readonly oldObj: T; readonly newObj: T }
  | { readonly type: 'delete'; readonly obj: T }
  | { readonly type: 'invalid'; readonly namespacedName: string; readonly reason: string };

interface RawMeta {
  readonly name: string | undefined;
  readonly namespace: string | undefined;
  readonly resourceVersion: string | undefined;
}

/** Reads metadata from an object that has not been validated (and may be anything). */
export function rawMeta(raw: unknown): RawMeta {
  const meta = isRecord(raw) && isRecord(raw.metadata) ? raw.metadata : {};
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  return { name: str(meta.name), namespace: str(meta.namespace), resourceVersion: str(meta.resourceVersion) };
}

/** `namespace/name`, or `name` for cluster-scoped objects; undefined without a name. */
export function objectKey(raw: unknown): string | undefined {
  const m = rawMeta(raw);
  if (m.name === undefined) return undefined;
  return m.namespace === undefined ? m.name : `${m.namespace}/${m.name}`;
}

/** A name for log lines and metrics, also for objects without one. */
export function displayName(raw: unknown): string {
  const m = rawMeta(raw);
  const name = m.name ?? '<no name>';
  return m.namespace === undefined ? name : `${m.namespace}/${name}`;
}

/** ADDED or MODIFIED (the two are treated alike: a resumed watch may repeat an ADDED). */
export function applyUpsert<T>(store: Store<T>, raw: unknown, schema: z.ZodType<T>): StoreEvent<T>[] {
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    return [{ type: 'invalid', namespacedName: displayName(raw), reason: formatIssues(parsed.error) }];
  const key = objectKey(raw);
  // The schemas require a name, so a valid object always has a key; stay safe regardless.
  if (key === undefined)
    return [{ type: 'invalid', namespacedName: displayName(raw), reason: 'metadata.name: missing' }];
  const resourceVersion = rawMeta(raw).resourceVersion;
  const old = store.get(key);
  if (old !== undefined && old.resourceVersion !== undefined && old.resourceVersion === resourceVersion)
    return [];
  store.set(key, { obj: parsed.data, resourceVersion });
  return old === undefined
    ? [{ type: 'add', obj: parsed.data }]
    : [{ type: 'update', oldObj: old.obj, newObj: parsed.data }];
}

/** DELETED: reports the stored (valid) version, whatever `raw` looks like. */
export function applyDelete<T>(store: Store<T>, raw: unknown): StoreEvent<T>[] {
  const key = objectKey(raw);
  if (key === undefined) return [];
  const old = store.get(key);
  if (old === undefined) return [];
  store.delete(key);
  return [{ type: 'delete', obj: old.obj }];
}

/**
 * A complete list (the first one, or a relist after 410 Gone): deletes for stored objects the list
 * no longer has, then adds and updates. An object present in the list but invalid counts as
 * present, so its last valid version survives.
 */
export function applyList<T>(
  store: Store<T>,
  items: readonly unknown[],
  schema: z.ZodType<T>,
): StoreEvent<T>[] {
  const present = new Set<string>();
  for (const raw of items) {
    const key = objectKey(raw);
    if (key !== undefined) present.add(key);
  }
  const events: StoreEvent<T>[] = [];
  for (const [key, old] of store) {
    if (!present.has(key)) {
      store.delete(key);
      events.push({ type: 'delete', obj: old.obj });
    }
  }
  for (const raw of items) events.push(...applyUpsert(store, raw, schema));
  return events;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
