import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InformerStoppedError } from '../../../pkg/k8s/errors.ts';
import type { Informer } from '../../../pkg/k8s/informer.ts';
import { PROXY_LABEL_SELECTOR, serviceInformer } from '../../../pkg/k8s/informers.ts';
import type { Service } from '../../../pkg/k8s/schemas.ts';
import { FakeApiServer } from '../../support/fake-apiserver.ts';
import { fastDelay, recorder, service } from './helpers.ts';

const ip = (s: Service) => s.spec.clusterIP ?? '';

let fake: FakeApiServer;
let informers: Informer<unknown>[] = [];

beforeEach(async () => {
  fake = await FakeApiServer.start();
});

afterEach(async () => {
  for (const i of informers) i.stop();
  informers = [];
  await fake.close();
});

function startServices(opts: { pageSize?: number } = {}) {
  const rec = recorder<Service>();
  const backoff = fastDelay();
  const informer = serviceInformer(fake.kubeConfig(), rec.handlers, {
    delay: backoff.delay,
    watchTimeoutSeconds: () => 300,
    ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
  });
  informers.push(informer as Informer<unknown>);
  return { ...rec, ...backoff, informer };
}

const wait = (pred: () => boolean) =>
  vi.waitFor(() => expect(pred()).toBe(true), { timeout: 5000, interval: 10 });

describe('initial list', () => {
  it('delivers every listed object as an add, then onSynced once', async () => {
    const a = fake.add('services', service('ns1', 'a', '10.0.0.1'));
    const b = fake.add('services', service('ns2', 'b', '10.0.0.2'));
    const { informer, events } = startServices();
    expect(informer.hasSynced()).toBe(false);
    await informer.start();
    expect(informer.hasSynced()).toBe(true);
    expect(events).toEqual([
      `add ns1/a @${a.metadata.resourceVersion}`,
      `add ns2/b @${b.metadata.resourceVersion}`,
      'synced',
    ]);
    expect(fake.openWatches).toBe(1);
    // The watch starts where the list ended.
    expect(fake.watchRequests('services')[0]?.query.get('resourceVersion')).toBe(fake.resourceVersion);
    expect(informer.get('ns1/a')?.spec.clusterIP).toBe('10.0.0.1');
    expect(informer.list()).toHaveLength(2);
  });

  it('sends the label selector and the credentials with list and watch', async () => {
    fake.add('services', service('ns', 'mine'));
    fake.add(
      'services',
      service('ns', 'other-proxy', '10.0.0.9', {
        labels: { 'service.kubernetes.io/service-proxy-name': 'x' },
      }),
    );
    fake.add(
      'services',
      service('ns', 'headless', 'None', { labels: { 'service.kubernetes.io/headless': '' } }),
    );
    const { informer, events } = startServices();
    await informer.start();
    const list = fake.listRequests('services')[0];
    const watch = fake.watchRequests('services')[0];
    expect(list?.query.get('labelSelector')).toBe(PROXY_LABEL_SELECTOR);
    expect(watch?.query.get('labelSelector')).toBe(PROXY_LABEL_SELECTOR);
    expect(PROXY_LABEL_SELECTOR).toBe(
      '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless',
    );
    expect(list?.authorization).toBe('Bearer fake-token');
    expect(watch?.query.get('allowWatchBookmarks')).toBe('true');
    expect(events.filter((e) => e.startsWith('add')).map((e) => e.split(' ')[1])).toEqual(['ns/mine']);
  });

  it('lists page by page and only then delivers the objects', async () => {
    for (let i = 0; i < 5; i++) fake.add('services', service('ns', `s${i}`, `10.0.0.${i + 1}`));
    const { informer, events } = startServices({ pageSize: 2 });
    await informer.start();
    const lists = fake.listRequests('services');
    expect(lists.map((r) => [r.query.get('limit'), r.query.get('continue')])).toEqual([
      ['2', null],
      ['2', '2'],
      ['2', '4'],
    ]);
    expect(events.filter((e) => e.startsWith('add'))).toHaveLength(5);
    expect(events.at(-1)).toBe('synced');
  });
});

