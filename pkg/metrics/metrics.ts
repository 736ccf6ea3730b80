/**
 * The proxy's Prometheus metrics, in a registry of their own (never prom-client's global one, so
 * two proxies in one test process, or a test and a daemon, never share counters).
 *
 * Names, types, help texts and label names of the `kubeproxy_` metrics are upstream kube-proxy's
 * (pkg/proxy/metrics/metrics.go, with the `ip_family` labels added in 1.33 by #130200/#130204 as
 * listed on the kubernetes.io metrics reference page), so dashboards and alerts written for
 * upstream keep working. Metrics that upstream does not have are prefixed `kubeproxy_ts_`.
 *
 * Callers never write a metric name or a label name: each metric is a field of `ProxyMetrics`
 * whose label object is typed, e.g. `m.syncProxyRulesDuration.observe({ ip_family: 'IPv4' }, s)`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Table } from '../iptables/payload.ts';
import type { IPFamily } from '../net/ip.ts';

export const METRICS_SUBSYSTEM = 'kubeproxy';
/** Prefix of metrics that exist only in kube-proxy-ts. */
export const OUR_METRICS_PREFIX = 'kubeproxy_ts';

// ---- label value types ----

export interface FamilyLabels {
  readonly ip_family: IPFamily;
}
export interface TableLabels extends FamilyLabels {
  readonly table: Table;
}
export interface TrafficPolicyLabels extends FamilyLabels {
  readonly traffic_policy: 'internal' | 'external';
}
export type HealthCode = '200' | '503';
export interface CodeLabels {
  readonly code: HealthCode;
}
/**
 * Why conntrack entries were deleted: a UDP service port went from no endpoints to some
 * (`empty-to-serving`, upstream #48524), an endpoint went away (`endpoint-gone`), the whole
 * service went away (`service-deleted`, upstream #141371), or the state-based reconciler
 * found a flow that matches no current service/endpoint (`reconciler`, upstream #127318).
 */
export type ConntrackDeleteReason = 'empty-to-serving' | 'endpoint-gone' | 'service-deleted' | 'reconciler';
export interface ConntrackReasonLabels extends FamilyLabels {
  readonly reason: ConntrackDeleteReason;
}
export type NetlinkOperation = 'open' | 'dump' | 'delete';
export interface NetlinkLabels {
  readonly operation: NetlinkOperation;
}
export type ApiObjectKind = 'Service' | 'EndpointSlice' | 'Node';
export interface KindLabels {
  readonly kind: ApiObjectKind;
}
export interface PayloadLabels extends FamilyLabels {
  readonly sync_type: 'full' | 'partial';
}

// ---- narrow metric interfaces (what callers see) ----

export interface LabeledHistogram<L> {
  observe(labels: L, value: number): void;
}
export interface LabeledCounter<L> {
  inc(labels: L, value?: number): void;
}
export interface LabeledGauge<L> {
  set(labels: L, value: number): void;
}
export interface PlainCounter {
  inc(value?: number): void;
}
export interface PlainGauge {
  set(value: number): void;
}

// ---- buckets ----

/** Go's prometheus.ExponentialBuckets: start, start·factor, ... (count values). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  let v = start;
  for (let i = 0; i < count; i++) {
    out.push(v);
    v *= factor;
  }
  return out;
}

/** Go's prometheus.LinearBuckets: start, start+width, ... (count values). */
export function linearBuckets(start: number, width: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(start + i * width);
  return out;
}

/** Upstream's sync-duration buckets: 1 ms doubling up to 16.384 s. */
export const SYNC_DURATION_BUCKETS: readonly number[] = exponentialBuckets(0.001, 2, 15);

/**
 * network_programming_duration_seconds buckets. Upstream's merge() helper starts from a slice of
 * length one, so a 0 bucket comes first; we keep it so the `le` series match upstream's exactly.
 * Then 0.25 s, 0.5 s, 1..59 s by 1, 60..115 s by 5, 120..300 s by 30.
 */
export const NETWORK_PROGRAMMING_BUCKETS: readonly number[] = [
  0,
  ...linearBuckets(0.25, 0.25, 2),
  ...linearBuckets(1, 1, 59),
  ...linearBuckets(60, 5, 12),
  ...linearBuckets(120, 30, 7),
];

