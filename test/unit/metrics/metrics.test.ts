import type { MetricObject } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  createProxyMetrics,
  NETWORK_PROGRAMMING_BUCKETS,
  SYNC_DURATION_BUCKETS,
} from '../../../pkg/metrics/metrics.ts';

/**
 * Upstream kube-proxy's metrics in iptables mode, as the kubernetes.io metrics reference lists
 * them for kube-proxy (1.33+: name, help, type, labels). The nftables-only failure counters are
 * left out; the two nfacct-backed counters are checked separately (they need a reader).
 */
const UPSTREAM: readonly {
  name: string;
  type: 'histogram' | 'gauge' | 'counter';
  labels: string[];
  help: string;
}[] = [
  {
    name: 'kubeproxy_conntrack_reconciler_deleted_entries_total',
    type: 'counter',
    labels: ['ip_family'],
    help: 'Cumulative conntrack flows deleted by conntrack reconciler',
  },
  {
    name: 'kubeproxy_conntrack_reconciler_sync_duration_seconds',
    type: 'histogram',
    labels: ['ip_family'],
    help: 'ReconcileConntrackFlowsLatency latency in seconds',
  },
  {
    name: 'kubeproxy_network_programming_duration_seconds',
    type: 'histogram',
    labels: ['ip_family'],
    help: 'In Cluster Network Programming Latency in seconds',
  },
  {
    name: 'kubeproxy_proxy_healthz_total',
    type: 'counter',
    labels: ['code'],
    help: 'Cumulative proxy healthz HTTP status',
  },
  {
    name: 'kubeproxy_proxy_livez_total',
    type: 'counter',
    labels: ['code'],
    help: 'Cumulative proxy livez HTTP status',
  },
  {
    name: 'kubeproxy_sync_full_proxy_rules_duration_seconds',
    type: 'histogram',
    labels: ['ip_family'],
    help: 'SyncProxyRules latency in seconds for full resyncs',
  },
  {
    name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
    type: 'histogram',
    labels: ['ip_family'],
    help: 'SyncProxyRules latency in seconds for partial resyncs',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_duration_seconds',
    type: 'histogram',
    labels: ['ip_family'],
    help: 'SyncProxyRules latency in seconds',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
    type: 'gauge',
    labels: [],
    help: 'Pending proxy rules Endpoint changes',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
    type: 'counter',
    labels: [],
    help: 'Cumulative proxy rules Endpoint changes',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_iptables_last',
    type: 'gauge',
    labels: ['ip_family', 'table'],
    help: 'Number of iptables rules written by kube-proxy in last sync',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
    type: 'counter',
    labels: ['ip_family'],
    help: 'Cumulative proxy iptables partial restore failures',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
    type: 'counter',
    labels: ['ip_family'],
    help: 'Cumulative proxy iptables restore failures',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_iptables_total',
    type: 'gauge',
    labels: ['ip_family', 'table'],
    help: 'Total number of iptables rules owned by kube-proxy',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
    type: 'gauge',
    labels: ['ip_family'],
    help: 'The last time a sync of proxy rules was queued',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
    type: 'gauge',
    labels: ['ip_family'],
    help: 'The last time proxy rules were successfully synced',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
    type: 'gauge',
    labels: ['ip_family', 'traffic_policy'],
    help: 'Number of services with a Local traffic policy and no endpoints',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
    type: 'gauge',
    labels: [],
    help: 'Pending proxy rules Service changes',
  },
  {
    name: 'kubeproxy_sync_proxy_rules_service_changes_total',
    type: 'counter',
    labels: [],
    help: 'Cumulative proxy rules Service changes',
  },
];

interface Described {
  name: string;
  type: string;
  labels: string[];
  help: string;
}

function describeAll(metrics: MetricObject[]): Map<string, Described> {
  return new Map(
    metrics.map((m) => {
      const labelNames = (m as unknown as { labelNames: string[] }).labelNames;
      return [m.name, { name: m.name, type: String(m.type), labels: [...labelNames].sort(), help: m.help }];
    }),
  );
}

