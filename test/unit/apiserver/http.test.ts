import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Started, slice, startServer, svc } from './helpers.ts';

let s: Started;
beforeEach(async () => {
  s = await startServer();
});
afterEach(async () => {
  await s.server.stop();
});

const SVCS = '/api/v1/namespaces/default/services';
const SLICES = '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices';

describe('discovery', () => {
  it('serves /version, /api, /apis and the resource lists kubectl maps short names with', async () => {
    const version = await s.request('GET', '/version');
    expect(version.body).toMatchObject({ major: '1', minor: '32' });
    const api = await s.request('GET', '/api');
    expect(api.body).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });
    const apis = await s.request('GET', '/apis');
    expect(apis.body.groups).toEqual([
      {
        name: 'discovery.k8s.io',
        versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
        preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
      },
    ]);
    const v1 = await s.request('GET', '/api/v1');
    const byName = Object.fromEntries(v1.body.resources.map((r: { name: string }) => [r.name, r]));
    expect(Object.keys(byName).sort()).toEqual([
      'namespaces',
      'namespaces/status',
      'nodes',
      'nodes/status',
      'services',
      'services/status',
    ]);
    expect(byName.services).toMatchObject({ kind: 'Service', namespaced: true, shortNames: ['svc'] });
    expect(byName.services.verbs).toContain('watch');
    expect(byName.namespaces).toMatchObject({ namespaced: false, shortNames: ['ns'] });
    expect(byName.nodes).toMatchObject({ namespaced: false, shortNames: ['no'] });
    const disc = await s.request('GET', '/apis/discovery.k8s.io/v1');
    expect(disc.body.resources.map((r: { name: string }) => r.name)).toEqual(['endpointslices']);
    expect((await s.request('GET', '/apis/apps/v1')).status).toBe(404);
  });

  it('answers the aggregated discovery Accept header with an APIGroupDiscoveryList', async () => {
    const accept =
      'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';
    const core = await s.request('GET', '/api', undefined, { Accept: accept });
    expect(core.contentType).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    expect(core.body.kind).toBe('APIGroupDiscoveryList');
    const services = core.body.items[0].versions[0].resources.find(
      (r: { resource: string }) => r.resource === 'services',
    );
    expect(services).toMatchObject({
      scope: 'Namespaced',
      shortNames: ['svc'],
      responseKind: { kind: 'Service' },
    });
    const groups = await s.request('GET', '/apis', undefined, { Accept: accept });
    expect(groups.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual([
      'discovery.k8s.io',
    ]);
  });
});

