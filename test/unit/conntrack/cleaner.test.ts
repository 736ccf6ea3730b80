/**
 * The cleaner as the sync loop drives it: how often it reads the table, how many netlink
 * requests one call makes on a large table, the debug flag, and failures that must never stop a
 * sync and must not lose a flush.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConntrackError } from '../../../conntrack/netlink/errors.ts';
import type { ConntrackFlow } from '../../../conntrack/netlink/types.ts';
import { createLogger } from '../../../pkg/log/logger.ts';
import { counterValue, createNodeHarness, dnat, flowSet, NODE_IP, unNATed } from './harness.ts';

/** errno 1: what the kernel answers a process without CAP_NET_ADMIN. */
const EPERM = 1;
const CIP = '172.30.0.10';
const A = '10.1.0.1';
const B = '10.1.0.2';
const udpService = (extra: Record<string, unknown> = {}) => ({
  clusterIP: CIP,
  ports: [{ name: 'p', port: 53, protocol: 'UDP' as const }],
  ...extra,
});

describe('rate limiting (fake clock)', () => {
  it('reconciles on the first sync, then at most once per interval unless a sync has work', async () => {
    const h = createNodeHarness({ minReconcileIntervalMs: 10_000 });
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }]);
    expect((await h.sync()).dumps).toBe(1);

    // A flow that only the reconciler can explain (DNATed to a pod that never was an endpoint).
    const stray = dnat(CIP, 53, '10.9.9.9', 5353);
    h.ct.add(stray);
    h.time += 1_000;
    const early = await h.sync();
    expect(early).toMatchObject({ dumps: 0, reconciled: false, netlinkRequests: 0 });
    h.time += 8_999; // 9.999 s after the first reconcile
    expect((await h.sync()).dumps).toBe(0);
    expect(h.table()).toEqual(flowSet([stray]));

    h.time += 1; // 10 s
    const due = await h.sync();
    expect(due).toMatchObject({ dumps: 1, reconciled: true });
    expect(due.deleted.reconciler).toBe(1);

    // Targeted work is never rate limited.
    h.time += 500;
    const toA = dnat(CIP, 53, A, 5353, { sport: 2 });
    h.ct.add(toA);
    h.endpoints('dns', [{ ip: B }]);
    const targeted = await h.sync();
    expect(targeted.dumps).toBe(1);
    expect(targeted.deleted['endpoint-gone']).toBe(1);

    // Neither is a forced reconcile (the sync after a failed one).
    h.time += 500;
    expect((await h.sync({ forceReconcile: true })).dumps).toBe(1);
    h.time += 500;
    expect((await h.sync()).dumps).toBe(0);
    expect(h.count('dump')).toBe(4);
  });

  it('a TCP-only change does not read the table; a UDP service change does', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.service('web', { clusterIP: '172.30.0.11', ports: [{ name: 'p', port: 80, protocol: 'TCP' }] });
    await h.sync();
    h.time += 1_000;
    h.service('web', { clusterIP: '172.30.0.11', ports: [{ name: 'p', port: 81, protocol: 'TCP' }] });
    expect((await h.sync()).dumps).toBe(0);
    h.service('dns', udpService({ externalIPs: ['192.168.99.1'] }));
    expect((await h.sync()).dumps).toBe(1);
  });
});

describe('the hidden debug flag', () => {
  it('--debug-disable-conntrack-cleanup reads and deletes nothing', async () => {
    const h = createNodeHarness({ disabled: true });
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }]);
    const flows = [dnat(CIP, 53, B, 5353, { sport: 1 }), unNATed(CIP, 53, { sport: 2 })];
    h.ct.add(...flows);
    const r = await h.sync();
    h.service('dns', undefined);
    await h.sync();
    expect(r).toMatchObject({ dumps: 0, dumped: 0, errors: 0, netlinkRequests: 0 });
    expect(h.ct.calls).toEqual([]);
    expect(h.table()).toEqual(flowSet(flows));
  });
});

describe('failures', () => {
  it('a failed dump is counted, never thrown, and the flush is retried on the next sync', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }]);
    await h.sync();
    const toA = dnat(CIP, 53, A, 5353);
    h.ct.add(toA);
    h.time += 1_000;
    h.service('dns', undefined);
    h.endpoints('dns', undefined);
    h.ct.failNextDump(new ConntrackError('dump-failed', 'EIO', 5));
    const failed = await h.sync();
    expect(failed).toMatchObject({ errors: 1, dumps: 1 });
    expect(h.table()).toEqual(flowSet([toA]));
    expect(await counterValue(h.metrics, 'kubeproxy_ts_netlink_errors_total', { operation: 'dump' })).toBe(1);

    // Nothing changed since, and the reconciler cannot know a deleted service: only the kept
    // flush can remove the flow.
    h.time += 1_000;
    const retried = await h.sync();
    expect(retried.deleted['service-deleted']).toBe(1);
    expect(h.table()).toEqual(new Set());
    h.time += 1_000;
    expect((await h.sync()).dumps).toBe(0);
  });

  it('an entry that cannot be deleted is counted; the others are deleted', async () => {
    const h = createNodeHarness();
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }, { ip: B }]);
    await h.sync();
    const stuckA = dnat(CIP, 53, A, 5353, { sport: 1 });
    const okA = dnat(CIP, 53, A, 5353, { sport: 2 });
    h.ct.add(stuckA, okA);
    h.ct.failDelete(stuckA, EPERM);
    h.endpoints('dns', [{ ip: B }]);
    const r = await h.sync();
    expect(r.errors).toBe(1);
    expect(r.deleted['endpoint-gone']).toBe(1);
    expect(h.table()).toEqual(flowSet([stuckA]));
    expect(await counterValue(h.metrics, 'kubeproxy_ts_netlink_errors_total', { operation: 'delete' })).toBe(
      1,
    );
    expect(
      await counterValue(h.metrics, 'kubeproxy_ts_conntrack_deleted_entries_total', {
        reason: 'endpoint-gone',
        ip_family: 'IPv4',
      }),
    ).toBe(1);
  });
});

