import { afterEach, describe, expect, it } from 'vitest';
import { openWatch, type Started, startServer, svc, type WatchStream } from './helpers.ts';

let s: Started;
const streams: WatchStream[] = [];
afterEach(async () => {
  for (const w of streams.splice(0)) w.close();
  await s.server.stop();
});

const SVCS = '/api/v1/namespaces/default/services';

async function watch(path: string, headers?: Record<string, string>): Promise<WatchStream> {
  const w = await openWatch(s.url + path, headers);
  streams.push(w);
  return w;
}

const summary = (events: { type: string; object: { metadata: { name: string } } }[]) =>
  events.map((e) => `${e.type} ${e.object.metadata.name}`);

describe('watch', () => {
  it('streams ADDED, MODIFIED and DELETED as JSON lines, each with its new resourceVersion', async () => {
    s = await startServer();
    const list = await s.request('GET', SVCS);
    const w = await watch(`${SVCS}?watch=true&resourceVersion=${list.body.metadata.resourceVersion}`);
    expect(w.status).toBe(200);
    const created = (await s.request('POST', SVCS, svc('a'))).body;
    const patched = (
      await s.request(
        'PATCH',
        `${SVCS}/a`,
        { metadata: { labels: { x: '1' } } },
        { 'Content-Type': 'application/merge-patch+json' },
      )
    ).body;
    const deleted = (await s.request('DELETE', `${SVCS}/a`)).body;
    const events = await w.take(3);
    expect(summary(events)).toEqual(['ADDED a', 'MODIFIED a', 'DELETED a']);
    expect(events.map((e) => e.object.metadata.resourceVersion)).toEqual([
      created.metadata.resourceVersion,
      patched.metadata.resourceVersion,
      deleted.metadata.resourceVersion,
    ]);
    expect(events[1]!.object.metadata.labels).toEqual({ x: '1' });
    expect(events[0]!.object.kind).toBe('Service');
  });

  it('replays the history after a given resourceVersion, then goes live', async () => {
    s = await startServer();
    const a = (await s.request('POST', SVCS, svc('a'))).body;
    await s.request('POST', SVCS, svc('b'));
    await s.request('DELETE', `${SVCS}/a`);
    const w = await watch(`${SVCS}?watch=1&resourceVersion=${a.metadata.resourceVersion}`);
    expect(summary(await w.take(2))).toEqual(['ADDED b', 'DELETED a']);
    await s.request('POST', SVCS, svc('c'));
    expect(summary(await w.take(1))).toEqual(['ADDED c']);
  });

  it('starts with synthetic ADDED events for the current state when no resourceVersion is given', async () => {
    s = await startServer();
    await s.request('POST', SVCS, svc('a'));
    await s.request('POST', SVCS, svc('b'));
    const w = await watch(`/api/v1/watch/namespaces/default/services`);
    expect(summary(await w.take(2))).toEqual(['ADDED a', 'ADDED b']);
  });

  it('ends the initial events with a marked BOOKMARK for sendInitialEvents (watch-list)', async () => {
    s = await startServer();
    await s.request('POST', SVCS, svc('a'));
    const w = await watch(
      `${SVCS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan`,
    );
    const [added, bookmark] = await w.take(2);
    expect(added!.type).toBe('ADDED');
    expect(bookmark!.type).toBe('BOOKMARK');
    expect(bookmark!.object.metadata.annotations).toEqual({ 'k8s.io/initial-events-end': 'true' });
    expect(bookmark!.object.metadata.resourceVersion).toBe(s.server.store.resourceVersion());
  });

  it('filters by namespace, label selector and field selector, turning selector transitions into ADDED/DELETED', async () => {
    s = await startServer();
    await s.request('POST', '/api/v1/namespaces', { metadata: { name: 'other' } });
    const rv = s.server.store.resourceVersion();
    const w = await watch(`/api/v1/services?watch=true&resourceVersion=${rv}&labelSelector=app%3Dweb`);
    const byName = await watch(`${SVCS}?watch=true&resourceVersion=${rv}&fieldSelector=metadata.name%3Db`);
    await s.request('POST', '/api/v1/namespaces/other/services', svc('o', {}, { app: 'web' }));
    await s.request('POST', SVCS, svc('a', {}, { app: 'db' }));
    await s.request('POST', SVCS, svc('b', {}, { app: 'web' }));
    const relabel = (name: string, app: string) =>
      s.request(
        'PATCH',
        `${SVCS}/${name}`,
        { metadata: { labels: { app } } },
        { 'Content-Type': 'application/merge-patch+json' },
      );
    await relabel('a', 'web');
    await relabel('b', 'db');
    expect(summary(await w.take(4))).toEqual(['ADDED o', 'ADDED b', 'ADDED a', 'DELETED b']);
    expect(summary(await byName.take(2))).toEqual(['ADDED b', 'MODIFIED b']);
  });

  it('sends periodic BOOKMARKs with the current resourceVersion when allowed', async () => {
    s = await startServer({ bookmarkIntervalMs: 100 });
    const w = await watch(
      `${SVCS}?watch=true&resourceVersion=${s.server.store.resourceVersion()}&allowWatchBookmarks=true`,
    );
    await s.request('POST', SVCS, svc('a'));
    const [added, bookmark] = await w.take(2);
    expect(added!.type).toBe('ADDED');
    expect(bookmark).toEqual({
      type: 'BOOKMARK',
      object: {
        kind: 'Service',
        apiVersion: 'v1',
        metadata: { resourceVersion: added!.object.metadata.resourceVersion },
      },
    });
    const quiet = await watch(`${SVCS}?watch=true&resourceVersion=${s.server.store.resourceVersion()}`);
    await expect(quiet.next(400)).rejects.toThrow(/no watch event/);
  });

  it('answers a resourceVersion older than the retained history with a 410 Expired ERROR event', async () => {
    s = await startServer({ historyLimit: 2 });
    const first = (await s.request('POST', SVCS, svc('a'))).body.metadata.resourceVersion;
    await s.request('POST', SVCS, svc('b'));
    await s.request('POST', SVCS, svc('c'));
    await s.request('POST', SVCS, svc('d'));
    const w = await watch(`${SVCS}?watch=true&resourceVersion=${first}`);
    expect(w.status).toBe(200);
    const e = await w.next();
    expect(e).toMatchObject({
      type: 'ERROR',
      object: { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 },
    });
    expect(await w.ended()).toBe(true);
    // The two newest events are still there.
    const c = (await s.request('GET', `${SVCS}/b`)).body.metadata.resourceVersion;
    const ok = await watch(`${SVCS}?watch=true&resourceVersion=${c}`);
    expect(summary(await ok.take(2))).toEqual(['ADDED c', 'ADDED d']);
  });

  it('gives 410 to any version issued before compactHistory()', async () => {
    s = await startServer();
    await s.request('POST', SVCS, svc('a'));
    const listed = (await s.request('GET', SVCS)).body.metadata.resourceVersion;
    s.server.compactHistory();
    const w = await watch(`${SVCS}?watch=true&resourceVersion=${listed}`);
    expect((await w.next())!.object.code).toBe(410);
    const relisted = (await s.request('GET', SVCS)).body.metadata.resourceVersion;
    const fresh = await watch(`${SVCS}?watch=true&resourceVersion=${relisted}`);
    await s.request('POST', SVCS, svc('b'));
    expect(summary(await fresh.take(1))).toEqual(['ADDED b']);
  });

  it('ends the stream after timeoutSeconds', async () => {
    s = await startServer();
    const w = await watch(
      `${SVCS}?watch=true&resourceVersion=${s.server.store.resourceVersion()}&timeoutSeconds=1`,
    );
    const t0 = Date.now();
    expect(await w.ended(3000)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it('dropWatches() ends every open stream', async () => {
    s = await startServer();
    const rv = s.server.store.resourceVersion();
    const a = await watch(`${SVCS}?watch=true&resourceVersion=${rv}`);
    const b = await watch(`/api/v1/namespaces?watch=true&resourceVersion=${rv}`);
    s.server.dropWatches();
    expect(await a.ended()).toBe(true);
    expect(await b.ended()).toBe(true);
    const c = await watch(`${SVCS}?watch=true&resourceVersion=${rv}`);
    s.server.dropWatches('reset');
    expect(await c.ended()).toBe(true);
  });

  it('streams Tables when kubectl get --watch asks for them', async () => {
    s = await startServer();
    const w = await watch(`${SVCS}?watch=true&resourceVersion=${s.server.store.resourceVersion()}`, {
      Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
    });
    await s.request('POST', SVCS, svc('a'));
    const e = await w.next();
    expect(e!.type).toBe('ADDED');
    expect(e!.object.kind).toBe('Table');
    expect(e!.object.rows[0].cells[0]).toBe('a');
  });
});
