/**
 * Building the API client configuration the way upstream kube-proxy does (cmd/kube-proxy
 * `createClient`, which uses client-go's `clientcmd` with `ConfigOverrides.ClusterInfo.Server`):
 *
 * - `--kubeconfig` given: load that file; `--master`, when also given, replaces the server URL of
 *   the current cluster and keeps its credentials and CA.
 * - no kubeconfig, but running in a pod (KUBERNETES_SERVICE_HOST/PORT set and a service-account
 *   token mounted): the in-cluster configuration, with `--master` replacing the server URL.
 * - only `--master`: that URL with no credentials (typically a local insecure port or a proxy).
 * - neither: a KubeConfigError with code NO_KUBECONFIG.
 *
 * Nothing here logs: a kubeconfig holds tokens and keys. `describeKubeConfig` gives the few fields
 * that are safe to print.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Cluster, KubeConfig } from '@kubernetes/client-node';
import { KubeConfigError } from './errors.ts';

export interface KubeConfigOptions {
  /** Path of a kubeconfig file (upstream `--kubeconfig` / `clientConnection.kubeconfig`). */
  readonly kubeconfig?: string | undefined;
  /** Server URL overriding the one in the kubeconfig (upstream `--master`). */
  readonly master?: string | undefined;
  /**
   * Root under which the service-account files are looked up, for tests; the real location is
   * `/var/run/secrets/kubernetes.io/serviceaccount` under `/`.
   */
  readonly serviceAccountRoot?: string;
  /** Environment to read KUBERNETES_SERVICE_HOST/PORT from; defaults to process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const SERVICE_ACCOUNT_DIR = 'var/run/secrets/kubernetes.io/serviceaccount';

export function loadKubeConfig(opts: KubeConfigOptions): KubeConfig {
  const kc = new KubeConfig();
  const master = opts.master?.trim() || undefined;
  if (master !== undefined) checkServerURL(master, '--master');

  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) {
      throw new KubeConfigError('KUBECONFIG_NOT_FOUND', `kubeconfig file ${opts.kubeconfig} does not exist`);
    }
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (err) {
      // The parser's message may quote the file; it is ours to read, but keep only its first line.
      const why = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
      throw new KubeConfigError('KUBECONFIG_INVALID', `cannot load kubeconfig ${opts.kubeconfig}: ${why}`, {
        cause: err,
      });
    }
  } else if (inClusterPossible(opts)) {
    // client-node's in-cluster loader reads the token file on each request, so rotated
    // bound service-account tokens keep working.
    kc.loadFromCluster(opts.serviceAccountRoot ?? '');
    // client-go's rest.InClusterConfig always speaks https, whereas client-node picks http for
    // ports 80/8080/8001; follow upstream (and honour an injected environment).
    overrideServer(kc, inClusterServer(opts.env ?? process.env));
  } else if (master !== undefined) {
    kc.loadFromClusterAndUser(
      { name: 'master', server: master, skipTLSVerify: new URL(master).protocol === 'http:' },
      { name: 'anonymous' },
    );
  } else {
    throw new KubeConfigError(
      'NO_KUBECONFIG',
      'no kubeconfig file or master URL given, and not running in a cluster ' +
        '(KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset or no service-account token)',
    );
  }

  if (master !== undefined) overrideServer(kc, master);

  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new KubeConfigError('KUBECONFIG_INVALID', 'the kubeconfig has no current context or cluster');
  }
  checkServerURL(cluster.server, 'the cluster server');
  return kc;
}

/** Fields of a KubeConfig that are safe to log: never tokens, passwords, keys or certificates. */
export function describeKubeConfig(kc: KubeConfig): {
  server: string | undefined;
  context: string;
  user: string | undefined;
  auth: 'token' | 'tokenFile' | 'clientCertificate' | 'basic' | 'exec' | 'authProvider' | 'none';
} {
  const user = kc.getCurrentUser();
  let auth: ReturnType<typeof describeKubeConfig>['auth'] = 'none';
  if (user?.token) auth = 'token';
  else if (user?.authProvider?.name === 'tokenFile') auth = 'tokenFile';
  else if (user?.authProvider) auth = 'authProvider';
  else if (user?.exec) auth = 'exec';
  else if (user?.certData || user?.certFile) auth = 'clientCertificate';
  else if (user?.username) auth = 'basic';
  return { server: kc.getCurrentCluster()?.server, context: kc.getCurrentContext(), user: user?.name, auth };
}

function inClusterPossible(opts: KubeConfigOptions): boolean {
  const env = opts.env ?? process.env;
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) return false;
  return existsSync(join(opts.serviceAccountRoot ?? '/', SERVICE_ACCOUNT_DIR, 'token'));
}

function inClusterServer(env: Readonly<Record<string, string | undefined>>): string {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '';
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Replaces the server of the current context's cluster, keeping CA and credentials. */
function overrideServer(kc: KubeConfig, server: string): void {
  const current = kc.getCurrentCluster();
  if (current === null) {
    throw new KubeConfigError('KUBECONFIG_INVALID', 'the kubeconfig has no current context or cluster');
  }
  // client-node refuses an http server unless skipTLSVerify is set; there is no TLS to verify on
  // http, and upstream's --master accepts http URLs (an insecure local port, a kubectl proxy).
  const plain = new URL(server).protocol === 'http:';
  kc.clusters = kc.clusters.map(
    (c): Cluster =>
      c.name === current.name ? { ...c, server, ...(plain ? { skipTLSVerify: true } : {}) } : c,
  );
}

function checkServerURL(server: string, what: string): void {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeConfigError('KUBECONFIG_INVALID', `${what} "${server}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new KubeConfigError('KUBECONFIG_INVALID', `${what} "${server}" must be an http or https URL`);
  }
}
