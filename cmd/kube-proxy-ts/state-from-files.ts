/**
 * Cluster state for `render` and `trace`: Services, EndpointSlices and Nodes read from YAML or
 * JSON files (or listed once from the API server), validated at the boundary exactly as the
 * informers validate them, then turned into the proxier's maps by the same change trackers the
 * daemon runs. Nothing here touches the node.
 */
import { readFile } from 'node:fs/promises';
import { type KubeConfig, loadAllYaml } from '@kubernetes/client-node';
import type { z } from 'zod';
import {
  ENDPOINT_SLICES_PATH,
  NODES_PATH,
  PROXY_LABEL_SELECTOR,
  SERVICES_PATH,
} from '../../pkg/k8s/informers.ts';
import { createListWatcher } from '../../pkg/k8s/listwatch.ts';
import {
  type EndpointSlice,
  endpointSliceSchema,
  formatIssues,
  HEADLESS_LABEL,
  type Node,
  nodeSchema,
  SERVICE_PROXY_NAME_LABEL,
  type Service,
  serviceSchema,
} from '../../pkg/k8s/schemas.ts';
import { type IPFamily, parseIP } from '../../pkg/net/ip.ts';
import { createEndpointsChangeTracker } from '../../proxier/endpointschangetracker.ts';
import { createEndpointsMap } from '../../proxier/endpointsmap.ts';
import type { RenderState } from '../../proxier/render.ts';
import { createServiceChangeTracker } from '../../proxier/servicechangetracker.ts';
import { createServiceMap } from '../../proxier/servicemap.ts';

export interface ClusterObjects {
  readonly services: Service[];
  readonly slices: EndpointSlice[];
  readonly nodes: Node[];
}

export interface ReadOutcome {
  readonly objects: ClusterObjects;
  /** Lines for stderr: ignored kinds, invalid objects (with file, namespace/name and reasons). */
  readonly notes: string[];
  /** How many objects failed validation and were skipped. */
  readonly invalid: number;
}

export function emptyObjects(): ClusterObjects {
  return { services: [], slices: [], nodes: [] };
}

type Kind = 'Service' | 'EndpointSlice' | 'Node';

const SCHEMAS: Readonly<Record<Kind, z.ZodType>> = {
  Service: serviceSchema,
  EndpointSlice: endpointSliceSchema,
  Node: nodeSchema,
};

/** Kinds of typed lists whose items carry no `kind` of their own (as the API server sends them). */
const TYPED_LISTS: Readonly<Record<string, Kind>> = {
  ServiceList: 'Service',
  EndpointSliceList: 'EndpointSlice',
  NodeList: 'Node',
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nameOf(obj: Record<string, unknown>): string {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
  const name = typeof meta.name === 'string' ? meta.name : '(no name)';
  return `${ns}${name}`;
}

/**
 * The label selector the informers send (upstream's): objects another proxy owns, and headless
 * Services' slices, are not ours.
 */
function excludedByLabels(obj: Record<string, unknown>): string | undefined {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const labels = isRecord(meta.labels) ? meta.labels : {};
  for (const l of [SERVICE_PROXY_NAME_LABEL, HEADLESS_LABEL]) if (l in labels) return l;
  return undefined;
}

/** Sorts parsed documents into `into`; returns notes and the number of invalid objects. */
export function collectObjects(
  docs: readonly unknown[],
  source: string,
  into: ClusterObjects,
  expectKind?: Kind,
): { notes: string[]; invalid: number } {
  const notes: string[] = [];
  let invalid = 0;
  docs.forEach((doc, i) => {
    if (doc === null || doc === undefined) return;
    if (!isRecord(doc)) {
      notes.push(`${source}: document ${i + 1} is not an object; ignored`);
      return;
    }
    const kind = typeof doc.kind === 'string' ? doc.kind : expectKind;
    if (kind === 'List' || (kind !== undefined && kind in TYPED_LISTS)) {
      if (!Array.isArray(doc.items)) {
        notes.push(`${source}: ${kind} without items; ignored`);
        return;
      }
      const sub = collectObjects(doc.items, source, into, TYPED_LISTS[kind]);
      notes.push(...sub.notes);
      invalid += sub.invalid;
      return;
    }
    if (kind !== 'Service' && kind !== 'EndpointSlice' && kind !== 'Node') {
      notes.push(`${source}: ignoring ${kind ?? 'an object without kind'} ${nameOf(doc)}`);
      return;
    }
    const excluded = excludedByLabels(doc);
    if (excluded !== undefined && kind !== 'Node') {
      notes.push(
        `${source}: ignoring ${kind} ${nameOf(doc)}: labelled ${excluded}, as the proxy's informers do`,
      );
      return;
    }
    const parsed = SCHEMAS[kind].safeParse(doc);
    if (!parsed.success) {
      invalid++;
      notes.push(`${source}: invalid ${kind} ${nameOf(doc)}: ${formatIssues(parsed.error)}; skipped`);
      return;
    }
    if (kind === 'Service') into.services.push(parsed.data as Service);
    else if (kind === 'EndpointSlice') into.slices.push(parsed.data as EndpointSlice);
    else into.nodes.push(parsed.data as Node);
  });
  return { notes, invalid };
}

/** A document holding nothing but blanks and comments (a trailing `---` makes one). */
function isEmptyDocument(doc: string): boolean {
  return doc.split('\n').every((l) => l.trim() === '' || l.trim().startsWith('#'));
}

/**
 * The documents of a YAML (or JSON) text. client-node's loadAllYaml fails on an empty document,
 * so those are dropped first; Date values it makes from timestamps go back to the API's strings.
 */
export function parseDocuments(text: string): unknown[] {
  const parts = text.split(/^---[ \t]*$/m).filter((d) => !isEmptyDocument(d));
  if (parts.length === 0) return [];
  const docs = loadAllYaml(parts.join('\n---\n')) as unknown[];
  return JSON.parse(JSON.stringify(docs)) as unknown[];
}

/** Reads files (`-` is stdin) of Services, EndpointSlices and Nodes, plain or in Lists. */
export async function readObjectFiles(
  paths: readonly string[],
  readText: (path: string) => Promise<string> = (p) => readFile(p, 'utf8'),
): Promise<ReadOutcome> {
  const objects = emptyObjects();
  const notes: string[] = [];
  let invalid = 0;
  for (const path of paths) {
    let docs: unknown[];
    try {
      docs = parseDocuments(await readText(path));
    } catch (err) {
      throw new StateInputError(
        path,
        err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err),
      );
    }
    const r = collectObjects(docs, path, objects);
    notes.push(...r.notes);
    invalid += r.invalid;
  }
  return { objects, notes, invalid };
}

