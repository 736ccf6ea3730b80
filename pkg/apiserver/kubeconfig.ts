/**
 * The kubeconfig for the development API server: one cluster, one context, a user with no
 * credentials (the server has no authentication), default namespace `default`. The server speaks
 * plain HTTP, hence `server: http://...`.
 */

export const KUBECONFIG_NAME = 'kube-proxy-ts-dev';

/** YAML text of a kubeconfig pointing at `serverUrl` (e.g. http://127.0.0.1:41234). */
export function renderKubeconfig(serverUrl: string, name = KUBECONFIG_NAME): string {
  // JSON strings are valid YAML scalars, which keeps any URL safe to embed.
  const q = (s: string) => JSON.stringify(s);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${q(name)}`,
    '  cluster:',
    `    server: ${q(serverUrl)}`,
    // There is no TLS at all; @kubernetes/client-node 2.x refuses a plain http:// server unless
    // this is set, and kubectl ignores it for http.
    '    insecure-skip-tls-verify: true',
    'contexts:',
    `- name: ${q(name)}`,
    '  context:',
    `    cluster: ${q(name)}`,
    `    user: ${q(name)}`,
    '    namespace: default',
    `current-context: ${q(name)}`,
    'users:',
    `- name: ${q(name)}`,
    '  user: {}',
    'preferences: {}',
    '',
  ].join('\n');
}
