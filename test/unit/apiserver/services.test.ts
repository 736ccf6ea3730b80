import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../../pkg/apiserver/errors.ts';
import { type ApiServer, createApiServer } from '../../../pkg/apiserver/server.ts';
import { type Started, startServer, svc } from './helpers.ts';

const SVCS = '/api/v1/namespaces/default/services';

/** Runs `f` and returns the ApiError it threw. */
function apiErrorOf(f: () => unknown): ApiError {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected an ApiError');
}

describe('Service defaults and allocation (store)', () => {
  const server: ApiServer = createApiServer();
  const store = server.store;
  // biome-ignore lint/suspicious/noExplicitAny: specs are read field by field
  const create = (name: string, spec: Record<string, unknown>): any =>
    store.create('services', svc(name, spec)).spec;

  it('defaults a ClusterIP Service as the API server does', () => {
    const spec = create('plain', { ports: [{ port: 80 }] });
    expect(spec).toEqual({
      type: 'ClusterIP',
      ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }],
      sessionAffinity: 'None',
      internalTrafficPolicy: 'Cluster',
      ipFamilyPolicy: 'SingleStack',
      ipFamilies: ['IPv4'],
      clusterIP: '10.96.0.1',
      clusterIPs: ['10.96.0.1'],
    });
  });

  it('allocates cluster IPs in order, keeps a requested one, and refuses a taken one', () => {
    expect(create('next', {}).clusterIP).toBe('10.96.0.2');
    expect(create('fixed', { clusterIP: '10.96.1.1' }).clusterIPs).toEqual(['10.96.1.1']);
    const taken = apiErrorOf(() => create('dup', { clusterIP: '10.96.1.1' }));
    expect(taken.httpStatus).toBe(422);
    expect(taken.details?.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'spec.clusterIPs[0]',
        message:
          'Invalid value: "10.96.1.1": failed to allocate IP 10.96.1.1: the provided IP (10.96.1.1) is already allocated',
      },
    ]);
    const outside = apiErrorOf(() => create('out', { clusterIP: '192.0.2.1' }));
    expect(outside.details?.causes?.[0]?.message).toMatch(/not in the valid range 10.96.0.0\/16/);
  });

  it('makes headless Services with clusterIP None and no allocation', () => {
    const spec = create('headless', { clusterIP: 'None' });
    expect(spec.clusterIPs).toEqual(['None']);
    expect(spec.ipFamilies).toEqual(['IPv4']);
  });

  it('allocates IPv6 or dual-stack cluster IPs when ipFamilies ask for them', () => {
    const v6 = create('v6', { ipFamilies: ['IPv6'] });
    expect(v6.clusterIP).toBe('fd00:10:96::1');
    expect(v6.ipFamilyPolicy).toBe('SingleStack');
    const dual = create('dual', { ipFamilyPolicy: 'PreferDualStack' });
    expect(dual.ipFamilies).toEqual(['IPv4', 'IPv6']);
    expect(dual.clusterIPs).toEqual([expect.stringMatching(/^10\.96\./), 'fd00:10:96::2']);
    const dual6 = create('dual6', { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'RequireDualStack' });
    expect(dual6.clusterIPs[0]).toMatch(/^fd00:10:96::/);
  });

  it('allocates node ports for NodePort and LoadBalancer, keeps given ones, rejects taken ones with 422', () => {
    const np = create('np', {
      type: 'NodePort',
      ports: [
        { name: 'a', port: 80 },
        { name: 'b', port: 81, nodePort: 31000 },
      ],
    });
    expect(np.ports.map((p: { nodePort: number }) => p.nodePort)).toEqual([30000, 31000]);
    expect(np.externalTrafficPolicy).toBe('Cluster');
    const taken = apiErrorOf(() =>
      create('np2', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }),
    );
    expect(taken.httpStatus).toBe(422);
    expect(taken.details?.causes?.[0]).toMatchObject({
      field: 'spec.ports[0].nodePort',
      reason: 'FieldValueInvalid',
    });
    expect(taken.details?.causes?.[0]?.message).toMatch(/already allocated/);
    // The failed create gave back the cluster IP it had taken: the next Service gets it.
    const after = create('after', {});
    const lb = create('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
    expect(lb.ports[0].nodePort).toBe(30001);
    expect(lb.healthCheckNodePort).toBe(30002);
    expect(lb.allocateLoadBalancerNodePorts).toBe(true);
    expect(after.clusterIP).not.toBe(lb.clusterIP);
  });

  it('lets TCP and UDP ports of one Service share a node port', () => {
    const dns = create('dns', {
      type: 'NodePort',
      ports: [
        { name: 'udp', port: 53, protocol: 'UDP', nodePort: 30053 },
        { name: 'tcp', port: 53, protocol: 'TCP', nodePort: 30053 },
      ],
    });
    expect(dns.ports.map((p: { nodePort: number }) => p.nodePort)).toEqual([30053, 30053]);
  });

  it('releases allocations on delete and on a type change', () => {
    const np = create('release', {
      type: 'NodePort',
      ports: [{ port: 80, nodePort: 32000 }],
      clusterIP: '10.96.2.2',
    });
    expect(np.ports[0].nodePort).toBe(32000);
    const current = store.get('services', 'default', 'release');
    store.update('services', {
      ...current,
      spec: { ...(current.spec as object), type: 'ClusterIP', ports: [{ port: 80 }] },
    });
    expect(
      create('reuse-port', { type: 'NodePort', ports: [{ port: 80, nodePort: 32000 }] }).ports[0].nodePort,
    ).toBe(32000);
    store.delete('services', 'default', 'release');
    expect(create('reuse-ip', { clusterIP: '10.96.2.2' }).clusterIP).toBe('10.96.2.2');
  });

  it('keeps cluster IPs and node ports through an update that leaves them out, and refuses to change the IP', () => {
    const np = create('keep', { type: 'NodePort', ports: [{ port: 80 }] });
    const stored = store.get('services', 'default', 'keep');
    const updated = store.update('services', {
      metadata: stored.metadata,
      spec: { type: 'NodePort', ports: [{ port: 80, targetPort: 8080 }], selector: { app: 'x' } },
    });
    const spec = updated.spec as typeof np;
    expect(spec.clusterIP).toBe(np.clusterIP);
    expect(spec.ports[0].nodePort).toBe(np.ports[0].nodePort);
    expect(spec.ports[0].targetPort).toBe(8080);
    expect(updated.metadata.generation).toBe(2);
    const changed = apiErrorOf(() =>
      store.update('services', {
        ...updated,
        spec: { ...spec, clusterIP: '10.96.9.9', clusterIPs: ['10.96.9.9'] },
      }),
    );
    expect(changed.details?.causes?.[0]?.message).toMatch(/field is immutable/);
  });
});

