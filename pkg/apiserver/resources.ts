/**
 * The resource types the development API server serves, described once. Routing, discovery,
 * list kinds and error messages all read this table, so adding a type is one entry here plus a
 * strategy (strategy.ts).
 */

export type ResourceName = 'namespaces' | 'nodes' | 'services' | 'endpointslices';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  [key: string]: unknown;
}

/** Any API object as JSON: type meta, object meta, and whatever else its kind has. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export interface ResourceInfo {
  readonly name: ResourceName;
  /** '' for the core (legacy) group. */
  readonly group: string;
  readonly version: string;
  /** `v1` or `group/version`, as it appears in objects. */
  readonly apiVersion: string;
  readonly kind: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  /** Subresources served besides the main resource (PUT/PATCH/GET only). */
  readonly subresources: readonly string[];
}

/** The verbs every served type supports; discovery advertises exactly these. */
export const RESOURCE_VERBS = [
  'create',
  'delete',
  'deletecollection',
  'get',
  'list',
  'patch',
  'update',
  'watch',
] as const;
export const SUBRESOURCE_VERBS = ['get', 'patch', 'update'] as const;

export const RESOURCES: Readonly<Record<ResourceName, ResourceInfo>> = {
  namespaces: {
    name: 'namespaces',
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    kind: 'Namespace',
    singular: 'namespace',
    namespaced: false,
    shortNames: ['ns'],
    categories: [],
    subresources: ['status'],
  },
  nodes: {
    name: 'nodes',
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    kind: 'Node',
    singular: 'node',
    namespaced: false,
    shortNames: ['no'],
    categories: [],
    subresources: ['status'],
  },
  services: {
    name: 'services',
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    kind: 'Service',
    singular: 'service',
    namespaced: true,
    shortNames: ['svc'],
    categories: ['all'],
    subresources: ['status'],
  },
  endpointslices: {
    name: 'endpointslices',
    group: 'discovery.k8s.io',
    version: 'v1',
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    singular: 'endpointslice',
    namespaced: true,
    shortNames: [],
    categories: [],
    subresources: [],
  },
};

export const RESOURCE_NAMES = Object.keys(RESOURCES) as ResourceName[];

/** The API group/versions served: '' is the core group under /api. */
export interface GroupVersion {
  readonly group: string;
  readonly version: string;
}

export function groupVersions(): GroupVersion[] {
  const seen = new Map<string, GroupVersion>();
  for (const r of Object.values(RESOURCES)) seen.set(r.apiVersion, { group: r.group, version: r.version });
  return [...seen.values()];
}

export function resourcesOf(gv: GroupVersion): ResourceInfo[] {
  return Object.values(RESOURCES).filter((r) => r.group === gv.group && r.version === gv.version);
}

export function isResourceName(s: string): s is ResourceName {
  return Object.hasOwn(RESOURCES, s);
}
