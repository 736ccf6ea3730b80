/**
 * Server-side printing (meta.k8s.io/v1 Table), what `kubectl get` asks for in its Accept header
 * so that it can show TYPE, CLUSTER-IP and PORT(S) for Services without knowing the type. The
 * columns follow upstream's printers (pkg/printers/internalversion/printers.go) for our types.
 */
import type { KubeObject, ResourceName } from './resources.ts';

export const TABLE_MEDIA = 'application/json;as=Table;v=v1;g=meta.k8s.io';

export function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return params.includes('as=Table') && params.includes('g=meta.k8s.io') && params.includes('v=v1');
  });
}

interface Column {
  readonly name: string;
  readonly type: 'string' | 'integer';
  readonly priority: number;
  readonly cell: (o: KubeObject, now: Date) => string | number;
}

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Upstream's duration.HumanDuration, shortened to the forms kubectl shows most. */
export function humanAge(from: string | undefined, now: Date): string {
  if (!from) return '<unknown>';
  const s = Math.max(0, Math.floor((now.getTime() - Date.parse(from)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  return d < 8 ? `${d}d${h % 24 ? `${h % 24}h` : ''}` : `${d}d`;
}

const name: Column = { name: 'Name', type: 'string', priority: 0, cell: (o) => o.metadata.name ?? '' };
const age: Column = {
  name: 'Age',
  type: 'string',
  priority: 0,
  cell: (o, now) => humanAge(o.metadata.creationTimestamp, now),
};

function servicePorts(o: KubeObject): string {
  const ports = arr(rec(o.spec).ports).map(rec);
  if (ports.length === 0) return '<none>';
  return ports
    .map(
      (p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ''}/${String(p.protocol ?? 'TCP')}`,
    )
    .join(',');
}

function externalIP(o: KubeObject): string {
  const spec = rec(o.spec);
  const ext = arr(spec.externalIPs).map(String);
  if (spec.type === 'ExternalName') return String(spec.externalName ?? '');
  if (spec.type === 'LoadBalancer') {
    const ing = arr(rec(rec(o.status).loadBalancer).ingress).map((i) =>
      String(rec(i).ip ?? rec(i).hostname ?? ''),
    );
    const all = [...ing, ...ext].filter((x) => x);
    return all.length > 0 ? all.join(',') : '<pending>';
  }
  return ext.length > 0 ? ext.join(',') : '<none>';
}

function nodeStatus(o: KubeObject): string {
  const ready = arr(rec(o.status).conditions)
    .map(rec)
    .find((c) => c.type === 'Ready');
  const base = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
  return rec(o.spec).unschedulable ? `${base},SchedulingDisabled` : base;
}

function sliceEndpoints(o: KubeObject): string {
  const addrs = arr(o.endpoints).flatMap((e) => arr(rec(e).addresses).map(String));
  if (addrs.length === 0) return '<unset>';
  const shown = addrs.slice(0, 3).join(',');
  return addrs.length > 3 ? `${shown} + ${addrs.length - 3} more...` : shown;
}

const COLUMNS: Readonly<Record<ResourceName, readonly Column[]>> = {
  namespaces: [
    name,
    { name: 'Status', type: 'string', priority: 0, cell: (o) => String(rec(o.status).phase ?? '') },
    age,
  ],
  nodes: [
    name,
    { name: 'Status', type: 'string', priority: 0, cell: nodeStatus },
    { name: 'Age', type: 'string', priority: 0, cell: age.cell },
    {
      name: 'Internal-IP',
      type: 'string',
      priority: 1,
      cell: (o) =>
        String(
          arr(rec(o.status).addresses)
            .map(rec)
            .find((a) => a.type === 'InternalIP')?.address ?? '<none>',
        ),
    },
  ],
  services: [
    name,
    { name: 'Type', type: 'string', priority: 0, cell: (o) => String(rec(o.spec).type ?? '') },
    {
      name: 'Cluster-IP',
      type: 'string',
      priority: 0,
      cell: (o) => arr(rec(o.spec).clusterIPs).map(String).join(',') || '<none>',
    },
    { name: 'External-IP', type: 'string', priority: 0, cell: externalIP },
    { name: 'Port(s)', type: 'string', priority: 0, cell: servicePorts },
    age,
    {
      name: 'Selector',
      type: 'string',
      priority: 1,
      cell: (o) => {
        const sel = Object.entries(rec(rec(o.spec).selector));
        return sel.length > 0 ? sel.map(([k, v]) => `${k}=${String(v)}`).join(',') : '<none>';
      },
    },
  ],
  endpointslices: [
    name,
    { name: 'AddressType', type: 'string', priority: 0, cell: (o) => String(o.addressType ?? '') },
    {
      name: 'Ports',
      type: 'string',
      priority: 0,
      cell: (o) =>
        arr(o.ports)
          .map((p) => String(rec(p).port ?? '<unset>'))
          .join(',') || '<unset>',
    },
    { name: 'Endpoints', type: 'string', priority: 0, cell: sliceEndpoints },
    age,
  ],
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

function rowObject(o: KubeObject, include: IncludeObject): Rec | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function renderTable(
  resource: ResourceName,
  items: readonly KubeObject[],
  resourceVersion: string,
  include: IncludeObject,
  now: Date,
): Rec {
  const cols = COLUMNS[resource];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: cols.map((c) => ({
      name: c.name,
      type: c.type,
      format: c === name ? 'name' : '',
      description: c.name,
      priority: c.priority,
    })),
    rows: items.map((o) => {
      const row: Rec = { cells: cols.map((c) => c.cell(o, now)) };
      const obj = rowObject(o, include);
      if (obj) row.object = obj;
      return row;
    }),
  };
}