describe('watch events', () => {
  it('delivers adds, updates with old and new object, and deletes with the last version', async () => {
    const rec = recorder<Service>(ip);
    const informer = serviceInformer(fake.kubeConfig(), rec.handlers, { delay: fastDelay().delay });
    informers.push(informer as Informer<unknown>);
    await informer.start();
    fake.add('services', service('ns', 'a', '10.0.0.1'));
    fake.modify('services', service('ns', 'a', '10.0.0.2'));
    fake.remove('services', 'ns', 'a');
    await wait(() => rec.events.length === 4);
    expect(rec.events).toEqual([
      'synced',
      'add ns/a 10.0.0.1',
      'update ns/a 10.0.0.1 -> 10.0.0.2',
      'delete ns/a 10.0.0.2',
    ]);
    expect(informer.list()).toEqual([]);
  });

  it('does not report an update whose resourceVersion did not change', async () => {
    const { informer, events } = startServices();
    await informer.start();
    const a = fake.add('services', service('ns', 'a'));
    fake.sendRaw('services', 'MODIFIED', a);
    fake.sendRaw('services', 'ADDED', a);
    fake.add('services', service('ns', 'b'));
    await wait(() => events.some((e) => e.startsWith('add ns/b')));
    expect(events.filter((e) => e.includes('ns/a'))).toEqual([`add ns/a @${a.metadata.resourceVersion}`]);
  });

  it('keeps delivering after a handler throws', async () => {
    const seen: string[] = [];
    const informer = serviceInformer(
      fake.kubeConfig(),
      {
        onAdd: (s) => {
          seen.push(s.metadata.name);
          if (s.metadata.name === 'boom') throw new Error('handler bug');
        },
      },
      { delay: fastDelay().delay },
    );
    informers.push(informer as Informer<unknown>);
    await informer.start();
    fake.add('services', service('ns', 'boom'));
    fake.add('services', service('ns', 'after'));
    await wait(() => seen.length === 2);
    expect(seen).toEqual(['boom', 'after']);
  });
});