/** The `le` values of a histogram's bucket lines, in output order. */
function bucketBounds(text: string, name: string): string[] {
  const re = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} `, 'gm');
  return [...text.matchAll(re)].map((m) => m[1]!);
}

describe('proxy metrics', () => {
  it('registers every upstream iptables-mode metric with its type, labels and help', () => {
    const have = describeAll(createProxyMetrics().registry.getMetricsAsArray());
    for (const want of UPSTREAM) {
      expect(have.get(want.name), want.name).toEqual({ ...want, labels: [...want.labels].sort() });
    }
  });

  it('has no kubeproxy_ metric that upstream lacks: our own are prefixed kubeproxy_ts_', () => {
    const names = createProxyMetrics()
      .registry.getMetricsAsArray()
      .map((m) => m.name);
    const upstream = new Set(UPSTREAM.map((u) => u.name));
    const foreign = names.filter((n) => !upstream.has(n) && !n.startsWith('kubeproxy_ts_'));
    expect(foreign).toEqual([]);
    expect(names.filter((n) => n.startsWith('kubeproxy_ts_')).sort()).toEqual([
      'kubeproxy_ts_conntrack_delete_duration_seconds',
      'kubeproxy_ts_conntrack_deleted_entries_total',
      'kubeproxy_ts_conntrack_dump_duration_seconds',
      'kubeproxy_ts_invalid_objects_skipped_total',
      'kubeproxy_ts_netlink_errors_total',
      'kubeproxy_ts_sync_proxy_rules_payload_bytes',
    ]);
  });

  it('uses upstream buckets: 0.001·2^k for durations, the special series for network programming', async () => {
    const m = createProxyMetrics();
    m.syncProxyRulesDuration.observe({ ip_family: 'IPv4' }, 0.02);
    m.networkProgrammingDuration.observe({ ip_family: 'IPv4' }, 3);
    const text = await m.registry.metrics();

    expect(bucketBounds(text, 'kubeproxy_sync_proxy_rules_duration_seconds')).toEqual([
      '0.001',
      '0.002',
      '0.004',
      '0.008',
      '0.016',
      '0.032',
      '0.064',
      '0.128',
      '0.256',
      '0.512',
      '1.024',
      '2.048',
      '4.096',
      '8.192',
      '16.384',
      '+Inf',
    ]);
    expect(SYNC_DURATION_BUCKETS).toHaveLength(15);

    const np = bucketBounds(text, 'kubeproxy_network_programming_duration_seconds');
    const expected = ['0', '0.25', '0.5'];
    for (let s = 1; s <= 59; s++) expected.push(String(s));
    for (let s = 60; s <= 115; s += 5) expected.push(String(s));
    for (let s = 120; s <= 300; s += 30) expected.push(String(s));
    expected.push('+Inf');
    expect(np).toEqual(expected);
    expect(NETWORK_PROGRAMMING_BUCKETS).toHaveLength(expected.length - 1);
  });

  it('records typed observations under their labels', async () => {
    const m = createProxyMetrics();
    m.syncProxyRulesDuration.observe({ ip_family: 'IPv4' }, 0.003);
    m.syncProxyRulesDuration.observe({ ip_family: 'IPv4' }, 0.5);
    m.syncProxyRulesDuration.observe({ ip_family: 'IPv6' }, 0.5);
    m.iptablesRulesTotal.set({ table: 'nat', ip_family: 'IPv4' }, 42);
    m.syncProxyRulesNoLocalEndpointsTotal.set({ traffic_policy: 'external', ip_family: 'IPv6' }, 3);
    m.endpointChangesPending.set(7);
    m.serviceChangesTotal.inc();
    m.serviceChangesTotal.inc(2);
    m.proxyHealthzTotal.inc({ code: '503' });
    m.conntrackDeletedEntriesTotal.inc({ reason: 'endpoint-gone', ip_family: 'IPv4' }, 5);
    m.invalidObjectsSkippedTotal.inc({ kind: 'EndpointSlice' });
    m.syncPayloadBytes.observe({ ip_family: 'IPv4', sync_type: 'partial' }, 3000);
    const text = await m.registry.metrics();

    expect(text).toContain('kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 2\n');
    expect(text).toContain('kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 0.503\n');
    expect(text).toContain(
      'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004",ip_family="IPv4"} 1\n',
    );
    expect(text).toContain('kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv6"} 1\n');
    expect(text).toContain('kubeproxy_sync_proxy_rules_iptables_total{table="nat",ip_family="IPv4"} 42\n');
    expect(text).toContain(
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external",ip_family="IPv6"} 3\n',
    );
    expect(text).toContain('kubeproxy_sync_proxy_rules_endpoint_changes_pending 7\n');
    expect(text).toContain('kubeproxy_sync_proxy_rules_service_changes_total 3\n');
    expect(text).toContain('kubeproxy_proxy_healthz_total{code="503"} 1\n');
    expect(text).toContain(
      'kubeproxy_ts_conntrack_deleted_entries_total{reason="endpoint-gone",ip_family="IPv4"} 5\n',
    );
    expect(text).toContain('kubeproxy_ts_invalid_objects_skipped_total{kind="EndpointSlice"} 1\n');
    expect(text).toContain(
      'kubeproxy_ts_sync_proxy_rules_payload_bytes_bucket{le="4096",ip_family="IPv4",sync_type="partial"} 1\n',
    );
    expect(text).toContain(
      'kubeproxy_ts_sync_proxy_rules_payload_bytes_bucket{le="1024",ip_family="IPv4",sync_type="partial"} 0\n',
    );
  });

  it('gives each proxy its own registry', async () => {
    const a = createProxyMetrics();
    const b = createProxyMetrics();
    a.serviceChangesTotal.inc(5);
    expect(await a.registry.metrics()).toContain('kubeproxy_sync_proxy_rules_service_changes_total 5\n');
    expect(await b.registry.metrics()).toContain('kubeproxy_sync_proxy_rules_service_changes_total 0\n');
  });

  it('exports the nfacct counters only with a reader, read once per scrape', async () => {
    const without = await createProxyMetrics().registry.metrics();
    expect(without).not.toContain('kubeproxy_iptables_ct_state_invalid_dropped_packets_total');

    let reads = 0;
    let dropped = 10;
    const m = createProxyMetrics({
      nfacct: async () => {
        reads++;
        return { ctStateInvalidDroppedPackets: dropped, localhostNodeportsAcceptedPackets: 4 };
      },
    });
    const first = await m.registry.metrics();
    expect(first).toContain('# TYPE kubeproxy_iptables_ct_state_invalid_dropped_packets_total counter\n');
    expect(first).toContain('kubeproxy_iptables_ct_state_invalid_dropped_packets_total 10\n');
    expect(first).toContain('kubeproxy_iptables_localhost_nodeports_accepted_packets_total 4\n');
    expect(reads).toBe(1);

    dropped = 25;
    const second = await m.registry.metrics();
    // The kernel's count replaces the previous value; it is not added to it.
    expect(second).toContain('kubeproxy_iptables_ct_state_invalid_dropped_packets_total 25\n');
    expect(reads).toBe(2);
  });

  it('shows 0 when the nfacct read fails', async () => {
    const m = createProxyMetrics({
      nfacct: () => Promise.reject(new Error('nfacct: operation not permitted')),
    });
    const text = await m.registry.metrics();
    expect(text).toContain('kubeproxy_iptables_ct_state_invalid_dropped_packets_total 0\n');
  });

  it('adds process metrics on request', async () => {
    const text = await createProxyMetrics({ processMetrics: true }).registry.metrics();
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  });
});
