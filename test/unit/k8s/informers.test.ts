/** The three factories: paths, selectors, and what each delivers. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Informer } from '../../../pkg/k8s/informer.ts';
import { endpointSliceInformer, nodeInformer, serviceInformer } from '../../../pkg/k8s/informers.ts';
import type { EndpointSlice, Node, Service } from '../../../pkg/k8s/schemas.ts';
import { FakeApiServer } from '../../support/fake-apiserver.ts';
import { fastDelay, node, recorder, service, slice } from './helpers.ts';

const wait = (pred: () => boolean) =>
  vi.waitFor(() => expect(pred()).toBe(true), { timeout: 5000, interval: 10 });

let fake: FakeApiServer;
const running: Array<{ stop(): void }> = [];
beforeEach(async () => {
  fake = await FakeApiServer.start();
});
afterEach(async () => {
  for (const i of running.splice(0)) i.stop();
  await fake.close();
});
function track<T>(i: Informer<T>): Informer<T> {
  running.push(i);
  return i;
}

describe('endpointSliceInformer', () => {
  it('watches discovery.k8s.io/v1 slices in all namespaces with the proxy label selector', async () => {
    fake.add('endpointslices', slice('ns1', 's1', 'svc', ['10.1.0.1', '10.1.0.2']));
    const other = slice('ns2', 'other', 'svc', ['10.1.0.3']);
    other.metadata.labels = {
      'kubernetes.io/service-name': 'svc',
      'service.kubernetes.io/service-proxy-name': 'x',
    };
    fake.add('endpointslices', other);
    const rec = recorder<EndpointSlice>((s) => s.endpoints.map((e) => e.addresses[0]).join(','));
    const inf = track(endpointSliceInformer(fake.kubeConfig(), rec.handlers, { delay: fastDelay().delay }));
    await inf.start();
    expect(rec.events).toEqual(['add ns1/s1 10.1.0.1,10.1.0.2', 'synced']);
    expect(fake.listRequests()[0]?.path).toBe('/apis/discovery.k8s.io/v1/endpointslices');
    expect(fake.watchRequests()[0]?.query.get('labelSelector')).toBe(
      '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless',
    );
    fake.add('endpointslices', slice('ns3', 's3', 'svc', ['10.1.0.300']));
    fake.add('endpointslices', slice('ns3', 's4', 'svc', ['10.1.0.4']));
    await wait(() => rec.events.length === 3);
    expect(rec.events[2]).toBe('add ns3/s4 10.1.0.4');
    expect(rec.invalid).toEqual([
      { kind: 'EndpointSlice', name: 'ns3/s3', reason: expect.stringContaining('endpoints.0.addresses.0') },
    ]);
  });
});

describe('nodeInformer', () => {
  it('watches only its own Node, by field selector', async () => {
    fake.add('nodes', node('me', { 'topology.kubernetes.io/zone': 'a' }));
    fake.add('nodes', node('someone-else'));
    const rec = recorder<Node>((n) => n.metadata.labels?.['topology.kubernetes.io/zone'] ?? '-');
    const inf = track(nodeInformer(fake.kubeConfig(), 'me', rec.handlers, { delay: fastDelay().delay }));
    await inf.start();
    expect(fake.listRequests()[0]?.path).toBe('/api/v1/nodes');
    expect(fake.listRequests()[0]?.query.get('fieldSelector')).toBe('metadata.name=me');
    expect(fake.watchRequests()[0]?.query.get('fieldSelector')).toBe('metadata.name=me');
    fake.modify('nodes', node('someone-else', { 'topology.kubernetes.io/zone': 'c' }));
    fake.modify('nodes', node('me', { 'topology.kubernetes.io/zone': 'b' }));
    await wait(() => rec.events.length === 3);
    expect(rec.events).toEqual(['add me a', 'synced', 'update me a -> b']);
    expect(inf.get('me')?.metadata.labels?.['topology.kubernetes.io/zone']).toBe('b');
  });
});

describe('serviceInformer', () => {
  it('delivers headless and ExternalName Services: the change tracker, not the informer, ignores them', async () => {
    fake.add('services', service('ns', 'headless-unlabelled', 'None'));
    fake.add('services', service('ns', 'no-ip', ''));
    fake.add('services', service('ns', 'ext', '', { type: 'ExternalName', ports: [] }));
    const rec = recorder<Service>((s) => `${s.spec.type}:${s.spec.clusterIP ?? ''}`);
    const inf = track(serviceInformer(fake.kubeConfig(), rec.handlers, { delay: fastDelay().delay }));
    await inf.start();
    expect(rec.events).toEqual([
      'add ns/ext ExternalName:',
      'add ns/headless-unlabelled ClusterIP:None',
      'add ns/no-ip ClusterIP:',
      'synced',
    ]);
    expect(fake.listRequests()[0]?.path).toBe('/api/v1/services');
  });
});
