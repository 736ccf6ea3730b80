import { afterEach, describe, expect, it } from 'vitest';
import { ListenError, parseBindAddress } from '../../../pkg/metrics/listen.ts';
import { createProxyMetrics } from '../../../pkg/metrics/metrics.ts';
import { createMetricsServer, type MetricsServer } from '../../../pkg/metrics/server.ts';
import { holdPort, httpGet, httpGetError } from './http-client.ts';

const started: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

async function startServer(config?: unknown): Promise<{ server: MetricsServer; port: number }> {
  const metrics = createProxyMetrics();
  metrics.syncProxyRulesLastTimestamp.set({ ip_family: 'IPv4' }, 1700000000);
  const server = createMetricsServer({ bindAddress: '127.0.0.1:0', registry: metrics.registry, config });
  started.push(server);
  await server.start();
  const port = server.address()!.port;
  return { server, port };
}

describe('parseBindAddress', () => {
  it.each([
    ['127.0.0.1:10249', { host: '127.0.0.1', port: 10249 }],
    ['0.0.0.0:10256', { host: '0.0.0.0', port: 10256 }],
    ['[::1]:10249', { host: '::1', port: 10249 }],
    ['[::]:10256', { host: '::', port: 10256 }],
    [':10256', { host: '', port: 10256 }],
    ['127.000.0.01:80', { host: '127.0.0.1', port: 80 }],
  ])('%s', (addr, want) => {
    expect(parseBindAddress(addr)).toEqual(want);
  });

  it.each(['localhost:10249', '127.0.0.1', '127.0.0.1:70000', '::1:10249', '[127.0.0.1]:80', '1.2.3.4:-1'])(
    'rejects %s',
    (addr) => {
      let caught: unknown;
      try {
        parseBindAddress(addr);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ListenError);
      expect((caught as ListenError).code).toBe('INVALID_BIND_ADDRESS');
      expect((caught as ListenError).message).toContain(addr);
    },
  );
});

describe('metrics server', () => {
  it('serves Prometheus text from its registry on /metrics', async () => {
    const { port } = await startServer();
    const res = await httpGet('127.0.0.1', port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.body).toContain('# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\n');
    expect(res.body).toContain(
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1700000000\n',
    );
  });

  it('answers /healthz with "ok" and /proxyMode with the mode', async () => {
    const { port } = await startServer();
    const healthz = await httpGet('127.0.0.1', port, '/healthz');
    expect(healthz.status).toBe(200);
    expect(healthz.body).toBe('ok');
    const mode = await httpGet('127.0.0.1', port, '/proxyMode');
    expect(mode.status).toBe(200);
    expect(mode.body).toBe('iptables');
    expect(mode.headers['x-content-type-options']).toBe('nosniff');
  });

  it('serves the configuration on /configz under its API group', async () => {
    const config = { mode: 'iptables', iptables: { syncPeriod: '30s', masqueradeBit: 14 } };
    const { port } = await startServer(config);
    const res = await httpGet('127.0.0.1', port, '/configz');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(JSON.parse(res.body)).toEqual({ 'kubeproxy.config.k8s.io': config });
  });

  it('answers 404 for other paths', async () => {
    const { port } = await startServer();
    const res = await httpGet('127.0.0.1', port, '/metricsz');
    expect(res.status).toBe(404);
  });

  it('fails to start with the address in the message when the port is taken', async () => {
    const held = await holdPort('127.0.0.1');
    try {
      const server = createMetricsServer({
        bindAddress: `127.0.0.1:${held.port}`,
        registry: createProxyMetrics().registry,
      });
      started.push(server);
      const err = await server.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ListenError);
      expect((err as ListenError).code).toBe('LISTEN_FAILED');
      expect((err as ListenError).message).toContain(`127.0.0.1:${held.port}`);
      expect((err as ListenError).message).toContain('EADDRINUSE');

      // Once the port is free, a second start() succeeds.
      await held.close();
      await server.start();
      expect((await httpGet('127.0.0.1', held.port, '/healthz')).body).toBe('ok');
    } finally {
      await held.close().catch(() => {});
    }
  });

  it('binds once when start() is called twice at the same time', async () => {
    const server = createMetricsServer({
      bindAddress: '127.0.0.1:0',
      registry: createProxyMetrics().registry,
    });
    started.push(server);
    await Promise.all([server.start(), server.start()]);
    const port = server.address()!.port;
    expect((await httpGet('127.0.0.1', port, '/healthz')).body).toBe('ok');
    await server.stop();
    expect(await httpGetError('127.0.0.1', port, '/healthz')).toBe('ECONNREFUSED');
  });

  it('is disabled by an empty bind address', async () => {
    const server = createMetricsServer({ bindAddress: '', registry: createProxyMetrics().registry });
    await server.start();
    expect(server.address()).toBeUndefined();
    await server.stop();
  });

  it('rejects a malformed bind address when created', () => {
    expect(() =>
      createMetricsServer({ bindAddress: 'nonsense', registry: createProxyMetrics().registry }),
    ).toThrow(ListenError);
  });

  it('stops idempotently and closes the port', async () => {
    const { server, port } = await startServer();
    await server.start(); // a second start while running changes nothing
    expect(server.address()!.port).toBe(port);
    await server.stop();
    await server.stop();
    expect(server.address()).toBeUndefined();
    expect(await httpGetError('127.0.0.1', port, '/healthz')).toBe('ECONNREFUSED');
  });
});