describe('resuming and relisting', () => {
  it('resumes from the last resourceVersion after a dropped connection, without duplicates', async () => {
    const { informer, events, delays } = startServices();
    fake.add('services', service('ns', 'a'));
    await informer.start();
    fake.add('services', service('ns', 'b'));
    await wait(() => events.length === 3);
    const seenRV = fake.resourceVersion;
    fake.dropWatches();
    // Written while no watch is open: must arrive exactly once through the resumed watch.
    const c = fake.add('services', service('ns', 'c'));
    await wait(() => events.length === 4);
    const watches = fake.watchRequests('services');
    expect(watches).toHaveLength(2);
    expect(watches[1]?.query.get('resourceVersion')).toBe(seenRV);
    expect(fake.listRequests('services')).toHaveLength(1);
    const d = fake.add('services', service('ns', 'd'));
    await wait(() => events.length === 5);
    expect(events.slice(3)).toEqual([
      `add ns/c @${c.metadata.resourceVersion}`,
      `add ns/d @${d.metadata.resourceVersion}`,
    ]);
    expect(new Set(events).size).toBe(events.length);
    // A healthy watch that ended is resumed at once, not after a backoff.
    expect(delays).toEqual([]);
  });

  it('resumes after the server ends the watch (server-side timeout)', async () => {
    const { informer, events } = startServices();
    await informer.start();
    const a = fake.add('services', service('ns', 'a'));
    await wait(() => events.length === 2);
    fake.endWatches();
    await wait(() => fake.openWatches === 1 && fake.watchRequests().length === 2);
    expect(fake.watchRequests()[1]?.query.get('resourceVersion')).toBe(a.metadata.resourceVersion);
  });

  it('takes the resourceVersion of a bookmark', async () => {
    const { informer, events } = startServices();
    await informer.start();
    fake.add('services', service('ns', 'a'));
    await wait(() => events.length === 2);
    // Writes to another resource move the global version on without any Service event.
    fake.add('nodes', { metadata: { name: 'n1' } });
    fake.add('nodes', { metadata: { name: 'n2' } });
    fake.bookmark('services');
    const bookmarkRV = fake.resourceVersion;
    // The bookmark is consumed before the drop is seen: wait for a later event on the same stream.
    fake.sendRaw('services', 'BOOKMARK', { metadata: { resourceVersion: bookmarkRV } });
    await new Promise((r) => setTimeout(r, 100));
    fake.dropWatches();
    await wait(() => fake.watchRequests().length === 2);
    expect(fake.watchRequests()[1]?.query.get('resourceVersion')).toBe(bookmarkRV);
  });

  it('relists on a 410 ERROR event and emits deletes, updates and adds for what changed meanwhile', async () => {
    const rec = recorder<Service>(ip);
    const informer = serviceInformer(fake.kubeConfig(), rec.handlers, { delay: fastDelay().delay });
    informers.push(informer as Informer<unknown>);
    fake.add('services', service('ns', 'gone', '10.0.0.1'));
    fake.add('services', service('ns', 'changed', '10.0.0.2'));
    fake.add('services', service('ns', 'same', '10.0.0.3'));
    await informer.start();
    expect(rec.events).toHaveLength(4);
    // Everything below happens while we are disconnected, and the history is compacted away.
    fake.dropWatches();
    fake.remove('services', 'ns', 'gone');
    fake.modify('services', service('ns', 'changed', '10.0.0.22'));
    fake.add('services', service('ns', 'new', '10.0.0.4'));
    fake.compact();
    await wait(() => rec.events.length === 7);
    expect(rec.events.slice(4)).toEqual([
      'delete ns/gone 10.0.0.1',
      'update ns/changed 10.0.0.2 -> 10.0.0.22',
      'add ns/new 10.0.0.4',
    ]);
    expect(fake.listRequests('services')).toHaveLength(2);
    await wait(() => fake.openWatches === 1);
    // After the relist the watch starts from the new list's version, not from scratch.
    expect(fake.watchRequests().at(-1)?.query.get('resourceVersion')).toBe(fake.resourceVersion);
    expect(rec.events.filter((e) => e === 'synced')).toHaveLength(1);
  });

  it('relists on a watch answered with HTTP 410', async () => {
    const { informer, events, delays } = startServices();
    fake.add('services', service('ns', 'a'));
    await informer.start();
    // An event makes the watch count as healthy, so its drop is resumed without a backoff.
    fake.add('services', service('ns', 'b'));
    await wait(() => events.length === 3);
    fake.failNextWatch({ kind: 'http', status: 410 });
    fake.dropWatches();
    fake.silentRemove('services', 'ns', 'a');
    await wait(() => events.some((e) => e.startsWith('delete ns/a')));
    expect(fake.listRequests('services')).toHaveLength(2);
    expect(delays).toEqual([]);
  });

  it('relists when a 410 ERROR event arrives on an open watch', async () => {
    const { informer, events } = startServices();
    await informer.start();
    fake.silentRemove('services', 'x', 'y');
    fake.add('nodes', { metadata: { name: 'n' } });
    fake.sendRaw('services', 'ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' });
    await wait(() => fake.listRequests('services').length === 2 && fake.openWatches === 1);
    expect(events).toEqual(['synced']);
  });
});

