import { afterEach, describe, expect, it } from 'vitest';
import {
  computeHealth,
  formatGoTime,
  healthTimeoutForSyncPeriod,
  isNodeEligible,
  ProxyHealthServer,
} from '../../../pkg/health/proxy-health.ts';
import { type Node, nodeSchema } from '../../../pkg/k8s/schemas.ts';
import { ListenError } from '../../../pkg/metrics/listen.ts';
import { createProxyMetrics, type ProxyMetrics } from '../../../pkg/metrics/metrics.ts';
import { holdPort, httpGet, httpGetError } from '../metrics/http-client.ts';

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5); // 2025-01-02T03:04:05Z
const SYNC_PERIOD = 30_000;
const TIMEOUT = healthTimeoutForSyncPeriod(SYNC_PERIOD);

function node(extra: { deletionTimestamp?: string; taints?: { key: string; effect?: string }[] } = {}): Node {
  return nodeSchema.parse({
    metadata: {
      name: 'node-1',
      ...(extra.deletionTimestamp ? { deletionTimestamp: extra.deletionTimestamp } : {}),
    },
    spec: extra.taints ? { taints: extra.taints } : {},
  });
}

interface Harness {
  readonly hs: ProxyHealthServer;
  readonly metrics: ProxyMetrics;
  readonly port: number;
  advance(ms: number): void;
  get(path: string): Promise<{ status: number; body: string; json: Record<string, unknown> }>;
}

const servers: ProxyHealthServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function harness(): Promise<Harness> {
  let t = T0;
  const metrics = createProxyMetrics();
  const hs = new ProxyHealthServer({
    bindAddress: '127.0.0.1:0',
    healthTimeoutMs: TIMEOUT,
    now: () => t,
    metrics,
  });
  servers.push(hs);
  await hs.start();
  const port = hs.address()!.port;
  return {
    hs,
    metrics,
    port,
    advance: (ms) => {
      t += ms;
    },
    get: async (path) => {
      const res = await httpGet('127.0.0.1', port, path);
      return { status: res.status, body: res.body, json: JSON.parse(res.body) as Record<string, unknown> };
    },
  };
}

describe('computeHealth (pure)', () => {
  const state = (updated: [string, number][], queued: [string, number][]) => ({
    lastUpdated: new Map(updated) as Map<'IPv4' | 'IPv6', number>,
    oldestPendingQueued: new Map(queued) as Map<'IPv4' | 'IPv6', number>,
  });

  it('is healthy with nothing recorded', () => {
    expect(computeHealth(state([], []), T0, TIMEOUT)).toEqual({
      lastUpdated: undefined,
      currentTime: T0,
      healthy: true,
      status: new Map(),
    });
  });

  it('is healthy however old the last sync when nothing is pending', () => {
    expect(computeHealth(state([['IPv4', T0]], []), T0 + 10 * TIMEOUT, TIMEOUT).healthy).toBe(true);
  });

  it('turns unhealthy exactly when a pending change reaches the timeout', () => {
    const s = state([['IPv4', T0]], [['IPv4', T0 + 1000]]);
    expect(computeHealth(s, T0 + 1000 + TIMEOUT - 1, TIMEOUT).healthy).toBe(true);
    expect(computeHealth(s, T0 + 1000 + TIMEOUT, TIMEOUT).healthy).toBe(false);
  });

  it('ignores a family that never synced (its sync loop has not started)', () => {
    const s = state([['IPv4', T0]], [['IPv6', T0]]);
    const h = computeHealth(s, T0 + 2 * TIMEOUT, TIMEOUT);
    expect(h.healthy).toBe(true);
    expect([...h.status.keys()]).toEqual(['IPv4']);
  });

  it('reports the most recent lastUpdated of all families', () => {
    const h = computeHealth(
      state(
        [
          ['IPv4', T0 + 5],
          ['IPv6', T0 + 9],
        ],
        [],
      ),
      T0 + 10,
      TIMEOUT,
    );
    expect(h.lastUpdated).toBe(T0 + 9);
  });
});

describe('formatGoTime', () => {
  it.each([
    [Date.UTC(2025, 0, 2, 3, 4, 5), '2025-01-02T03:04:05Z'],
    [Date.UTC(2025, 0, 2, 3, 4, 5, 120), '2025-01-02T03:04:05.12Z'],
    [Date.UTC(2025, 0, 2, 3, 4, 5, 1), '2025-01-02T03:04:05.001Z'],
    [Date.UTC(2025, 0, 2, 3, 4, 5) + 0.5, '2025-01-02T03:04:05.0005Z'],
    [undefined, '0001-01-01T00:00:00Z'],
  ])('%s → %s', (ms, want) => {
    expect(formatGoTime(ms)).toBe(want);
  });
});