describe('Service validation over HTTP', () => {
  let s: Started;
  afterEach(async () => {
    await s.server.stop();
  });

  it.each([
    [
      'a port out of range',
      { ports: [{ port: 70000 }] },
      'spec.ports[0].port',
      'Invalid value: 70000: must be between 1 and 65535, inclusive',
    ],
    [
      'a bad clusterIP',
      { clusterIP: '10.96.0.300' },
      'spec.clusterIPs[0]',
      'Invalid value: "10.96.0.300": must be empty, \'None\', or a valid IP address',
    ],
    ['no ports', { ports: [] }, 'spec.ports', 'Required value'],
    [
      'an unknown protocol',
      { ports: [{ port: 80, protocol: 'ICMP' }] },
      'spec.ports[0].protocol',
      'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
    ],
    [
      'unnamed ports when there are two',
      { ports: [{ port: 80 }, { port: 81, name: 'b' }] },
      'spec.ports[0].name',
      'Required value',
    ],
    [
      'a nodePort on a ClusterIP Service',
      { ports: [{ port: 80, nodePort: 30001 }] },
      'spec.ports[0].nodePort',
      "Forbidden: may not be used when `type` is 'ClusterIP'",
    ],
    [
      'a nodePort outside the range',
      { type: 'NodePort', ports: [{ port: 80, nodePort: 80 }] },
      'spec.ports[0].nodePort',
      'Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767',
    ],
    [
      'an unknown type',
      { type: 'Magic' },
      'spec.type',
      'Unsupported value: "Magic": supported values: "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"',
    ],
  ])('rejects %s with 422 Invalid and a cause', async (_what, spec, field, message) => {
    s = await startServer();
    const r = await s.request('POST', SVCS, svc('bad', spec));
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'Invalid',
      code: 422,
      details: { name: 'bad', kind: 'Service' },
    });
    expect(r.body.details.causes).toContainEqual({ reason: expect.any(String), field, message });
    expect(r.body.message).toContain(`Service "bad" is invalid: `);
  });

  it('rejects a missing name and an invalid one', async () => {
    s = await startServer();
    const noName = await s.request('POST', SVCS, { spec: { ports: [{ port: 80 }] } });
    expect(noName.status).toBe(422);
    expect(noName.body.details.causes[0]).toMatchObject({
      field: 'metadata.name',
      reason: 'FieldValueRequired',
    });
    const badName = await s.request('POST', SVCS, svc('Not_A_Name'));
    expect(badName.status).toBe(422);
    expect(badName.body.details.causes[0].field).toBe('metadata.name');
  });

  it('refuses IPv6 when the cluster has no IPv6 service CIDR, and honours a custom CIDR and port range', async () => {
    s = await startServer({ serviceCIDRs: ['172.30.0.0/24'], nodePortRange: [40000, 40001] });
    const v6 = await s.request('POST', SVCS, svc('v6', { ipFamilies: ['IPv6'] }));
    expect(v6.status).toBe(422);
    expect(v6.body.details.causes[0]).toMatchObject({
      field: 'spec.ipFamilies[0]',
      message: 'Invalid value: "IPv6": not configured on this cluster',
    });
    const a = await s.request(
      'POST',
      SVCS,
      svc('a', {
        type: 'NodePort',
        ports: [
          { name: 'x', port: 1 },
          { name: 'y', port: 2 },
        ],
      }),
    );
    expect(a.body.spec.clusterIP).toBe('172.30.0.1');
    expect(a.body.spec.ports.map((p: { nodePort: number }) => p.nodePort)).toEqual([40000, 40001]);
    const full = await s.request('POST', SVCS, svc('b', { type: 'NodePort' }));
    expect(full.status).toBe(422);
    expect(full.body.details.causes[0].message).toMatch(/full/);
  });
});
