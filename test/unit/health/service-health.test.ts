import { afterEach, describe, expect, it } from 'vitest';
import { ServiceHealthServer, serviceHealthBody } from '../../../pkg/health/service-health.ts';
import { freePort, holdPort, httpGet, httpGetError } from '../metrics/http-client.ts';

const HOST = '127.0.0.1';
const servers: ServiceHealthServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

function setup(opts: { onListenError?: (svc: string, port: number, msg: string) => void } = {}) {
  const proxy = { healthy: true };
  const shs = new ServiceHealthServer({
    proxyHealth: { isHealthy: () => proxy.healthy },
    nodeIPs: [HOST],
    hostname: 'node-1',
    ...(opts.onListenError ? { onListenError: opts.onListenError } : {}),
  });
  servers.push(shs);
  const portOf = (svc: string) => {
    const addrs = shs.addresses(svc);
    expect(addrs).toHaveLength(1);
    return addrs[0]!.port;
  };
  return { shs, proxy, portOf };
}

describe('serviceHealthBody', () => {
  it('is tab-indented JSON in upstream field order', () => {
    expect(serviceHealthBody('ns1/svc1', 2, true)).toBe(
      '{\n\t"service": {\n\t\t"namespace": "ns1",\n\t\t"name": "svc1"\n\t},\n\t"localEndpoints": 2,\n' +
        '\t"serviceProxyHealthy": true\n}',
    );
  });
});