describe('isNodeEligible', () => {
  it.each([
    ['unknown node', undefined, false],
    ['plain node', node(), true],
    ['node being deleted', node({ deletionTimestamp: '2025-01-02T03:04:05Z' }), false],
    [
      'node tainted by the cluster autoscaler',
      node({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] }),
      false,
    ],
    ['node with another taint', node({ taints: [{ key: 'node.kubernetes.io/unschedulable' }] }), true],
  ])('%s', (_name, n, want) => {
    expect(isNodeEligible(n)).toBe(want);
  });
});

describe('proxy health server', () => {
  it('is healthy at start: /livez 200, /healthz 200 once the Node is known', async () => {
    const h = await harness();
    expect((await h.get('/livez')).status).toBe(200);
    // The Node object is not known yet: not eligible.
    const before = await h.get('/healthz');
    expect(before.status).toBe(503);
    expect(before.json.nodeEligible).toBe(false);
    expect(before.json.healthy).toBe(true);

    h.hs.syncNode(node());
    h.hs.updated('IPv4');
    const after = await h.get('/healthz');
    expect(after.status).toBe(200);
    expect(after.json.nodeEligible).toBe(true);
  });

  it('goes 503 when a queued update is not synced within the timeout, and 200 again after a sync', async () => {
    const h = await harness();
    h.hs.syncNode(node());
    h.hs.updated('IPv4');
    h.advance(5000);
    h.hs.queuedUpdate('IPv4');

    h.advance(TIMEOUT - 1);
    expect((await h.get('/healthz')).status).toBe(200);
    expect((await h.get('/livez')).status).toBe(200);

    h.advance(1);
    const healthz = await h.get('/healthz');
    expect(healthz.status).toBe(503);
    expect(healthz.json.healthy).toBe(false);
    expect(healthz.json.status).toEqual({ IPv4: { lastUpdated: formatGoTime(T0), healthy: false } });
    // Unhealthy: the top-level lastUpdated is the real last sync, not now.
    expect(healthz.json.lastUpdated).toBe(formatGoTime(T0));
    expect((await h.get('/livez')).status).toBe(503);
    expect(h.hs.isHealthy()).toBe(false);

    h.hs.updated('IPv4');
    expect((await h.get('/healthz')).status).toBe(200);
    expect((await h.get('/livez')).status).toBe(200);
  });

  it('counts the timeout from the oldest queued update', async () => {
    const h = await harness();
    h.hs.syncNode(node());
    h.hs.updated('IPv4');
    h.hs.queuedUpdate('IPv4');
    h.advance(TIMEOUT / 2);
    h.hs.queuedUpdate('IPv4'); // does not move the clock of the pending change
    h.advance(TIMEOUT / 2);
    expect((await h.get('/livez')).status).toBe(503);
  });

  it('fails /healthz but not /livez for a node being deleted or tainted for deletion', async () => {
    const h = await harness();
    h.hs.updated('IPv4');
    h.hs.syncNode(node({ deletionTimestamp: '2025-01-02T03:04:05Z' }));
    const healthz = await h.get('/healthz');
    expect(healthz.status).toBe(503);
    expect(healthz.json.nodeEligible).toBe(false);
    expect(healthz.json.healthy).toBe(true);
    // Not ok, so lastUpdated is the last sync rather than now.
    expect(healthz.json.lastUpdated).toBe(formatGoTime(T0));
    const livez = await h.get('/livez');
    expect(livez.status).toBe(200);
    expect(livez.json).not.toHaveProperty('nodeEligible');

    h.hs.syncNode(node({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] }));
    expect((await h.get('/healthz')).status).toBe(503);
    expect((await h.get('/livez')).status).toBe(200);

    h.hs.syncNode(node());
    expect((await h.get('/healthz')).status).toBe(200);
  });

  it('judges each IP family on its own', async () => {
    const h = await harness();
    h.hs.syncNode(node());
    h.hs.updated('IPv4');
    h.hs.updated('IPv6');
    h.advance(1000);
    h.hs.queuedUpdate('IPv6');
    h.hs.queuedUpdate('IPv4');
    h.advance(10);
    h.hs.updated('IPv4'); // IPv4 keeps up, IPv6 does not
    h.advance(TIMEOUT);

    const res = await h.get('/livez');
    expect(res.status).toBe(503);
    expect(res.json.status).toEqual({
      IPv4: { lastUpdated: formatGoTime(T0 + 1010), healthy: true },
      IPv6: { lastUpdated: formatGoTime(T0), healthy: false },
    });
    // The most recent sync of any family.
    expect(res.json.lastUpdated).toBe(formatGoTime(T0 + 1010));
  });

  it('writes upstream bodies and headers byte for byte', async () => {
    const h = await harness();
    h.hs.syncNode(node());
    h.hs.updated('IPv4');
    h.advance(1500);

    const healthz = await httpGet('127.0.0.1', h.port, '/healthz');
    expect(healthz.status).toBe(200);
    expect(healthz.headers['content-type']).toBe('application/json');
    expect(healthz.headers['x-content-type-options']).toBe('nosniff');
    // Healthy: the top-level lastUpdated reports "now", as older releases did.
    expect(healthz.body).toBe(
      '{"lastUpdated":"2025-01-02T03:04:06.5Z","currentTime":"2025-01-02T03:04:06.5Z","nodeEligible":true,' +
        '"healthy":true,"status":{"IPv4":{"lastUpdated":"2025-01-02T03:04:05Z","healthy":true}}}',
    );

    const livez = await httpGet('127.0.0.1', h.port, '/livez');
    expect(livez.headers['content-type']).toBe('application/json');
    expect(livez.headers['x-content-type-options']).toBe('nosniff');
    expect(livez.body).toBe(
      '{"lastUpdated":"2025-01-02T03:04:06.5Z","currentTime":"2025-01-02T03:04:06.5Z",' +
        '"healthy":true,"status":{"IPv4":{"lastUpdated":"2025-01-02T03:04:05Z","healthy":true}}}',
    );
  });

  it('omits status before any sync', async () => {
    const h = await harness();
    const livez = await httpGet('127.0.0.1', h.port, '/livez');
    expect(livez.body).toBe(
      '{"lastUpdated":"2025-01-02T03:04:05Z","currentTime":"2025-01-02T03:04:05Z","healthy":true}',
    );
  });

  it('counts answers by code in proxy_healthz_total and proxy_livez_total', async () => {
    const h = await harness();
    h.hs.updated('IPv4');
    await h.get('/healthz'); // 503: node unknown
    h.hs.syncNode(node());
    await h.get('/healthz');
    await h.get('/healthz');
    await h.get('/livez');
    const text = await h.metrics.registry.metrics();
    expect(text).toContain('kubeproxy_proxy_healthz_total{code="503"} 1\n');
    expect(text).toContain('kubeproxy_proxy_healthz_total{code="200"} 2\n');
    expect(text).toContain('kubeproxy_proxy_livez_total{code="200"} 1\n');
    expect(text).not.toContain('kubeproxy_proxy_livez_total{code="503"}');
  });

  it('answers 404 for other paths and does not count them', async () => {
    const h = await harness();
    const res = await httpGet('127.0.0.1', h.port, '/healthz/extra');
    expect(res.status).toBe(404);
    expect(await h.metrics.registry.metrics()).not.toContain('kubeproxy_proxy_healthz_total{');
  });

  it('reports a port it cannot bind with the address, and stops idempotently', async () => {
    const held = await holdPort('127.0.0.1');
    try {
      const hs = new ProxyHealthServer({ bindAddress: `127.0.0.1:${held.port}`, healthTimeoutMs: TIMEOUT });
      servers.push(hs);
      const err = await hs.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ListenError);
      expect((err as ListenError).message).toContain(`127.0.0.1:${held.port}`);
    } finally {
      await held.close();
    }

    const h = await harness();
    await h.hs.stop();
    await h.hs.stop();
    expect(await httpGetError('127.0.0.1', h.port, '/livez')).toBe('ECONNREFUSED');
  });

  it('tracks health with the HTTP server disabled', async () => {
    let t = T0;
    const hs = new ProxyHealthServer({ bindAddress: '', healthTimeoutMs: TIMEOUT, now: () => t });
    await hs.start();
    expect(hs.address()).toBeUndefined();
    hs.updated('IPv4');
    hs.queuedUpdate('IPv4');
    t += TIMEOUT;
    expect(hs.isHealthy()).toBe(false);
    await hs.stop();
  });
});