/** Restore payload sizes: 1 KiB growing 4× up to 1 GiB. */
export const PAYLOAD_BYTES_BUCKETS: readonly number[] = exponentialBuckets(1024, 4, 11);

// ---- the metrics ----

export interface ProxyMetrics {
  readonly registry: Registry;

  // upstream kube-proxy (iptables mode)
  readonly syncProxyRulesDuration: LabeledHistogram<FamilyLabels>;
  readonly syncFullProxyRulesDuration: LabeledHistogram<FamilyLabels>;
  readonly syncPartialProxyRulesDuration: LabeledHistogram<FamilyLabels>;
  readonly syncProxyRulesLastTimestamp: LabeledGauge<FamilyLabels>;
  readonly syncProxyRulesLastQueuedTimestamp: LabeledGauge<FamilyLabels>;
  readonly networkProgrammingDuration: LabeledHistogram<FamilyLabels>;
  readonly endpointChangesPending: PlainGauge;
  readonly endpointChangesTotal: PlainCounter;
  readonly serviceChangesPending: PlainGauge;
  readonly serviceChangesTotal: PlainCounter;
  readonly iptablesRestoreFailuresTotal: LabeledCounter<FamilyLabels>;
  readonly iptablesPartialRestoreFailuresTotal: LabeledCounter<FamilyLabels>;
  readonly iptablesRulesTotal: LabeledGauge<TableLabels>;
  readonly iptablesRulesLast: LabeledGauge<TableLabels>;
  readonly syncProxyRulesNoLocalEndpointsTotal: LabeledGauge<TrafficPolicyLabels>;
  readonly proxyHealthzTotal: LabeledCounter<CodeLabels>;
  readonly proxyLivezTotal: LabeledCounter<CodeLabels>;
  readonly conntrackReconcilerSyncDuration: LabeledHistogram<FamilyLabels>;
  readonly conntrackReconcilerDeletedEntriesTotal: LabeledCounter<FamilyLabels>;

  // kube-proxy-ts only
  readonly conntrackDeletedEntriesTotal: LabeledCounter<ConntrackReasonLabels>;
  readonly conntrackDumpDuration: LabeledHistogram<FamilyLabels>;
  readonly conntrackDeleteDuration: LabeledHistogram<FamilyLabels>;
  readonly netlinkErrorsTotal: LabeledCounter<NetlinkLabels>;
  readonly invalidObjectsSkippedTotal: LabeledCounter<KindLabels>;
  readonly syncPayloadBytes: LabeledHistogram<PayloadLabels>;
}

/** Packet counts read from the kernel's nfacct objects, when the caller can read them. */
export interface NfacctCounts {
  /** nfacct `ct_state_invalid_dropped_pkts`. */
  readonly ctStateInvalidDroppedPackets?: number;
  /** nfacct `localhost_nps_accepted_pkts`. */
  readonly localhostNodeportsAcceptedPackets?: number;
}

export interface ProxyMetricsOptions {
  /** Also export prom-client's process_* and nodejs_* metrics (the daemon wants them; tests do not). */
  readonly processMetrics?: boolean;
  /**
   * Reads the nfacct counters at scrape time. When given, upstream's two nfacct-backed counters
   * (kubeproxy_iptables_ct_state_invalid_dropped_packets_total and
   * kubeproxy_iptables_localhost_nodeports_accepted_packets_total) are exported; a counter the
   * reader leaves undefined (its nfacct object does not exist), or a failed read, shows 0.
   */
  readonly nfacct?: () => Promise<NfacctCounts>;
}

type LabelRecord<L> = { [K in keyof L]: L[K] & string };

function labeledHistogram<L extends object>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly (keyof L & string)[],
  buckets: readonly number[],
): LabeledHistogram<L> {
  const h = new Histogram({ name, help, labelNames, buckets: [...buckets], registers: [registry] });
  return { observe: (labels, value) => h.observe(labels as LabelRecord<L>, value) };
}

function labeledCounter<L extends object>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly (keyof L & string)[],
): LabeledCounter<L> {
  const c = new Counter({ name, help, labelNames, registers: [registry] });
  return { inc: (labels, value = 1) => c.inc(labels as LabelRecord<L>, value) };
}

