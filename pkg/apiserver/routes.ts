/**
 * URL paths of the Kubernetes REST API, parsed into what a request is about. Pure.
 *
 *   /api/v1/<resource>[/<name>[/<subresource>]]
 *   /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]]
 *   /apis/<group>/<version>/...                       (same shapes)
 *   .../watch/...                                     (the deprecated watch prefix, same shapes)
 */
import { isResourceName, RESOURCES, type ResourceName } from './resources.ts';

export type ApiPath =
  | { readonly kind: 'groupVersion'; readonly group: string; readonly version: string }
  | {
      readonly kind: 'resource';
      readonly resource: ResourceName;
      readonly namespace: string | undefined;
      readonly name: string | undefined;
      readonly subresource: string | undefined;
      /** The path used the /watch/ prefix. */
      readonly watchPrefix: boolean;
    };

/** Parses a request path; undefined when it names nothing we serve (a 404). */
export function parseApiPath(pathname: string): ApiPath | undefined {
  const segs = pathname
    .split('/')
    .filter((s) => s !== '')
    .map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 2) {
    group = '';
    version = segs[1]!;
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 3) {
    group = segs[1]!;
    version = segs[2]!;
    rest = segs.slice(3);
  } else {
    return undefined;
  }
  if (rest.length === 0) return { kind: 'groupVersion', group, version };
  let watchPrefix = false;
  if (rest[0] === 'watch') {
    watchPrefix = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  // namespaces/<ns>/<resource>... addresses namespaced content; namespaces/<name>/status is the
  // Namespace object's own subresource.
  if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'status') {
    namespace = rest[1]!;
    rest = rest.slice(2);
  }
  const [resource, name, subresource, ...extra] = rest;
  if (!resource || !isResourceName(resource) || extra.length > 0) return undefined;
  const info = RESOURCES[resource];
  if (info.group !== group || info.version !== version) return undefined;
  if (namespace !== undefined && !info.namespaced) return undefined;
  if (subresource !== undefined && !info.subresources.includes(subresource)) return undefined;
  return { kind: 'resource', resource, namespace, name, subresource, watchPrefix };
}