describe('a large table', () => {
  it('100,000 flows with 16 stale: one dump per protocol and one delete carrying the 16', async () => {
    const h = createNodeHarness();
    const services = 250;
    const sctpEvery = 5; // every fifth service is SCTP
    const proto = (i: number) => (i % sctpEvery === 0 ? ('SCTP' as const) : ('UDP' as const));
    const cip = (i: number) => `172.30.${i >> 8}.${i & 255}`;
    const ep = (i: number, j: number) => `10.${100 + (i >> 8)}.${i & 255}.${j + 1}`;
    for (let i = 0; i < services; i++) {
      h.service(`s${i}`, {
        type: 'NodePort',
        clusterIP: cip(i),
        ports: [{ name: 'p', port: 53, protocol: proto(i), nodePort: 30000 + i }],
      });
      h.endpoints(
        `s${i}`,
        [0, 1, 2, 3].map((j) => ({ ip: ep(i, j) })),
        5353,
        proto(i),
      );
    }
    const flows: ConntrackFlow[] = [];
    let sport = 1;
    while (flows.length < 100_000 - 16) {
      const i = flows.length % services;
      const j = (flows.length >> 8) % 4;
      const s = sport++;
      const client = `10.200.${(s >> 16) & 255}.${(s >> 8) & 255}`;
      const p = { protocol: proto(i), sport: s & 0xffff || 1, client };
      // Healthy flows through cluster IPs and NodePorts, and flows that are not ours at all.
      if (s % 3 === 0) flows.push(dnat(NODE_IP, 30000 + i, ep(i, j), 5353, p));
      else if (s % 3 === 1) flows.push(dnat(cip(i), 53, ep(i, j), 5353, p));
      else flows.push(dnat(`203.0.113.${s & 255}`, 53, `203.0.113.${s & 255}`, 53, p));
    }
    const stale: ConntrackFlow[] = [];
    for (let k = 0; k < 16; k++) {
      const i = k * 3 + 1; // services 1, 4, 7, ...: both protocols among them
      const p = { protocol: proto(i), sport: 50000 + k, client: '10.250.0.1' };
      if (k % 4 === 0) stale.push(unNATed(cip(i), 53, p));
      else if (k % 4 === 1) stale.push(dnat(NODE_IP, 30000 + i, '10.99.0.1', 5353, p));
      else stale.push(dnat(cip(i), 53, ep(i, 9), 5353, p));
    }
    expect(new Set(stale.map((f) => f.protocol))).toEqual(new Set(['UDP', 'SCTP']));
    h.ct.add(...flows, ...stale);
    expect(h.ct.flows()).toHaveLength(100_000);

    const r = await h.sync();
    const dumps = h.ct.calls.filter((c) => c.kind === 'dump');
    expect(dumps.map((c) => (c.kind === 'dump' ? c.protocol : '')).sort()).toEqual(['SCTP', 'UDP']);
    const deletes = h.ct.calls.filter((c) => c.kind === 'delete');
    expect(deletes).toHaveLength(1);
    expect(flowSet(deletes[0]?.kind === 'delete' ? deletes[0].flows : [])).toEqual(flowSet(stale));
    expect(r).toMatchObject({ dumped: 100_000, dumps: 2, netlinkRequests: 2 + 16, errors: 0 });
    expect(r.deleted.reconciler).toBe(16);
    expect(h.table()).toEqual(flowSet(flows));
  });
});

describe('logs and metrics', () => {
  it('an info line says how many, why, and quotes examples; a quiet call logs at debug only', async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n'))
          if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const h = createNodeHarness({ logger: createLogger({ destination }) });
    h.service('dns', udpService());
    h.endpoints('dns', [{ ip: A }, { ip: B }]);
    await h.sync();
    expect(lines.filter((l) => l.level === 30)).toEqual([]);
    h.ct.add(dnat(CIP, 53, A, 5353, { sport: 1 }), dnat(CIP, 53, A, 5353, { sport: 2 }));
    h.endpoints('dns', [{ ip: B }]);
    await h.sync();
    await new Promise((r) => setImmediate(r));
    const info = lines.filter((l) => l.level === 30);
    expect(info).toHaveLength(1);
    expect(info[0]).toMatchObject({
      msg: 'Deleted stale conntrack entries',
      family: 'IPv4',
      deleted: 2,
      byReason: { 'endpoint-gone': 2 },
    });
    expect(info[0]?.examples).toEqual([
      expect.stringContaining(`endpoint-gone: IPv4/UDP/zone=0/10.0.0.5:1->${CIP}:53 reply ${A}:5353`),
      expect.stringContaining(`endpoint-gone: IPv4/UDP/zone=0/10.0.0.5:2->${CIP}:53 reply ${A}:5353`),
    ]);

    const text = await h.metrics.registry.metrics();
    expect(text).toContain(
      'kubeproxy_conntrack_reconciler_sync_duration_seconds_count{ip_family="IPv4"} 2\n',
    );
    expect(text).toContain('kubeproxy_ts_conntrack_dump_duration_seconds_count{ip_family="IPv4"} 2\n');
    expect(text).toContain('kubeproxy_ts_conntrack_delete_duration_seconds_count{ip_family="IPv4"} 1\n');
    expect(text).toContain(
      'kubeproxy_ts_conntrack_deleted_entries_total{reason="endpoint-gone",ip_family="IPv4"} 2\n',
    );
  });
});
