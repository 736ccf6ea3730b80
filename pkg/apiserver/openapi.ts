/**
 * A minimal OpenAPI v3 surface, enough for `kubectl`'s default `--validate=strict`: kubectl
 * reads /openapi/v3, then the group/version document, and looks for a PATCH operation tagged
 * with the kind's x-kubernetes-group-version-kind that takes a `fieldValidation` query
 * parameter (kubectl's queryParamVerifierV3). Finding one, it leaves validation to the server
 * instead of downloading full schemas. We accept `fieldValidation` and do not reject unknown
 * fields: this is a development server, and kube-proxy ignores fields it does not know anyway.
 * /openapi/v2 stays a 404 (kubectl only falls back to it when v3 is missing).
 */
import { type GroupVersion, groupVersions, resourcesOf } from './resources.ts';

const gvPath = (gv: GroupVersion) => (gv.group ? `apis/${gv.group}/${gv.version}` : `api/${gv.version}`);

export function openAPIV3Root(): Record<string, unknown> {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of groupVersions()) paths[gvPath(gv)] = { serverRelativeURL: `/openapi/v3/${gvPath(gv)}` };
  return { paths };
}

/** The document for `api/v1` or `apis/<group>/<version>`; undefined when not served. */
export function openAPIV3Document(path: string): Record<string, unknown> | undefined {
  const gv = groupVersions().find((g) => gvPath(g) === path);
  if (!gv) return undefined;
  const paths: Record<string, unknown> = {};
  for (const r of resourcesOf(gv)) {
    const prefix = `/${gvPath(gv)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.name}/{name}`;
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    paths[prefix] = {
      patch: {
        operationId: `patch${r.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({
          name,
          in: 'query',
          schema: { type: 'string' },
        })),
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (kube-proxy-ts development API server)', version: 'v1.32.0' },
    paths,
    components: { schemas: {} },
  };
}
