import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import {
  loadAllYaml,
  type V1ClusterRoleBinding,
  type V1ConfigMap,
  type V1Container,
  type V1DaemonSet,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../../pkg/config/file.ts';
import { type ResolvedConfig, resolveConfig } from '../../../pkg/config/resolve.ts';
import { ENDPOINT_SLICES_PATH, NODES_PATH, SERVICES_PATH } from '../../../pkg/k8s/informers.ts';
import { loadKubeConfig } from '../../../pkg/k8s/kubeconfig.ts';
import { parseDockerfile } from './dockerfile.ts';
import { inE2eScript, MANIFEST_PATH, REPO_ROOT, renderedManifest } from './e2e-script.ts';
import { rawDocuments } from './yaml.ts';

const TEXT = readFileSync(MANIFEST_PATH, 'utf8');

interface Manifest {
  readonly serviceAccount: V1ServiceAccount;
  readonly binding: V1ClusterRoleBinding;
  readonly configMap: V1ConfigMap;
  readonly daemonSet: V1DaemonSet;
  readonly container: V1Container;
}

/** The manifest through client-node's typed loader, which drops any field the API does not have. */
function parseManifest(text: string): Manifest {
  const docs = loadAllYaml(text) as { kind?: string }[];
  expect(docs.map((d) => d.kind)).toEqual(['ServiceAccount', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet']);
  const daemonSet = docs[3] as V1DaemonSet;
  const containers = daemonSet.spec?.template.spec?.containers ?? [];
  expect(containers).toHaveLength(1);
  return {
    serviceAccount: docs[0] as V1ServiceAccount,
    binding: docs[1] as V1ClusterRoleBinding,
    configMap: docs[2] as V1ConfigMap,
    daemonSet,
    container: containers[0]!,
  };
}

/** kubelet's $(VAR) expansion in args, from the container's literal and downward-API env. */
function expandArgs(c: V1Container, fieldValues: Record<string, string>): string[] {
  const vars = new Map<string, string>();
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    vars.set(e.name, e.value ?? (field !== undefined ? fieldValues[field]! : ''));
  }
  return (c.args ?? []).map((a) =>
    a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => vars.get(name) ?? whole),
  );
}

/** Reads a file from the container's filesystem as far as the manifest defines it (config map mounts). */
function containerFileReader(m: Manifest): (path: string) => string {
  return (path) => {
    for (const mount of m.container.volumeMounts ?? []) {
      if (!path.startsWith(`${mount.mountPath}/`)) continue;
      const volume = m.daemonSet.spec?.template.spec?.volumes?.find((v) => v.name === mount.name);
      if (volume?.configMap?.name !== m.configMap.metadata?.name) continue;
      const data = m.configMap.data?.[posix.relative(mount.mountPath, path)];
      if (data !== undefined) return data;
    }
    throw new Error(`ENOENT: ${path} is not in any mounted config map`);
  };
}

function resolveInPod(m: Manifest, nodeName: string): ResolvedConfig {
  const argv = expandArgs(m.container, { 'spec.nodeName': nodeName });
  const r = resolveConfig(argv, { readFile: containerFileReader(m), hostname: () => 'container-hostname' });
  if ('help' in r) throw new Error('unexpected --help');
  return r;
}

function envValue(c: V1Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

const manifest = parseManifest(TEXT);
const pod = manifest.daemonSet.spec!.template.spec!;

describe('hack/deploy/kube-proxy-ts.yaml: objects', () => {
  it('has no field the Kubernetes API would drop or reject (typed load keeps every field)', () => {
    const raw = rawDocuments(TEXT);
    const typed = loadAllYaml(TEXT);
    expect(typed).toHaveLength(raw.length);
    raw.forEach((doc, i) => {
      expect(typed[i]).toEqual(doc);
    });
  });

  it('binds the ServiceAccount to the built-in system:node-proxier ClusterRole and defines no role of its own', () => {
    expect(manifest.binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'system:node-proxier',
    });
    expect(manifest.binding.subjects).toEqual([
      {
        kind: 'ServiceAccount',
        name: manifest.serviceAccount.metadata?.name,
        namespace: manifest.serviceAccount.metadata?.namespace,
      },
    ]);
    expect(pod.serviceAccountName).toBe(manifest.serviceAccount.metadata?.name);
    expect(manifest.daemonSet.metadata?.namespace).toBe(manifest.serviceAccount.metadata?.namespace);
    expect(TEXT).not.toMatch(/^kind:\s*(Cluster)?Role\s*$/m);
  });

  it('system:node-proxier covers every collection the informers list and watch', () => {
    // Upstream's bootstrap policy for system:node-proxier
    // (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go).
    const nodeProxier = [
      { groups: [''], resources: ['services', 'endpoints'], verbs: ['list', 'watch'] },
      { groups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
      { groups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'update', 'patch'] },
      { groups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ];
    const allowed = (group: string, resource: string, verb: string) =>
      nodeProxier.some(
        (r) => r.groups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb),
      );
    for (const path of [SERVICES_PATH, ENDPOINT_SLICES_PATH, NODES_PATH]) {
      const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/([^/]+)$/.exec(path);
      expect(m, path).not.toBeNull();
      const [group, resource] = [m![1] ?? '', m![2]!];
      expect(allowed(group, resource, 'list') && allowed(group, resource, 'watch'), path).toBe(true);
    }
  });

  it('runs a privileged, host-network, node-critical pod on every node with rolling updates', () => {
    const ds = manifest.daemonSet.spec!;
    expect(ds.updateStrategy?.type).toBe('RollingUpdate');
    expect(ds.selector.matchLabels).toEqual(manifest.daemonSet.spec?.template.metadata?.labels);
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(manifest.container.securityContext?.privileged).toBe(true);
  });

  it('mounts the xtables lock read-write (FileOrCreate), /lib/modules read-only and the config map', () => {
    const mounts = new Map((manifest.container.volumeMounts ?? []).map((v) => [v.name, v]));
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    const hostPathMount = (hostPath: string) => {
      const vol = [...volumes.values()].find((v) => v.hostPath?.path === hostPath);
      expect(vol, hostPath).toBeDefined();
      return { volume: vol!, mount: mounts.get(vol!.name) };
    };
    const lock = hostPathMount('/run/xtables.lock');
    expect(lock.volume.hostPath?.type).toBe('FileOrCreate');
    expect(lock.mount?.mountPath).toBe('/run/xtables.lock');
    expect(lock.mount?.readOnly ?? false).toBe(false);
    const modules = hostPathMount('/lib/modules');
    expect(modules.mount).toMatchObject({ mountPath: '/lib/modules', readOnly: true });
    const config = [...volumes.values()].find((v) => v.configMap !== undefined);
    expect(config?.configMap?.name).toBe(manifest.configMap.metadata?.name);
    expect(mounts.get(config!.name)?.mountPath).toBe('/var/lib/kube-proxy');
  });

  it('passes the node name from spec.nodeName as --hostname-override and reads --config', () => {
    const nodeName = manifest.container.env?.find((e) => e.name === 'NODE_NAME');
    expect(nodeName?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(manifest.container.args).toEqual([
      '--config=/var/lib/kube-proxy/config.conf',
      '--hostname-override=$(NODE_NAME)',
    ]);
  });

  it('runs the image e2e.sh builds, through the Dockerfile ENTRYPOINT path', () => {
    const image = inE2eScript('printf %s "$IMAGE"');
    expect(image).toBe('kube-proxy-ts:dev');
    expect(manifest.container.image).toBe(image);
    const dockerfile = readFileSync(join(REPO_ROOT, 'hack/deploy/Dockerfile'), 'utf8');
    const runtime = parseDockerfile(dockerfile).at(-1)!;
    expect(manifest.container.command).toEqual(runtime.entrypoint);
  });
});

describe('hack/deploy/kube-proxy-ts.yaml: configuration as the pod sees it', () => {
  it('the config map holds a KubeProxyConfiguration our loader reads without warnings', () => {
    const { draft, warnings } = parseConfigFile(manifest.configMap.data!['config.conf']!);
    expect(warnings).toEqual([]);
    expect(draft).toMatchObject({ mode: 'iptables', clusterCIDRs: ['10.244.0.0/16'] });
  });

  it('resolves, with the expanded args and the mounted file, to iptables mode on the node name', () => {
    const { config, warnings, overriddenFlags } = resolveInPod(manifest, 'Kind-Worker');
    expect(warnings).toEqual([]);
    expect(overriddenFlags).toEqual([]);
    expect(config).toMatchObject({
      configFile: '/var/lib/kube-proxy/config.conf',
      proxyMode: 'iptables',
      hostnameOverride: 'kind-worker',
      hostnameOverridden: true,
      clusterCIDRs: ['10.244.0.0/16'],
      detectLocalMode: 'ClusterCIDR',
      metricsBindAddress: '0.0.0.0:10249',
      healthzBindAddress: '0.0.0.0:10256',
      iptablesBackend: 'auto',
      // No kubeconfig and no --master: the in-cluster service account is used.
      kubeconfig: undefined,
      master: undefined,
    });
  });

  it('probes /livez and /healthz on the port the daemon binds its health server to', () => {
    const { config } = resolveInPod(manifest, 'kind-worker');
    const healthzPort = Number(config.healthzBindAddress.split(':').at(-1));
    expect(manifest.container.livenessProbe?.httpGet).toEqual({ path: '/livez', port: healthzPort });
    expect(manifest.container.readinessProbe?.httpGet).toEqual({ path: '/healthz', port: healthzPort });
    expect(healthzPort).toBe(10256);
    const ports = Object.fromEntries((manifest.container.ports ?? []).map((p) => [p.name, p.containerPort]));
    expect(ports).toEqual({ healthz: 10256, metrics: Number(config.metricsBindAddress.split(':').at(-1)) });
  });
});

describe('hack/deploy/kube-proxy-ts.yaml as hack/kind/e2e.sh renders it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kpts-deploy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const rendered = parseManifest(renderedManifest('10.242.0.0/16', '172.18.0.3', '6443'));

  it('changes only clusterCIDR and the API server address', () => {
    const expected = parseManifest(TEXT);
    expected.configMap.data!['config.conf'] = expected.configMap.data!['config.conf']!.replace(
      'clusterCIDR: "10.244.0.0/16"',
      'clusterCIDR: "10.242.0.0/16"',
    );
    for (const e of expected.container.env ?? []) {
      if (e.name === 'KUBERNETES_SERVICE_HOST') e.value = '172.18.0.3';
    }
    expect(rendered).toEqual(expected);
    expect(resolveInPod(rendered, 'kind-worker').config.clusterCIDRs).toEqual(['10.242.0.0/16']);
  });

  it('points the in-cluster client at the API server directly, not at the kubernetes Service', () => {
    const saDir = join(dir, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(saDir, { recursive: true });
    writeFileSync(join(saDir, 'token'), 'token');
    writeFileSync(join(saDir, 'ca.crt'), 'ca');
    const env = {
      KUBERNETES_SERVICE_HOST: envValue(rendered.container, 'KUBERNETES_SERVICE_HOST'),
      KUBERNETES_SERVICE_PORT: envValue(rendered.container, 'KUBERNETES_SERVICE_PORT'),
    };
    const kc = loadKubeConfig({ env, serviceAccountRoot: dir });
    expect(kc.getCurrentCluster()?.server).toBe('https://172.18.0.3:6443');
  });
});
