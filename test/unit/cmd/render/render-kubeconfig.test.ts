/**
 * `render --kubeconfig`: one LIST of Services, EndpointSlices and this Node from an API server
 * (the informer tests' fake), with the informers' selectors, gives the same tables as the same
 * objects read from a file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCommand } from '../../../../cmd/kube-proxy-ts/render.ts';
import { parseDocuments } from '../../../../cmd/kube-proxy-ts/state-from-files.ts';
import { FakeApiServer, type RawObject, type Resource } from '../../../support/fake-apiserver.ts';

const YAML = new URL('../../../fixtures/render/overall.yaml', import.meta.url).pathname;
const FLAGS = ['--hostname-override', 'test-node', '--cluster-cidr', '10.0.0.0/8'];
const RESOURCES: Record<string, Resource> = {
  Service: 'services',
  EndpointSlice: 'endpointslices',
  Node: 'nodes',
};

let api: FakeApiServer;
const tmp = mkdtempSync(join(tmpdir(), 'kpts-render-kc-'));
const kubeconfig = join(tmp, 'kubeconfig');

beforeAll(async () => {
  api = await FakeApiServer.start();
  for (const doc of parseDocuments(readFileSync(YAML, 'utf8')) as RawObject[]) {
    const resource = RESOURCES[String(doc.kind)];
    if (resource) api.add(resource, doc);
  }
  // Objects the informers' selectors leave out, and another node: none of them may count.
  api.add('services', {
    metadata: {
      name: 'other',
      namespace: 'ns9',
      labels: { 'service.kubernetes.io/service-proxy-name': 'x' },
    },
    spec: { clusterIP: '172.30.0.99', ports: [{ port: 80 }] },
  });
  api.add('nodes', {
    metadata: { name: 'other-node' },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.0.9' }] },
  });
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
});

afterAll(async () => {
  await api.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function render(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await renderCommand(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

describe('render --kubeconfig', () => {
  it('lists the objects once and renders what the files give', async () => {
    const fromAPI = await render(['--kubeconfig', kubeconfig, ...FLAGS]);
    expect(fromAPI.code, fromAPI.stderr).toBe(0);
    const fromFile = await render(['-f', YAML, ...FLAGS]);
    expect(fromAPI.stdout).toBe(fromFile.stdout);
    expect(fromAPI.stdout).not.toContain('ns9/other');
    expect(fromAPI.stderr).toContain('invalid Service ns7/broken');
    const services = api.listRequests('services');
    expect(services).toHaveLength(1);
    expect(services[0]!.query.get('labelSelector')).toBe(
      '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless',
    );
    expect(api.listRequests('nodes')[0]!.query.get('fieldSelector')).toBe('metadata.name=test-node');
    expect(api.watchRequests()).toHaveLength(0);
  });

  it('refuses -f together with --kubeconfig', async () => {
    const r = await render(['--kubeconfig', kubeconfig, '-f', YAML, ...FLAGS]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not both');
  });
});
