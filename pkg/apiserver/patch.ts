/**
 * The three patch formats the API server accepts for PATCH, as pure functions on JSON values:
 * - JSON merge patch (RFC 7386, `application/merge-patch+json`),
 * - JSON patch (RFC 6902, `application/json-patch+json`),
 * - strategic merge patch (`application/strategic-merge-patch+json`), which is what
 *   `kubectl apply`, `kubectl label` and `kubectl edit` send. It is a merge patch plus lists
 *   merged by a key and a few `$` directives. We know the merge keys of the few list fields of
 *   our types that have one (Service ports by `port`, Node addresses and conditions by `type`,
 *   ownerReferences by `uid`); every other list is replaced, as in a merge patch.
 * None of them mutates its inputs.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export class PatchError extends Error {
  override readonly name = 'PatchError';
  readonly code = 'InvalidPatch';
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

// --- JSON patch -------------------------------------------------------------------------------

interface Operation {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`invalid JSON pointer "${p}"`);
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function getAt(doc: Json, tokens: string[]): Json {
  let cur: Json = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!/^[0-9]+$/.test(t) || i >= cur.length) throw new PatchError(`path not found: index ${t}`);
      cur = cur[i]!;
    } else if (isObject(cur) && Object.hasOwn(cur, t)) {
      cur = cur[t]!;
    } else {
      throw new PatchError(`path not found: "${t}"`);
    }
  }
  return cur;
}

/** Applies one edit at the parent of `tokens`; `doc` is a private copy and may be changed. */
function editAt(doc: Json, tokens: string[], edit: (parent: Json, key: string) => void): Json {
  if (tokens.length === 0) throw new PatchError('the root cannot be edited by this operation');
  const parent = getAt(doc, tokens.slice(0, -1));
  edit(parent, tokens[tokens.length - 1]!);
  return doc;
}

function add(doc: Json, path: string, value: Json): Json {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return structuredClone(value);
  return editAt(doc, tokens, (parent, key) => {
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if ((key !== '-' && !/^[0-9]+$/.test(key)) || i > parent.length)
        throw new PatchError(`bad array index ${key}`);
      parent.splice(i, 0, structuredClone(value));
    } else if (isObject(parent)) {
      parent[key] = structuredClone(value);
    } else {
      throw new PatchError(`cannot add to a scalar at "${path}"`);
    }
  });
}

function remove(doc: Json, path: string): Json {
  return editAt(doc, parsePointer(path), (parent, key) => {
    if (Array.isArray(parent)) {
      const i = Number(key);
      if (!/^[0-9]+$/.test(key) || i >= parent.length) throw new PatchError(`bad array index ${key}`);
      parent.splice(i, 1);
    } else if (isObject(parent) && Object.hasOwn(parent, key)) {
      delete parent[key];
    } else {
      throw new PatchError(`path not found: "${path}"`);
    }
  });
}

function deepEqual(a: Json, b: Json): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** JSON text with object keys sorted, so that equal values give equal text. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(canonical(v as Json));
}

function canonical(v: Json): Json {
  if (v === undefined) return null;
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) out[k] = canonical(v[k]!);
    return out;
  }
  return v;
}

export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch must be an array of operations');
  let doc = structuredClone(target);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw new PatchError('each JSON patch operation needs "op" and "path"');
    }
    const op = raw as unknown as Operation;
    const need = (k: 'value' | 'from'): Json => {
      if (!Object.hasOwn(raw, k)) throw new PatchError(`operation "${op.op}" needs "${k}"`);
      return raw[k]!;
    };
    switch (op.op) {
      case 'add':
        doc = add(doc, op.path, need('value'));
        break;
      case 'remove':
        doc = remove(doc, op.path);
        break;
      case 'replace':
        getAt(doc, parsePointer(op.path));
        doc =
          parsePointer(op.path).length === 0
            ? structuredClone(need('value'))
            : add(remove(doc, op.path), op.path, need('value'));
        break;
      case 'move': {
        const from = need('from') as string;
        const v = getAt(doc, parsePointer(from));
        doc = add(remove(doc, from), op.path, v);
        break;
      }
      case 'copy':
        doc = add(doc, op.path, getAt(doc, parsePointer(need('from') as string)));
        break;
      case 'test':
        if (!deepEqual(getAt(doc, parsePointer(op.path)), need('value'))) {
          throw new PatchError(`test operation failed at "${op.path}"`);
        }
        break;
      default:
        throw new PatchError(`unknown JSON patch operation "${op.op}"`);
    }
  }
  return doc;
}

// --- strategic merge patch ----------------------------------------------------------------------

/** Merge keys of list fields, by dotted path from the object root (list indices dropped). */
export const MERGE_KEYS: Readonly<Record<string, string>> = {
  'spec.ports': 'port',
  'status.addresses': 'type',
  'status.conditions': 'type',
  'metadata.ownerReferences': 'uid',
  'spec.taints': 'key',
};

/**
 * Strategic merge patch for our types. Directives handled: `$patch: replace|delete` in maps and
 * list items, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`, `$retainKeys`.
 */
export function strategicMergePatch(target: Json, patch: Json, path = ''): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const directive = patch.$patch;
  if (directive === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return strategicMergePatch(null, rest, path);
  }
  if (directive === 'delete') return null;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const list = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[list];
      if (Array.isArray(cur) && Array.isArray(v))
        out[list] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    const childPath = path ? `${path}.${k}` : k;
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v) && MERGE_KEYS[childPath] && Array.isArray(out[k])) {
      out[k] = mergeList(out[k] as Json[], v, MERGE_KEYS[childPath]!, childPath);
    } else if (Array.isArray(v)) {
      out[k] = v
        .filter((x) => !(isObject(x) && x.$patch === 'delete'))
        .map((x) => strategicMergePatch(null, x, childPath));
    } else {
      out[k] = strategicMergePatch(out[k] ?? null, v, childPath);
    }
  }
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith('$setElementOrder/') || !Array.isArray(order)) continue;
    const list = k.slice('$setElementOrder/'.length);
    const key = MERGE_KEYS[path ? `${path}.${list}` : list];
    const cur = out[list];
    if (key && Array.isArray(cur)) out[list] = reorder(cur, order, key);
  }
  return out;
}

function mergeList(cur: Json[], patch: Json[], key: string, path: string): Json[] {
  const out = [...cur];
  for (const item of patch) {
    if (!isObject(item) || !Object.hasOwn(item, key)) {
      throw new PatchError(`list ${path} is merged by "${key}"; a patch item lacks it`);
    }
    const i = out.findIndex((x) => isObject(x) && deepEqual(x[key] ?? null, item[key]!));
    if (item.$patch === 'delete') {
      if (i !== -1) out.splice(i, 1);
    } else if (i === -1) {
      out.push(strategicMergePatch(null, item, path));
    } else {
      out[i] = strategicMergePatch(out[i]!, item, path);
    }
  }
  return out;
}

/** Orders items as `order` says; items it does not name keep their relative order at the end. */
function reorder(items: Json[], order: Json[], key: string): Json[] {
  const keyOf = (x: Json) => (isObject(x) ? JSON.stringify(x[key] ?? null) : '');
  const rank = new Map(order.map((o, i) => [keyOf(o), i]));
  return items
    .map((x, i) => ({ x, i, r: rank.get(keyOf(x)) ?? order.length + i }))
    .sort((a, b) => a.r - b.r)
    .map((e) => e.x);
}