function labeledGauge<L extends object>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly (keyof L & string)[],
): LabeledGauge<L> {
  const g = new Gauge({ name, help, labelNames, registers: [registry] });
  return { set: (labels, value) => g.set(labels as LabelRecord<L>, value) };
}

function plainCounter(registry: Registry, name: string, help: string): PlainCounter {
  const c = new Counter({ name, help, registers: [registry] });
  return { inc: (value = 1) => c.inc(value) };
}

function plainGauge(registry: Registry, name: string, help: string): PlainGauge {
  const g = new Gauge({ name, help, registers: [registry] });
  return { set: (value) => g.set(value) };
}

const up = (name: string) => `${METRICS_SUBSYSTEM}_${name}`;
const ours = (name: string) => `${OUR_METRICS_PREFIX}_${name}`;
const FAMILY = ['ip_family'] as const;

/** Creates a fresh registry holding every proxy metric. */
export function createProxyMetrics(opts: ProxyMetricsOptions = {}): ProxyMetrics {
  const r = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: r });
  if (opts.nfacct) registerNfacctCounters(r, opts.nfacct);

  return {
    registry: r,
    syncProxyRulesDuration: labeledHistogram<FamilyLabels>(
      r,
      up('sync_proxy_rules_duration_seconds'),
      'SyncProxyRules latency in seconds',
      FAMILY,
      SYNC_DURATION_BUCKETS,
    ),
    syncFullProxyRulesDuration: labeledHistogram<FamilyLabels>(
      r,
      up('sync_full_proxy_rules_duration_seconds'),
      'SyncProxyRules latency in seconds for full resyncs',
      FAMILY,
      SYNC_DURATION_BUCKETS,
    ),
    syncPartialProxyRulesDuration: labeledHistogram<FamilyLabels>(
      r,
      up('sync_partial_proxy_rules_duration_seconds'),
      'SyncProxyRules latency in seconds for partial resyncs',
      FAMILY,
      SYNC_DURATION_BUCKETS,
    ),
    syncProxyRulesLastTimestamp: labeledGauge<FamilyLabels>(
      r,
      up('sync_proxy_rules_last_timestamp_seconds'),
      'The last time proxy rules were successfully synced',
      FAMILY,
    ),
    syncProxyRulesLastQueuedTimestamp: labeledGauge<FamilyLabels>(
      r,
      up('sync_proxy_rules_last_queued_timestamp_seconds'),
      'The last time a sync of proxy rules was queued',
      FAMILY,
    ),
    networkProgrammingDuration: labeledHistogram<FamilyLabels>(
      r,
      up('network_programming_duration_seconds'),
      'In Cluster Network Programming Latency in seconds',
      FAMILY,
      NETWORK_PROGRAMMING_BUCKETS,
    ),
    endpointChangesPending: plainGauge(
      r,
      up('sync_proxy_rules_endpoint_changes_pending'),
      'Pending proxy rules Endpoint changes',
    ),
    endpointChangesTotal: plainCounter(
      r,
      up('sync_proxy_rules_endpoint_changes_total'),
      'Cumulative proxy rules Endpoint changes',
    ),
    serviceChangesPending: plainGauge(
      r,
      up('sync_proxy_rules_service_changes_pending'),
      'Pending proxy rules Service changes',
    ),
    serviceChangesTotal: plainCounter(
      r,
      up('sync_proxy_rules_service_changes_total'),
      'Cumulative proxy rules Service changes',
    ),
    iptablesRestoreFailuresTotal: labeledCounter<FamilyLabels>(
      r,
      up('sync_proxy_rules_iptables_restore_failures_total'),
      'Cumulative proxy iptables restore failures',
      FAMILY,
    ),
    iptablesPartialRestoreFailuresTotal: labeledCounter<FamilyLabels>(
      r,
      up('sync_proxy_rules_iptables_partial_restore_failures_total'),
      'Cumulative proxy iptables partial restore failures',
      FAMILY,
    ),
    iptablesRulesTotal: labeledGauge<TableLabels>(
      r,
      up('sync_proxy_rules_iptables_total'),
      'Total number of iptables rules owned by kube-proxy',
      ['table', 'ip_family'],
    ),
    iptablesRulesLast: labeledGauge<TableLabels>(
      r,
      up('sync_proxy_rules_iptables_last'),
      'Number of iptables rules written by kube-proxy in last sync',
      ['table', 'ip_family'],
    ),
    syncProxyRulesNoLocalEndpointsTotal: labeledGauge<TrafficPolicyLabels>(
      r,
      up('sync_proxy_rules_no_local_endpoints_total'),
      'Number of services with a Local traffic policy and no endpoints',
      ['traffic_policy', 'ip_family'],
    ),
    proxyHealthzTotal: labeledCounter<CodeLabels>(
      r,
      up('proxy_healthz_total'),
      'Cumulative proxy healthz HTTP status',
      ['code'],
    ),
    proxyLivezTotal: labeledCounter<CodeLabels>(
      r,
      up('proxy_livez_total'),
      'Cumulative proxy livez HTTP status',
      ['code'],
    ),
    conntrackReconcilerSyncDuration: labeledHistogram<FamilyLabels>(
      r,
      up('conntrack_reconciler_sync_duration_seconds'),
      'ReconcileConntrackFlowsLatency latency in seconds',
      FAMILY,
      SYNC_DURATION_BUCKETS,
    ),
    conntrackReconcilerDeletedEntriesTotal: labeledCounter<FamilyLabels>(
      r,
      up('conntrack_reconciler_deleted_entries_total'),
      'Cumulative conntrack flows deleted by conntrack reconciler',
      FAMILY,
    ),

    conntrackDeletedEntriesTotal: labeledCounter<ConntrackReasonLabels>(
      r,
      ours('conntrack_deleted_entries_total'),
      'Conntrack entries deleted by kube-proxy-ts, by reason',
      ['reason', 'ip_family'],
    ),
    conntrackDumpDuration: labeledHistogram<FamilyLabels>(
      r,
      ours('conntrack_dump_duration_seconds'),
      'Time to dump the conntrack table over netlink, in seconds',
      FAMILY,
      SYNC_DURATION_BUCKETS,
    ),
    conntrackDeleteDuration: labeledHistogram<FamilyLabels>(
      r,
      ours('conntrack_delete_duration_seconds'),
      'Time to delete one batch of conntrack entries over netlink, in seconds',
      FAMILY,
      SYNC_DURATION_BUCKETS,
    ),
    netlinkErrorsTotal: labeledCounter<NetlinkLabels>(
      r,
      ours('netlink_errors_total'),
      'Netlink requests that failed, by operation',
      ['operation'],
    ),
    invalidObjectsSkippedTotal: labeledCounter<KindLabels>(
      r,
      ours('invalid_objects_skipped_total'),
      'API objects that failed validation and were skipped, by kind',
      ['kind'],
    ),
    syncPayloadBytes: labeledHistogram<PayloadLabels>(
      r,
      ours('sync_proxy_rules_payload_bytes'),
      'Size of the iptables-restore payload of one sync, in bytes',
      ['ip_family', 'sync_type'],
      PAYLOAD_BYTES_BUCKETS,
    ),
  };
}

/**
 * Upstream's nfacct-backed counters are read from the kernel at scrape time, so they are
 * counters whose value is replaced on each collect rather than incremented.
 */
function registerNfacctCounters(r: Registry, read: () => Promise<NfacctCounts>): void {
  let pending: Promise<NfacctCounts> | undefined;
  // One kernel read per scrape, shared by both counters.
  const readOnce = (): Promise<NfacctCounts> => {
    pending ??= read().finally(() => {
      pending = undefined;
    });
    return pending;
  };
  const define = (name: string, help: string, pick: (c: NfacctCounts) => number | undefined) => {
    const counter: Counter = new Counter({
      name,
      help,
      registers: [r],
      async collect() {
        counter.reset();
        const value = pick(await readOnce().catch((): NfacctCounts => ({})));
        if (value !== undefined) counter.inc(value);
      },
    });
  };
  define(
    up('iptables_ct_state_invalid_dropped_packets_total'),
    'packets dropped by iptables to work around conntrack problems',
    (c) => c.ctStateInvalidDroppedPackets,
  );
  define(
    up('iptables_localhost_nodeports_accepted_packets_total'),
    'Number of packets accepted on nodeports of loopback interface',
    (c) => c.localhostNodeportsAcceptedPackets,
  );
}
