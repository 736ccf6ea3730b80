import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeConfigError } from '../../../pkg/k8s/errors.ts';
import { serviceInformer } from '../../../pkg/k8s/informers.ts';
import { describeKubeConfig, loadKubeConfig } from '../../../pkg/k8s/kubeconfig.ts';
import { FakeApiServer } from '../../support/fake-apiserver.ts';
import { fastDelay, recorder, service } from './helpers.ts';

let dir: string;
let kubeconfigPath: string;
const SECRET = 'secret-token-do-not-log';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kpt-kubeconfig-'));
  kubeconfigPath = join(dir, 'config');
  writeFileSync(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: prod',
      '  cluster:',
      '    server: https://10.0.0.1:6443',
      '    certificate-authority-data: Y2E=',
      'users:',
      '- name: proxy',
      '  user:',
      `    token: ${SECRET}`,
      'contexts:',
      '- name: main',
      '  context: {cluster: prod, user: proxy}',
      'current-context: main',
      '',
    ].join('\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadKubeConfig', () => {
  it('loads a kubeconfig file', () => {
    const kc = loadKubeConfig({ kubeconfig: kubeconfigPath });
    expect(kc.getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
    expect(kc.getCurrentUser()?.token).toBe(SECRET);
  });

  it('lets --master replace the server and keeps the credentials and CA', () => {
    const kc = loadKubeConfig({ kubeconfig: kubeconfigPath, master: 'https://api.example:443' });
    expect(kc.getCurrentCluster()?.server).toBe('https://api.example:443');
    expect(kc.getCurrentCluster()?.caData).toBe('Y2E=');
    expect(kc.getCurrentUser()?.token).toBe(SECRET);
  });

  it('with --master only, talks to that URL without credentials', () => {
    const kc = loadKubeConfig({ master: 'http://127.0.0.1:8080', env: {} });
    expect(kc.getCurrentCluster()?.server).toBe('http://127.0.0.1:8080');
    expect(describeKubeConfig(kc).auth).toBe('none');
  });

  it('uses the in-cluster service account when there is no kubeconfig, with --master overriding', () => {
    const root = join(dir, 'root');
    const sa = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), SECRET);
    writeFileSync(join(sa, 'ca.crt'), 'not really a CA');
    const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };
    const kc = loadKubeConfig({ serviceAccountRoot: root, env });
    expect(kc.getCurrentCluster()?.server).toBe('https://[fd00::1]:443');
    expect(kc.getCurrentCluster()?.caFile).toBe(join(sa, 'ca.crt'));
    expect(describeKubeConfig(kc).auth).toBe('tokenFile');
    const overridden = loadKubeConfig({ serviceAccountRoot: root, env, master: 'https://lb.example:6443' });
    expect(overridden.getCurrentCluster()?.server).toBe('https://lb.example:6443');
    expect(describeKubeConfig(overridden).auth).toBe('tokenFile');
  });

  it('fails clearly when there is nothing to load', () => {
    const attempt = () => loadKubeConfig({ env: {}, serviceAccountRoot: join(dir, 'nowhere') });
    expect(attempt).toThrow(KubeConfigError);
    expect(attempt).toThrow(/no kubeconfig file or master URL given, and not running in a cluster/);
    try {
      attempt();
    } catch (e) {
      expect((e as KubeConfigError).code).toBe('NO_KUBECONFIG');
    }
    // Service host set but no token mounted: still not in a cluster.
    expect(() =>
      loadKubeConfig({
        env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' },
        serviceAccountRoot: join(dir, 'nowhere'),
      }),
    ).toThrow(expect.objectContaining({ code: 'NO_KUBECONFIG' }));
  });

  it('reports a missing file, a broken file and a bad --master with distinct codes', () => {
    expect(() => loadKubeConfig({ kubeconfig: join(dir, 'absent') })).toThrow(
      expect.objectContaining({ code: 'KUBECONFIG_NOT_FOUND' }),
    );
    const broken = join(dir, 'broken');
    writeFileSync(broken, 'clusters: [: not yaml');
    expect(() => loadKubeConfig({ kubeconfig: broken })).toThrow(
      expect.objectContaining({ code: 'KUBECONFIG_INVALID' }),
    );
    expect(() => loadKubeConfig({ kubeconfig: kubeconfigPath, master: 'not a url' })).toThrow(
      expect.objectContaining({ code: 'KUBECONFIG_INVALID' }),
    );
  });

  it('describeKubeConfig never exposes the token', () => {
    const d = describeKubeConfig(loadKubeConfig({ kubeconfig: kubeconfigPath }));
    expect(d).toEqual({ server: 'https://10.0.0.1:6443', context: 'main', user: 'proxy', auth: 'token' });
    expect(JSON.stringify(d)).not.toContain(SECRET);
  });

  it('an informer built from a kubeconfig file reaches the server named by --master, with the file token', async () => {
    const fake = await FakeApiServer.start();
    try {
      fake.add('services', service('ns', 'a'));
      const kc = loadKubeConfig({ kubeconfig: kubeconfigPath, master: fake.url });
      const rec = recorder();
      const inf = serviceInformer(kc, rec.handlers, { delay: fastDelay().delay });
      await inf.start();
      inf.stop();
      expect(rec.events.map((e) => e.split(' ').slice(0, 2).join(' '))).toEqual(['add ns/a', 'synced']);
      expect(fake.requests[0]?.authorization).toBe(`Bearer ${SECRET}`);
    } finally {
      await fake.close();
    }
  });
});