describe('service health-check ports', () => {
  it('answers 503 with no local endpoints and 200 with some, with the weight header', async () => {
    const { shs, portOf } = setup();
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    const port = portOf('ns1/svc1');

    const empty = await httpGet(HOST, port, '/');
    expect(empty.status).toBe(503);
    expect(empty.headers['content-type']).toBe('application/json');
    expect(empty.headers['x-content-type-options']).toBe('nosniff');
    expect(empty.headers['x-load-balancing-endpoint-weight']).toBe('0');
    expect(empty.body).toBe(serviceHealthBody('ns1/svc1', 0, true));

    shs.syncEndpoints(new Map([['ns1/svc1', 2]]));
    const two = await httpGet(HOST, port, '/any/path?x=1');
    expect(two.status).toBe(200);
    expect(two.headers['x-load-balancing-endpoint-weight']).toBe('2');
    expect(JSON.parse(two.body)).toEqual({
      service: { namespace: 'ns1', name: 'svc1' },
      localEndpoints: 2,
      serviceProxyHealthy: true,
    });

    // A service missing from the counts has 0 endpoints.
    shs.syncEndpoints(new Map([['ns1/other', 3]]));
    expect((await httpGet(HOST, port, '/')).status).toBe(503);
  });

  it('answers 503 while the proxy is unhealthy, even with endpoints', async () => {
    const { shs, proxy, portOf } = setup();
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    shs.syncEndpoints(new Map([['ns1/svc1', 1]]));
    proxy.healthy = false;
    const res = await httpGet(HOST, portOf('ns1/svc1'), '/');
    expect(res.status).toBe(503);
    expect(res.headers['x-load-balancing-endpoint-weight']).toBe('1');
    expect(JSON.parse(res.body).serviceProxyHealthy).toBe(false);
  });

  it('serves each service on its own port', async () => {
    const { shs, portOf } = setup();
    await shs.syncServices(
      new Map([
        ['ns1/a', 0],
        ['ns2/b', 0],
      ]),
    );
    shs.syncEndpoints(new Map([['ns2/b', 4]]));
    expect(shs.servedServices()).toEqual(['ns1/a', 'ns2/b']);
    const a = await httpGet(HOST, portOf('ns1/a'), '/');
    const b = await httpGet(HOST, portOf('ns2/b'), '/');
    expect([a.status, JSON.parse(a.body).service]).toEqual([503, { namespace: 'ns1', name: 'a' }]);
    expect([b.status, JSON.parse(b.body).service]).toEqual([200, { namespace: 'ns2', name: 'b' }]);
  });

  it('leaves an unchanged service alone across syncs', async () => {
    const { shs, portOf } = setup();
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    shs.syncEndpoints(new Map([['ns1/svc1', 1]]));
    const port = portOf('ns1/svc1');
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    expect(portOf('ns1/svc1')).toBe(port);
    expect((await httpGet(HOST, port, '/')).status).toBe(200);
  });

  it('closes the port of a removed service', async () => {
    const { shs, portOf } = setup();
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    const port = portOf('ns1/svc1');
    await shs.syncServices(new Map());
    expect(shs.servedServices()).toEqual([]);
    expect(await httpGetError(HOST, port)).toBe('ECONNREFUSED');
  });

  it('moves a service whose health-check port changed', async () => {
    const { shs, portOf } = setup();
    const p1 = await freePort(HOST);
    let p2 = await freePort(HOST);
    while (p2 === p1) p2 = await freePort(HOST);

    await shs.syncServices(new Map([['ns1/svc1', p1]]));
    shs.syncEndpoints(new Map([['ns1/svc1', 1]]));
    expect(portOf('ns1/svc1')).toBe(p1);
    expect((await httpGet(HOST, p1, '/')).status).toBe(200);

    await shs.syncServices(new Map([['ns1/svc1', p2]]));
    expect(portOf('ns1/svc1')).toBe(p2);
    expect(await httpGetError(HOST, p1)).toBe('ECONNREFUSED');
    // A new listener starts with no endpoints until the next syncEndpoints, as upstream.
    expect((await httpGet(HOST, p2, '/')).status).toBe(503);
    shs.syncEndpoints(new Map([['ns1/svc1', 1]]));
    expect((await httpGet(HOST, p2, '/')).status).toBe(200);
  });

  it('logs a port it cannot bind, never throws, and retries at the next sync', async () => {
    const failures: string[] = [];
    const { shs, portOf } = setup({
      onListenError: (svc, port, msg) => failures.push(`${svc} ${port} ${msg}`),
    });
    const held = await holdPort(HOST);
    try {
      await shs.syncServices(
        new Map([
          ['ns1/blocked', held.port],
          ['ns1/fine', 0],
        ]),
      );
      expect(shs.servedServices()).toEqual(['ns1/fine']);
      expect(failures).toHaveLength(1);
      expect(failures[0]).toContain(
        `ns1/blocked ${held.port} node node-1 failed to start healthcheck "ns1/blocked"`,
      );
      expect(failures[0]).toContain('EADDRINUSE');
    } finally {
      await held.close();
    }

    await shs.syncServices(
      new Map([
        ['ns1/blocked', held.port],
        ['ns1/fine', 0],
      ]),
    );
    expect(shs.servedServices()).toEqual(['ns1/blocked', 'ns1/fine']);
    expect(portOf('ns1/blocked')).toBe(held.port);
    expect((await httpGet(HOST, held.port, '/')).status).toBe(503);
  });

  it('listens on every configured node IP and closes all of them', async () => {
    const port = await freePort(HOST);
    const shs = new ServiceHealthServer({
      proxyHealth: { isHealthy: () => true },
      nodeIPs: [HOST, '127.0.0.2'],
    });
    servers.push(shs);
    await shs.syncServices(new Map([['ns1/svc1', port]]));
    shs.syncEndpoints(new Map([['ns1/svc1', 1]]));
    expect(shs.addresses('ns1/svc1').map((a) => a.address)).toEqual([HOST, '127.0.0.2']);
    expect((await httpGet(HOST, port, '/')).status).toBe(200);
    expect((await httpGet('127.0.0.2', port, '/')).status).toBe(200);
    await shs.stop();
    expect(await httpGetError(HOST, port)).toBe('ECONNREFUSED');
    expect(await httpGetError('127.0.0.2', port)).toBe('ECONNREFUSED');
  });

  it('stops idempotently and ignores syncs afterwards', async () => {
    const { shs, portOf } = setup();
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    const port = portOf('ns1/svc1');
    await shs.stop();
    await shs.stop();
    await shs.syncServices(new Map([['ns1/svc1', 0]]));
    expect(shs.servedServices()).toEqual([]);
    expect(await httpGetError(HOST, port)).toBe('ECONNREFUSED');
  });
});