/** A file that cannot be read or parsed at all. */
export class StateInputError extends Error {
  readonly code = 'unreadable-input';
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`cannot read ${path}: ${reason}`);
    this.name = 'StateInputError';
    this.path = path;
  }
}

/**
 * One LIST of Services, EndpointSlices and this node from the API server, with the informers'
 * selectors, validated the same way.
 */
export async function readObjectsFromAPI(
  kc: KubeConfig,
  nodeName: string,
  signal: AbortSignal,
): Promise<ReadOutcome> {
  const objects = emptyObjects();
  const notes: string[] = [];
  let invalid = 0;
  const lists: [string, Kind, { labelSelector?: string; fieldSelector?: string }][] = [
    [SERVICES_PATH, 'Service', { labelSelector: PROXY_LABEL_SELECTOR }],
    [ENDPOINT_SLICES_PATH, 'EndpointSlice', { labelSelector: PROXY_LABEL_SELECTOR }],
    [NODES_PATH, 'Node', { fieldSelector: `metadata.name=${nodeName}` }],
  ];
  for (const [path, kind, query] of lists) {
    const lw = createListWatcher(kc, path);
    let cont: string | undefined;
    do {
      const page = await lw.list({ ...query, limit: 500, continue: cont }, signal);
      const r = collectObjects(page.items, path, objects, kind);
      notes.push(...r.notes);
      invalid += r.invalid;
      cont = page.continue;
    } while (cont !== undefined);
  }
  return { objects, notes, invalid };
}

/**
 * The proxier's maps for one family, built by feeding every object to the change trackers and
 * applying them, as the daemon's first sync does. Later duplicates of an object win.
 */
export function stateFromObjects(objects: ClusterObjects, family: IPFamily, nodeName: string): RenderState {
  const serviceChanges = createServiceChangeTracker(family);
  const seen = new Map<string, Service>();
  for (const svc of objects.services) {
    const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
    serviceChanges.update(seen.get(key), svc);
    seen.set(key, svc);
  }
  const services = createServiceMap();
  services.update(serviceChanges);

  const endpointChanges = createEndpointsChangeTracker({ family, nodeName });
  for (const slice of objects.slices) endpointChanges.endpointSliceUpdate(slice, false);
  const endpoints = createEndpointsMap();
  endpoints.update(endpointChanges);
  return { services: services.ports, endpoints: endpoints.endpoints };
}

/** IP families the objects use (cluster IPs and slice address types), IPv4 first. */
export function familiesOf(objects: ClusterObjects): IPFamily[] {
  const seen = new Set<IPFamily>();
  for (const svc of objects.services) {
    for (const ip of [svc.spec.clusterIP, ...(svc.spec.clusterIPs ?? [])]) {
      const parsed = ip === undefined ? undefined : parseIP(ip);
      if (parsed) seen.add(parsed.family);
    }
  }
  for (const s of objects.slices) if (s.addressType !== 'FQDN') seen.add(s.addressType);
  return (['IPv4', 'IPv6'] as const).filter((f) => seen.has(f));
}
