/**
 * Label and field selectors as the API server parses them from `labelSelector` and
 * `fieldSelector` query parameters. Pure: parse to a value, then match objects with it.
 *
 * Label grammar (k8s.io/apimachinery/pkg/labels): comma-separated requirements
 * `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`.
 * Field selectors support `=`, `==` and `!=` on metadata.name and metadata.namespace, the two
 * fields every type supports upstream.
 */
import type { KubeObject } from './resources.ts';

export type LabelOperator = 'exists' | 'notexists' | 'equals' | 'notequals' | 'in' | 'notin';

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  readonly values: readonly string[];
}

export interface FieldRequirement {
  readonly field: 'metadata.name' | 'metadata.namespace';
  readonly operator: 'equals' | 'notequals';
  readonly value: string;
}

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
  readonly code = 'InvalidSelector';
}

// Qualified name with an optional DNS-subdomain prefix, as label keys are.
const KEY_RE = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string): string {
  if (!KEY_RE.test(key) || key.length > 317) throw new SelectorError(`invalid label key "${key}"`);
  return key;
}

function checkValue(v: string): string {
  if (!VALUE_RE.test(v) || v.length > 63) throw new SelectorError(`invalid label value: "${v}"`);
  return v;
}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}

function parseSetValues(text: string): string[] {
  const m = /^\((.*)\)$/.exec(text.trim());
  if (!m) throw new SelectorError(`expected a parenthesised value list, found "${text}"`);
  const inner = m[1]!.trim();
  if (inner === '') throw new SelectorError('a set requirement needs at least one value');
  return inner.split(',').map((v) => checkValue(v.trim()));
}

function parseLabelRequirement(raw: string): LabelRequirement {
  const s = raw.trim();
  if (s === '') throw new SelectorError('empty requirement in label selector');
  if (s.startsWith('!')) return { key: checkKey(s.slice(1).trim()), operator: 'notexists', values: [] };
  const set = /^(\S+)\s+(in|notin)\s*(\(.*\))$/.exec(s);
  if (set)
    return { key: checkKey(set[1]!), operator: set[2] as 'in' | 'notin', values: parseSetValues(set[3]!) };
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(s);
  if (eq) {
    const operator = eq[2] === '!=' ? 'notequals' : 'equals';
    return { key: checkKey(eq[1]!), operator, values: [checkValue(eq[3]!.trim())] };
  }
  return { key: checkKey(s), operator: 'exists', values: [] };
}

/** Parses a label selector string; an empty string selects everything. */
export function parseLabelSelector(s: string): LabelRequirement[] {
  if (s.trim() === '') return [];
  return splitTopLevel(s).map(parseLabelRequirement);
}

export function matchesLabels(
  reqs: readonly LabelRequirement[],
  labels: Readonly<Record<string, string>> = {},
): boolean {
  return reqs.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const v = labels[r.key];
    switch (r.operator) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'equals':
      case 'in':
        return has && r.values.includes(v!);
      case 'notequals':
      case 'notin':
        // As upstream: a missing key satisfies != and notin.
        return !has || !r.values.includes(v!);
    }
    return false;
  });
}

/** Parses a field selector string; only metadata.name and metadata.namespace are supported. */
export function parseFieldSelector(s: string): FieldRequirement[] {
  if (s.trim() === '') return [];
  return s.split(',').map((raw) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw new SelectorError(`invalid field selector requirement "${raw}"`);
    const field = m[1]!;
    if (field !== 'metadata.name' && field !== 'metadata.namespace') {
      throw new SelectorError(`field label not supported: ${field}`);
    }
    return { field, operator: m[2] === '!=' ? 'notequals' : 'equals', value: m[3]! };
  });
}

export function matchesFields(reqs: readonly FieldRequirement[], obj: KubeObject): boolean {
  return reqs.every((r) => {
    const actual = (r.field === 'metadata.name' ? obj.metadata.name : obj.metadata.namespace) ?? '';
    return r.operator === 'equals' ? actual === r.value : actual !== r.value;
  });
}

/** Both selectors of a request, parsed once. */
export interface Selector {
  readonly labels: readonly LabelRequirement[];
  readonly fields: readonly FieldRequirement[];
}

export const EVERYTHING: Selector = { labels: [], fields: [] };

export function parseSelector(labelSelector = '', fieldSelector = ''): Selector {
  return { labels: parseLabelSelector(labelSelector), fields: parseFieldSelector(fieldSelector) };
}

export function matchesSelector(sel: Selector, obj: KubeObject): boolean {
  return matchesLabels(sel.labels, obj.metadata.labels) && matchesFields(sel.fields, obj);
}
