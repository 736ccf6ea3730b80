/**
 * The client library the proxy uses, unchanged, against the development API server: typed
 * CoreV1Api/DiscoveryV1Api calls, and makeInformer's list+watch, including its resume after a
 * dropped watch and its relist after 410.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ADD,
  CoreV1Api,
  DELETE,
  DiscoveryV1Api,
  KubeConfig,
  makeInformer,
  UPDATE,
  type V1EndpointSlice,
  type V1Service,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Started, slice, startServer, svc } from './helpers.ts';

let s: Started;
let dir: string;
let kc: KubeConfig;

beforeAll(async () => {
  s = await startServer();
  dir = await mkdtemp(join(tmpdir(), 'apiserver-test-'));
  await s.server.writeKubeconfig(join(dir, 'kubeconfig'));
  kc = new KubeConfig();
  kc.loadFromFile(join(dir, 'kubeconfig'));
});

afterAll(async () => {
  await s.server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Polls `cond` until it holds or `ms` pass. */
async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('@kubernetes/client-node against the development API server', () => {
  it('reads the written kubeconfig', () => {
    expect(kc.getCurrentCluster()?.server).toBe(s.url);
    expect(kc.getCurrentContext()).toBe('kube-proxy-ts-dev');
  });

  it('creates, reads, lists, patches and deletes through CoreV1Api and DiscoveryV1Api', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const disc = kc.makeApiClient(DiscoveryV1Api);
    const created = await core.createNamespacedService({
      namespace: 'default',
      body: svc('typed', { type: 'NodePort' }) as V1Service,
    });
    expect(created.spec?.clusterIP).toMatch(/^10\.96\./);
    expect(created.spec?.ports?.[0]?.nodePort).toBeGreaterThanOrEqual(30000);
    const read = await core.readNamespacedService({ name: 'typed', namespace: 'default' });
    expect(read.metadata?.uid).toBe(created.metadata?.uid);
    const list = await core.listServiceForAllNamespaces();
    expect(list.items.map((i) => i.metadata?.name)).toContain('typed');
    expect(list.metadata?.resourceVersion).toBe(s.server.store.resourceVersion());

    await disc.createNamespacedEndpointSlice({
      namespace: 'default',
      body: slice('typed-1', 'typed', ['10.1.0.1']) as V1EndpointSlice,
    });
    const slices = await disc.listEndpointSliceForAllNamespaces({
      labelSelector: 'kubernetes.io/service-name=typed',
    });
    expect(slices.items.map((i) => i.endpoints?.[0]?.addresses)).toEqual([['10.1.0.1']]);

    const nodes = await core.listNode();
    expect(nodes.items).toEqual([]);
    const ns = await core.listNamespace();
    expect(ns.items.map((n) => n.metadata?.name)).toEqual(['default', 'kube-public', 'kube-system']);

    const err = await core
      .readNamespacedService({ name: 'missing', namespace: 'default' })
      .catch((e: unknown) => e);
    expect((err as { code?: number }).code).toBe(404);

    await core.deleteNamespacedService({ name: 'typed', namespace: 'default' });
    await disc.deleteNamespacedEndpointSlice({ name: 'typed-1', namespace: 'default' });
  });

  it('runs makeInformer: initial list, then watch events, resuming after dropped watches and relisting after 410', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    s.server.store.create('services', svc('before'));
    const informer = makeInformer<V1Service>(kc, '/api/v1/services', () =>
      core.listServiceForAllNamespaces(),
    );
    const seen: string[] = [];
    informer.on(ADD, (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on(UPDATE, (o) =>
      seen.push(`update ${o.metadata?.name} ${JSON.stringify(o.metadata?.labels ?? {})}`),
    );
    informer.on(DELETE, (o) => seen.push(`delete ${o.metadata?.name}`));
    const errors: unknown[] = [];
    informer.on('error', (e) => errors.push(e));
    await informer.start();
    try {
      await eventually(() => seen.includes('add before'));

      s.server.store.create('services', svc('live'));
      s.server.store.patch('services', 'default', 'live', 'merge', { metadata: { labels: { v: '1' } } });
      s.server.store.delete('services', 'default', 'before');
      await eventually(() => seen.length >= 4);
      expect(seen).toEqual(['add before', 'add live', 'update live {"v":"1"}', 'delete before']);

      // A cleanly ended watch is resumed from the last version: nothing is replayed twice.
      s.server.dropWatches();
      s.server.store.create('services', svc('after-drop'));
      await eventually(() => seen.includes('add after-drop'));
      expect(seen.filter((e) => e === 'add live')).toHaveLength(1);

      // After compaction the resumed watch gets 410; the informer relists and catches up.
      s.server.compactHistory();
      s.server.dropWatches();
      s.server.store.create('services', svc('after-compaction'));
      s.server.store.delete('services', 'default', 'live');
      await eventually(() => seen.includes('add after-compaction') && seen.includes('delete live'), 8000);
      expect(
        informer
          .list()
          .map((o) => o.metadata?.name)
          .sort(),
      ).toEqual(['after-compaction', 'after-drop']);
      expect(errors).toEqual([]);
    } finally {
      await informer.stop();
    }
  });
});