describe('errors and backoff', () => {
  it('retries a watch failing with HTTP 500 with a doubling backoff, reset after a healthy watch', async () => {
    const { informer, events, delays } = startServices();
    fake.failNextWatch({ kind: 'http', status: 500 });
    fake.failNextWatch({ kind: 'http', status: 500 });
    fake.failNextWatch({ kind: 'http', status: 500 });
    await informer.start();
    expect(delays).toEqual([1000, 2000, 4000]);
    expect(fake.watchRequests()).toHaveLength(4);
    fake.add('services', service('ns', 'a'));
    await wait(() => events.length === 2);
    fake.failNextWatch({ kind: 'http', status: 403 });
    fake.dropWatches();
    await wait(() => fake.watchRequests().length === 6 && fake.openWatches === 1);
    expect(delays).toEqual([1000, 2000, 4000, 1000]);
  });

  it('backs off after a watch ERROR event other than 410, then resumes from the same version', async () => {
    const { informer, events, delays } = startServices();
    await informer.start();
    const a = fake.add('services', service('ns', 'a'));
    await wait(() => events.length === 2);
    fake.sendRaw('services', 'ERROR', {
      kind: 'Status',
      code: 500,
      reason: 'InternalError',
      message: 'etcd hiccup',
    });
    await wait(() => fake.watchRequests().length === 2 && fake.openWatches === 1);
    expect(delays).toEqual([1000]);
    expect(fake.watchRequests()[1]?.query.get('resourceVersion')).toBe(a.metadata.resourceVersion);
    expect(fake.listRequests()).toHaveLength(1);
  });

  it('backs off when watches keep ending right after they open with nothing delivered', async () => {
    const { informer, delays } = startServices();
    await informer.start();
    for (let n = 2; n <= 4; n++) {
      fake.endWatches();
      await wait(() => fake.watchRequests().length === n && fake.openWatches === 1);
    }
    expect(delays).toEqual([1000, 2000, 4000]);
  });

  it('resumes after the client-side inactivity timeout', async () => {
    const rec = recorder<Service>();
    const backoff = fastDelay();
    const informer = serviceInformer(fake.kubeConfig(), rec.handlers, {
      delay: backoff.delay,
      listWatcher: { watchInactivityTimeoutMs: 200 },
      minHealthyWatchMs: 100,
    });
    informers.push(informer as Informer<unknown>);
    const a = fake.add('services', service('ns', 'a'));
    await informer.start();
    await wait(() => fake.watchRequests().length >= 3);
    expect(fake.watchRequests().map((r) => r.query.get('resourceVersion'))).toEqual(
      Array(fake.watchRequests().length).fill(a.metadata.resourceVersion),
    );
    expect(backoff.delays).toEqual([]);
    expect(fake.listRequests()).toHaveLength(1);
  });

  it('retries a failed first list; start resolves only once a list got through', async () => {
    fake.failNextList(500);
    fake.failNextList(403);
    fake.add('services', service('ns', 'a'));
    const { informer, events, delays } = startServices();
    let started = false;
    const p = informer.start().then(() => {
      started = true;
    });
    // The delays are instant, so all three lists may be done by the first poll: no check of
    // hasSynced() here would be race-free; the delays and events below show the retries.
    await p;
    expect(fake.listRequests().length).toBe(3);
    expect(started).toBe(true);
    expect(delays).toEqual([1000, 2000]);
    expect(events).toEqual([expect.stringMatching(/^add ns\/a /), 'synced']);
  });

  it('keeps retrying a refused connection with the backoff capped at 30 s, and stop ends it', async () => {
    const closed = await FakeApiServer.start();
    const kc = closed.kubeConfig();
    await closed.close();
    const rec = recorder<Service>();
    const backoff = fastDelay();
    const informer = serviceInformer(kc, rec.handlers, { delay: backoff.delay });
    const started = informer.start();
    await wait(() => backoff.delays.length >= 8);
    expect(backoff.delays.slice(0, 8)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    informer.stop();
    informer.stop();
    await expect(started).rejects.toBeInstanceOf(InformerStoppedError);
    expect(informer.hasSynced()).toBe(false);
    expect(rec.events).toEqual([]);
  });

  it('stops for good: no handler runs afterwards, the watch is closed, start cannot restart it', async () => {
    const { informer, events } = startServices();
    await informer.start();
    informer.stop();
    informer.stop();
    await wait(() => fake.openWatches === 0);
    fake.add('services', service('ns', 'late'));
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(['synced']);
    expect(fake.watchRequests()).toHaveLength(1);
    // A second start returns the first (resolved) start; a fresh informer stopped first rejects.
    await expect(informer.start()).resolves.toBeUndefined();
    const other = startServices().informer;
    other.stop();
    await expect(other.start()).rejects.toMatchObject({ code: 'INFORMER_STOPPED' });
  });

  it('stops when the start signal aborts', async () => {
    fake.failNextList(500);
    const { informer } = startServices();
    const ac = new AbortController();
    const p = informer.start(ac.signal);
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(InformerStoppedError);
  });
});