describe('verbs', () => {
  it('creates, gets, lists across and within namespaces, and sets server-owned metadata', async () => {
    const created = await s.request('POST', SVCS, svc('a'));
    expect(created.status).toBe(201);
    expect(created.body.metadata).toMatchObject({ name: 'a', namespace: 'default' });
    expect(created.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.body.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await s.request('POST', '/api/v1/namespaces', { metadata: { name: 'other' } });
    const b = await s.request('POST', '/api/v1/namespaces/other/services', svc('b'));
    expect(Number(b.body.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.body.metadata.resourceVersion),
    );

    const got = await s.request('GET', `${SVCS}/a`);
    expect(got.body).toEqual(created.body);
    const all = await s.request('GET', '/api/v1/services');
    expect(all.body.kind).toBe('ServiceList');
    expect(all.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['a', 'b']);
    expect(all.body.metadata.resourceVersion).toBe(b.body.metadata.resourceVersion);
    const inOther = await s.request('GET', '/api/v1/namespaces/other/services');
    expect(inOther.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['b']);
  });

  it('generates names from generateName', async () => {
    const r = await s.request('POST', SLICES, {
      ...slice('', 'x', ['10.0.0.1']),
      metadata: { generateName: 'x-' },
    });
    expect(r.status).toBe(201);
    expect(r.body.metadata.name).toMatch(/^x-[a-z0-9]{5}$/);
  });

  it('reports NotFound, AlreadyExists and a missing namespace as Status objects', async () => {
    const missing = await s.request('GET', `${SVCS}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 });
    expect(missing.body.message).toBe('services "nope" not found');
    await s.request('POST', SVCS, svc('a'));
    const again = await s.request('POST', SVCS, svc('a'));
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ reason: 'AlreadyExists', code: 409 });
    const noNs = await s.request('POST', '/api/v1/namespaces/ghost/services', svc('a'));
    expect(noNs.status).toBe(404);
    expect(noNs.body.message).toBe('namespaces "ghost" not found');
  });

  it('updates with a resourceVersion check (409 on a stale one) and keeps status on the main resource', async () => {
    const created = (await s.request('POST', SVCS, svc('a'))).body;
    const edited = { ...created, metadata: { ...created.metadata, labels: { x: 'y' } } };
    const ok = await s.request('PUT', `${SVCS}/a`, edited);
    expect(ok.status).toBe(200);
    expect(ok.body.metadata.labels).toEqual({ x: 'y' });
    expect(ok.body.spec.clusterIP).toBe(created.spec.clusterIP);
    const stale = await s.request('PUT', `${SVCS}/a`, edited);
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ reason: 'Conflict', code: 409 });

    const withStatus = { ...ok.body, status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } };
    const main = await s.request('PUT', `${SVCS}/a`, withStatus);
    expect(main.body.status).toEqual({ loadBalancer: {} });
    const viaStatus = await s.request('PUT', `${SVCS}/a/status`, withStatus);
    expect(viaStatus.status).toBe(200);
    expect(viaStatus.body.status.loadBalancer.ingress).toEqual([{ ip: '1.2.3.4' }]);
  });

  it('does not bump the resourceVersion for an update that changes nothing', async () => {
    const created = (await s.request('POST', SVCS, svc('a'))).body;
    const same = await s.request('PUT', `${SVCS}/a`, created);
    expect(same.body.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });

  it('patches with merge, JSON and strategic merge patches', async () => {
    await s.request(
      'POST',
      SVCS,
      svc('a', {
        ports: [
          { name: 'http', port: 80 },
          { name: 'https', port: 443 },
        ],
      }),
    );
    const merge = await s.request(
      'PATCH',
      `${SVCS}/a`,
      { metadata: { labels: { app: 'web' } } },
      {
        'Content-Type': 'application/merge-patch+json',
      },
    );
    expect(merge.status).toBe(200);
    expect(merge.body.metadata.labels).toEqual({ app: 'web' });

    const json = await s.request(
      'PATCH',
      `${SVCS}/a`,
      [{ op: 'replace', path: '/spec/ports/0/targetPort', value: 8080 }],
      {
        'Content-Type': 'application/json-patch+json',
      },
    );
    expect(json.body.spec.ports[0].targetPort).toBe(8080);

    // kubectl apply's shape: one list item changed by merge key, order given by a directive.
    const smp = await s.request(
      'PATCH',
      `${SVCS}/a`,
      {
        spec: {
          '$setElementOrder/ports': [{ port: 443 }, { port: 80 }],
          ports: [{ port: 443, targetPort: 8443 }],
        },
      },
      { 'Content-Type': 'application/strategic-merge-patch+json' },
    );
    expect(smp.status).toBe(200);
    expect(
      smp.body.spec.ports.map((p: { port: number; targetPort: number }) => [p.port, p.targetPort]),
    ).toEqual([
      [443, 8443],
      [80, 8080],
    ]);

    const badJson = await s.request(
      'PATCH',
      `${SVCS}/a`,
      [{ op: 'test', path: '/spec/type', value: 'NodePort' }],
      {
        'Content-Type': 'application/json-patch+json',
      },
    );
    expect(badJson.status).toBe(422);
    const unsupported = await s.request('PATCH', `${SVCS}/a`, 'x: 1', {
      'Content-Type': 'application/apply-patch+yaml',
    });
    expect(unsupported.status).toBe(415);
  });

  it('deletes one object, a collection by selector, and a namespace with its content', async () => {
    await s.request('POST', SVCS, svc('a', {}, { tier: 'fe' }));
    await s.request('POST', SVCS, svc('b', {}, { tier: 'be' }));
    await s.request('POST', SVCS, svc('c', {}, { tier: 'fe' }));
    const del = await s.request('DELETE', `${SVCS}/a`);
    expect(del.status).toBe(200);
    expect(del.body.metadata.name).toBe('a');
    expect((await s.request('GET', `${SVCS}/a`)).status).toBe(404);
    const coll = await s.request('DELETE', `${SVCS}?labelSelector=tier%3Dfe`);
    expect(coll.body.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['c']);

    await s.request('POST', '/api/v1/namespaces', { metadata: { name: 'tmp' } });
    await s.request('POST', '/api/v1/namespaces/tmp/services', svc('x'));
    expect((await s.request('DELETE', '/api/v1/namespaces/tmp')).status).toBe(200);
    expect(
      (await s.request('GET', '/api/v1/services')).body.items.map(
        (i: { metadata: { name: string } }) => i.metadata.name,
      ),
    ).toEqual(['b']);
    const protectedNs = await s.request('DELETE', '/api/v1/namespaces/default');
    expect(protectedNs.status).toBe(403);
  });

  it('refuses a delete whose preconditions do not hold', async () => {
    const created = (await s.request('POST', SVCS, svc('a'))).body;
    const wrong = await s.request('DELETE', `${SVCS}/a`, { preconditions: { uid: 'not-the-uid' } });
    expect(wrong.status).toBe(409);
    const right = await s.request('DELETE', `${SVCS}/a`, { preconditions: { uid: created.metadata.uid } });
    expect(right.status).toBe(200);
  });

  it('keeps an object with finalizers until the last one is removed', async () => {
    await s.request('POST', SLICES, {
      ...slice('s', 'x', ['10.0.0.1']),
      metadata: { name: 's', finalizers: ['test/hold'] },
    });
    const marked = await s.request('DELETE', `${SLICES}/s`);
    expect(marked.body.metadata.deletionTimestamp).toBeTruthy();
    expect((await s.request('GET', `${SLICES}/s`)).status).toBe(200);
    await s.request(
      'PATCH',
      `${SLICES}/s`,
      { metadata: { finalizers: null } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    expect((await s.request('GET', `${SLICES}/s`)).status).toBe(404);
  });

  it('stores EndpointSlices as given and validates their addresses', async () => {
    const body = slice('s1', 'web', ['10.1.0.1', '10.1.0.2']);
    const r = await s.request('POST', SLICES, body);
    expect(r.status).toBe(201);
    expect(r.body.endpoints).toEqual(body.endpoints);
    expect(r.body.ports).toEqual(body.ports);
    const bad = await s.request('POST', SLICES, slice('s2', 'web', ['fd00::1']));
    expect(bad.status).toBe(422);
    expect(bad.body.details.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'endpoints[0].addresses[0]',
        message: 'Invalid value: "fd00::1": must be a valid IPv4 address',
      },
    ]);
  });

  it('serves cluster-scoped nodes with their status as created', async () => {
    const node = {
      metadata: { name: 'node-1', labels: { 'kubernetes.io/hostname': 'node-1' } },
      status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }] },
    };
    const r = await s.request('POST', '/api/v1/nodes', node);
    expect(r.status).toBe(201);
    expect(r.body.metadata.namespace).toBeUndefined();
    expect(r.body.status).toEqual(node.status);
    expect((await s.request('GET', '/api/v1/namespaces/default/nodes')).status).toBe(404);
  });

  it('renders Tables for kubectl get', async () => {
    await s.request('POST', SVCS, svc('a', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }));
    const t = await s.request('GET', SVCS, undefined, {
      Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
    });
    expect(t.body.kind).toBe('Table');
    expect(t.body.columnDefinitions.map((c: { name: string }) => c.name)).toEqual([
      'Name',
      'Type',
      'Cluster-IP',
      'External-IP',
      'Port(s)',
      'Age',
      'Selector',
    ]);
    expect(t.body.rows[0].cells.slice(0, 5)).toEqual([
      'a',
      'NodePort',
      '10.96.0.1',
      '<none>',
      '80:30080/TCP',
    ]);
    expect(t.body.rows[0].object).toMatchObject({ kind: 'PartialObjectMetadata', metadata: { name: 'a' } });
  });
});

describe('selectors', () => {
  beforeEach(async () => {
    await s.request('POST', SVCS, svc('a', {}, { app: 'web', tier: 'fe' }));
    await s.request('POST', SVCS, svc('b', {}, { app: 'web', tier: 'be' }));
    await s.request('POST', SVCS, svc('c', {}, { app: 'db' }));
  });

  const names = async (query: string) =>
    (await s.request('GET', `${SVCS}?${query}`)).body.items.map(
      (i: { metadata: { name: string } }) => i.metadata.name,
    );

  it.each([
    ['app=web', ['a', 'b']],
    ['app==web', ['a', 'b']],
    ['app!=web', ['c']],
    ['tier in (fe,be)', ['a', 'b']],
    ['tier notin (fe)', ['b', 'c']],
    ['tier', ['a', 'b']],
    ['!tier', ['c']],
    ['app=web,tier=be', ['b']],
  ])('labelSelector %s', async (sel, want) => {
    expect(await names(`labelSelector=${encodeURIComponent(sel)}`)).toEqual(want);
  });

  it.each([
    ['metadata.name=b', ['b']],
    ['metadata.name!=b', ['a', 'c']],
    ['metadata.namespace=default,metadata.name==c', ['c']],
    ['metadata.namespace=other', []],
  ])('fieldSelector %s', async (sel, want) => {
    expect(await names(`fieldSelector=${encodeURIComponent(sel)}`)).toEqual(want);
  });

  it('rejects a malformed selector or an unsupported field with 400', async () => {
    expect((await s.request('GET', `${SVCS}?labelSelector=${encodeURIComponent('a in b')}`)).status).toBe(
      400,
    );
    expect((await s.request('GET', `${SVCS}?fieldSelector=spec.type%3DNodePort`)).status).toBe(400);
  });
});
