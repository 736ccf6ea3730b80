/**
 * Invalid objects at the informer boundary: skipped, reported, and never allowed to take away
 * the last valid version of an object (the node keeps its rules).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Informer } from '../../../pkg/k8s/informer.ts';
import { serviceInformer } from '../../../pkg/k8s/informers.ts';
import type { Service } from '../../../pkg/k8s/schemas.ts';
import { FakeApiServer } from '../../support/fake-apiserver.ts';
import { fastDelay, recorder, service } from './helpers.ts';

const ip = (s: Service) => s.spec.clusterIP ?? '';
const wait = (pred: () => boolean) =>
  vi.waitFor(() => expect(pred()).toBe(true), { timeout: 5000, interval: 10 });

let fake: FakeApiServer;
let informer: Informer<Service> | undefined;

beforeEach(async () => {
  fake = await FakeApiServer.start();
});
afterEach(async () => {
  informer?.stop();
  informer = undefined;
  await fake.close();
});

function start() {
  const rec = recorder<Service>(ip);
  informer = serviceInformer(fake.kubeConfig(), rec.handlers, { delay: fastDelay().delay });
  return { ...rec, informer };
}

const invalidServices = [
  { name: 'bad-ip', obj: service('ns', 'bad-ip', '10.0.0.300'), path: 'spec.clusterIP' },
  {
    name: 'big-port',
    obj: service('ns', 'big-port', '10.0.0.5', { ports: [{ name: 'p', port: 70000, protocol: 'TCP' }] }),
    path: 'spec.ports.0.port',
  },
  {
    name: 'bad-proto',
    obj: service('ns', 'bad-proto', '10.0.0.6', { ports: [{ name: 'p', port: 80, protocol: 'FOO' }] }),
    path: 'spec.ports.0.protocol',
  },
];

describe('invalid objects in the initial list', () => {
  it('skips them, reports each with kind, name and reason, and still delivers the valid ones', async () => {
    fake.add('services', service('ns', 'good-1', '10.0.0.1'));
    for (const s of invalidServices) fake.add('services', s.obj);
    fake.add('services', {
      metadata: { namespace: 'ns' },
      spec: { clusterIP: '10.0.0.7', ports: [{ port: 80 }] },
    });
    fake.add('services', service('ns', 'good-2', '10.0.0.2'));
    const { informer, events, invalid } = start();
    await informer.start();
    expect(events).toEqual(['add ns/good-1 10.0.0.1', 'add ns/good-2 10.0.0.2', 'synced']);
    expect(invalid.map((i) => [i.kind, i.name])).toEqual([
      ['Service', 'ns/<no name>'],
      ['Service', 'ns/bad-ip'],
      ['Service', 'ns/bad-proto'],
      ['Service', 'ns/big-port'],
    ]);
    for (const s of invalidServices) {
      const report = invalid.find((i) => i.name === `ns/${s.name}`);
      expect(report?.reason).toMatch(new RegExp(`^${s.path.replaceAll('.', '\\.')}: `));
    }
    expect(invalid[0]?.reason).toMatch(/^metadata\.name: /);
    expect(
      informer
        .list()
        .map((s) => s.metadata.name)
        .sort(),
    ).toEqual(['good-1', 'good-2']);
  });
});

describe('invalid objects on the watch', () => {
  it('ignores an invalid add and delivers what follows', async () => {
    const { informer, events, invalid } = start();
    await informer.start();
    fake.add('services', service('ns', 'bad', '300.1.1.1'));
    fake.add('services', service('ns', 'good', '10.0.0.9'));
    await wait(() => events.length === 2);
    expect(events).toEqual(['synced', 'add ns/good 10.0.0.9']);
    expect(invalid).toEqual([
      { kind: 'Service', name: 'ns/bad', reason: expect.stringContaining('spec.clusterIP') },
    ]);
    expect(informer.get('ns/bad')).toBeUndefined();
  });

  it('keeps the last valid version when an update is invalid, and deletes with that version', async () => {
    fake.add('services', service('ns', 'a', '10.0.0.1'));
    const { informer, events, invalid } = start();
    await informer.start();
    fake.modify('services', service('ns', 'a', '10.0.0.1', { ports: [{ name: 'p', port: 70000 }] }));
    fake.add('services', service('ns', 'marker'));
    await wait(() => events.length === 3);
    expect(events).toEqual(['add ns/a 10.0.0.1', 'synced', 'add ns/marker 10.0.0.1']);
    expect(invalid).toHaveLength(1);
    expect(informer.get('ns/a')?.spec.ports[0]?.port).toBe(80);

    // A later valid update is reported against the last valid version.
    fake.modify('services', service('ns', 'a', '10.0.0.2'));
    await wait(() => events.length === 4);
    expect(events[3]).toBe('update ns/a 10.0.0.1 -> 10.0.0.2');

    // Invalid again, then deleted: the delete carries 10.0.0.2, the last valid version.
    fake.modify('services', service('ns', 'a', 'not-an-ip'));
    fake.remove('services', 'ns', 'a');
    await wait(() => events.length === 5);
    expect(events[4]).toBe('delete ns/a 10.0.0.2');
    expect(invalid).toHaveLength(2);
  });

  it('drops the delete of an object that was never valid', async () => {
    const { informer, events } = start();
    await informer.start();
    fake.add('services', service('ns', 'never', '10.0.0.300'));
    fake.remove('services', 'ns', 'never');
    fake.add('services', service('ns', 'marker'));
    await wait(() => events.length === 2);
    expect(events).toEqual(['synced', 'add ns/marker 10.0.0.1']);
  });

  it('on a relist, an object that became invalid keeps its valid version and is not deleted', async () => {
    fake.add('services', service('ns', 'a', '10.0.0.1'));
    const { informer, events, invalid } = start();
    await informer.start();
    fake.dropWatches();
    fake.modify(
      'services',
      service('ns', 'a', '10.0.0.1', { ports: [{ name: 'p', port: 80, protocol: 'FOO' }] }),
    );
    fake.compact();
    await wait(() => fake.listRequests().length === 2 && invalid.length === 1);
    expect(events).toEqual(['add ns/a 10.0.0.1', 'synced']);
    expect(informer.get('ns/a')?.spec.ports[0]?.protocol).toBe('TCP');
  });
});
