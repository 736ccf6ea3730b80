/**
 * Discovery documents, built from the resource table: what `kubectl` reads to map `svc` to
 * services in v1, or `endpointslices` to discovery.k8s.io/v1, before it sends any request.
 *
 * Two forms exist. The legacy one (`/api`, `/apis`, then one APIResourceList per group/version)
 * and the aggregated one (apidiscovery.k8s.io/v2 APIGroupDiscoveryList, a single answer from
 * `/api` and `/apis`), which client-go asks for first through the Accept header and falls back
 * from when the response's Content-Type is plain JSON. We serve both.
 */
import {
  type GroupVersion,
  groupVersions,
  RESOURCE_VERBS,
  type ResourceInfo,
  resourcesOf,
  SUBRESOURCE_VERBS,
} from './resources.ts';

/** The Kubernetes version we claim: the API behaviour we model is that of this release. */
export const SERVED_VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0-kube-proxy-ts-dev' };

export function versionInfo(): Record<string, string> {
  return {
    major: SERVED_VERSION.major,
    minor: SERVED_VERSION.minor,
    gitVersion: SERVED_VERSION.gitVersion,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2024-12-11T00:00:00Z',
    goVersion: 'go1.23.0',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

export const AGGREGATED_DISCOVERY_MEDIA =
  'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

/** True when an Accept header asks for the aggregated v2 discovery form. */
export function wantsAggregatedDiscovery(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const params = part.split(';').map((p) => p.trim());
    return (
      params.includes('g=apidiscovery.k8s.io') &&
      params.includes('v=v2') &&
      params.includes('as=APIGroupDiscoveryList')
    );
  });
}

const gvString = (gv: GroupVersion) => (gv.group ? `${gv.group}/${gv.version}` : gv.version);

export function coreAPIVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

export function apiGroupList(): Record<string, unknown> {
  const groups = new Map<string, GroupVersion[]>();
  for (const gv of groupVersions()) {
    if (gv.group === '') continue;
    groups.set(gv.group, [...(groups.get(gv.group) ?? []), gv]);
  }
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups.entries()].map(([name, gvs]) => apiGroup(name, gvs)),
  };
}

function apiGroup(name: string, gvs: GroupVersion[]): Record<string, unknown> {
  const versions = gvs.map((gv) => ({ groupVersion: gvString(gv), version: gv.version }));
  return { name, versions, preferredVersion: versions[0] };
}

/** `/apis/<group>`: the APIGroup of one group, or undefined when we do not serve it. */
export function apiGroupDocument(group: string): Record<string, unknown> | undefined {
  const gvs = groupVersions().filter((gv) => gv.group === group && group !== '');
  if (gvs.length === 0) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(group, gvs) };
}

/** `/api/v1` or `/apis/<group>/<version>`: undefined when the group/version is not served. */
export function apiResourceList(gv: GroupVersion): Record<string, unknown> | undefined {
  const resources = resourcesOf(gv);
  if (resources.length === 0) return undefined;
  const entries: Record<string, unknown>[] = [];
  for (const r of resources) {
    const main: Record<string, unknown> = {
      name: r.name,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: [...RESOURCE_VERBS],
    };
    if (r.shortNames.length > 0) main.shortNames = [...r.shortNames];
    if (r.categories.length > 0) main.categories = [...r.categories];
    entries.push(main);
    for (const sub of r.subresources) {
      entries.push({
        name: `${r.name}/${sub}`,
        singularName: '',
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: [...SUBRESOURCE_VERBS],
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gvString(gv), resources: entries };
}

function discoveryResource(r: ResourceInfo): Record<string, unknown> {
  const out: Record<string, unknown> = {
    resource: r.name,
    responseKind: { group: r.group, version: r.version, kind: r.kind },
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.singular,
    verbs: [...RESOURCE_VERBS],
  };
  if (r.shortNames.length > 0) out.shortNames = [...r.shortNames];
  if (r.categories.length > 0) out.categories = [...r.categories];
  if (r.subresources.length > 0) {
    out.subresources = r.subresources.map((s) => ({
      subresource: s,
      responseKind: { group: r.group, version: r.version, kind: r.kind },
      verbs: [...SUBRESOURCE_VERBS],
    }));
  }
  return out;
}

/** Aggregated discovery for `/api` (legacy: true, the core group) or `/apis` (the others). */
export function aggregatedDiscovery(legacy: boolean): Record<string, unknown> {
  const groups = new Map<string, GroupVersion[]>();
  for (const gv of groupVersions()) {
    if ((gv.group === '') !== legacy) continue;
    groups.set(gv.group, [...(groups.get(gv.group) ?? []), gv]);
  }
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    metadata: {},
    items: [...groups.entries()].map(([name, gvs]) => ({
      metadata: { name, creationTimestamp: null },
      versions: gvs.map((gv) => ({
        version: gv.version,
        resources: resourcesOf(gv).map(discoveryResource),
        freshness: 'Current',
      })),
    })),
  };
}
