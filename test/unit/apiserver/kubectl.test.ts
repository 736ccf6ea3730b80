/**
 * A stock kubectl against the development API server. kubectl comes from the machine's image
 * (Google Cloud SDK's `kubectl` package) or Debian's `kubernetes-client` package
 * (`apt-get install kubernetes-client`); without either binary this file is skipped, saying so.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Started, startServer } from './helpers.ts';

const run = promisify(execFile);
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!hasKubectl) {
  console.warn(
    'kubectl not found: skipping the kubectl smoke test (apt-get install kubernetes-client provides one)',
  );
}

let s: Started;
let dir: string;

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(
    'kubectl',
    [`--kubeconfig=${join(dir, 'kubeconfig')}`, `--cache-dir=${join(dir, 'cache')}`, ...args],
    {
      timeout: 20_000,
    },
  );
  return stdout;
}

async function kubectlFails(...args: string[]): Promise<string> {
  try {
    await kubectl(...args);
  } catch (e) {
    return String((e as { stderr?: string }).stderr);
  }
  throw new Error(`kubectl ${args.join(' ')} succeeded`);
}

const MANIFEST = `
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
ports:
- {name: http, port: 8080, protocol: TCP}
`;

describe.skipIf(!hasKubectl)('kubectl against the development API server', () => {
  beforeAll(async () => {
    s = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'apiserver-kubectl-'));
    await s.server.writeKubeconfig(join(dir, 'kubeconfig'));
    await writeFile(join(dir, 'web.yaml'), MANIFEST);
  });
  afterAll(async () => {
    await s?.server.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists namespaces by short name', async () => {
    const out = await kubectl('get', 'ns', '-o', 'name');
    expect(out.trim().split('\n')).toEqual([
      'namespace/default',
      'namespace/kube-public',
      'namespace/kube-system',
    ]);
  });

  it('applies a manifest with default validation, then shows server-side columns', async () => {
    const applied = await kubectl('apply', '-f', join(dir, 'web.yaml'));
    expect(applied).toContain('service/web created');
    expect(applied).toContain('endpointslice.discovery.k8s.io/web-1 created');
    const table = await kubectl('get', 'svc', 'web');
    expect(table).toMatch(/^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE/);
    expect(table).toMatch(/web\s+NodePort\s+10\.96\.0\.1\s+<none>\s+80:30000\/TCP,53:30001\/UDP/);
    const slice = JSON.parse(await kubectl('get', 'endpointslices', 'web-1', '-o', 'json'));
    expect(slice.endpoints[0].addresses).toEqual(['10.1.0.5']);
  });

  it('re-applies a changed manifest as a strategic merge patch that keeps allocations', async () => {
    await writeFile(join(dir, 'web.yaml'), MANIFEST.replace('targetPort: 8080', 'targetPort: 9090'));
    expect(await kubectl('apply', '-f', join(dir, 'web.yaml'))).toContain('service/web configured');
    const spec = JSON.parse(await kubectl('get', 'svc', 'web', '-o', 'json')).spec;
    expect(
      spec.ports.map((p: { targetPort: number; nodePort: number }) => [p.targetPort, p.nodePort]),
    ).toEqual([
      [9090, 30000],
      [53, 30001],
    ]);
  });

  it('labels, selects, patches, and deletes', async () => {
    await kubectl('label', 'svc', 'web', 'tier=frontend');
    expect((await kubectl('get', 'svc', '-l', 'tier=frontend', '-o', 'name')).trim()).toBe('service/web');
    expect((await kubectl('get', 'svc', '-l', 'tier!=frontend', '-o', 'name')).trim()).toBe('');
    await kubectl('patch', 'svc', 'web', '--type=merge', '-p', '{"spec":{"sessionAffinity":"ClientIP"}}');
    const spec = JSON.parse(await kubectl('get', 'svc', 'web', '-o', 'json')).spec;
    expect(spec.sessionAffinityConfig).toEqual({ clientIP: { timeoutSeconds: 10800 } });
    await kubectl(
      'patch',
      'svc',
      'web',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/sessionAffinity","value":"None"}]',
    );
    expect(await kubectl('delete', '-f', join(dir, 'web.yaml'))).toContain('service "web" deleted');
    expect(await kubectl('get', 'svc', '-o', 'name')).toBe('');
  });

  it('prints the server validation error for an invalid Service', async () => {
    const bad = MANIFEST.split('---')[0]!.replace('port: 80,', 'port: 80000,');
    await writeFile(join(dir, 'bad.yaml'), bad);
    const err = await kubectlFails('apply', '-f', join(dir, 'bad.yaml'));
    expect(err).toContain('spec.ports[0].port: Invalid value: 80000: must be between 1 and 65535, inclusive');
  });

  it('follows changes with get --watch', async () => {
    const child = execFile('kubectl', [
      `--kubeconfig=${join(dir, 'kubeconfig')}`,
      `--cache-dir=${join(dir, 'cache')}`,
      'get',
      'endpointslices',
      '--watch',
      '-o',
      'name',
    ]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      s.server.store.create('endpointslices', {
        metadata: { name: 'watched', labels: { 'kubernetes.io/service-name': 'x' } },
        addressType: 'IPv4',
        endpoints: [],
        ports: [],
      });
      const deadline = Date.now() + 10_000;
      while (!out.includes('endpointslice.discovery.k8s.io/watched') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).toContain('endpointslice.discovery.k8s.io/watched');
    } finally {
      child.kill();
    }
  });
});
