/**
 * The iptables proxier of one IP family: informer events go into the change trackers, and one
 * function, `syncProxyRules`, writes to the kernel. It renders from the proxier's maps (pure),
 * applies the payload with one `iptables-restore --noflush`, then hands the sync's changes to
 * conntrack cleanup, which must come after the rules are in (new DNAT rules first, then the stale
 * flows go, so a deleted entry is re-created through the new rules).
 */

import type { CleanupInput } from '../conntrack/cleanup.ts';
import { BoundedFrequencyRunner, type Clock, realClock } from '../pkg/async/bounded-frequency-runner.ts';
import type { ProxyHealthServer } from '../pkg/health/proxy-health.ts';
import type { ServiceHealthServer } from '../pkg/health/service-health.ts';
import { chainNamesOf } from '../pkg/iptables/parse.ts';
import { payloadLength } from '../pkg/iptables/payload.ts';
import type { Iptables, RestorePayload, Table } from '../pkg/iptables/types.ts';
import type { EndpointSlice, Node, Service } from '../pkg/k8s/schemas.ts';
import { TOPOLOGY_ZONE_LABEL } from '../pkg/k8s/schemas.ts';
import type { Logger } from '../pkg/log/logger.ts';
import type { ProxyMetrics } from '../pkg/metrics/metrics.ts';
import { parseIP } from '../pkg/net/ip.ts';
import { createEndpointsChangeTracker, type EndpointsChangeTracker } from './endpointschangetracker.ts';
import { createEndpointsMap, type EndpointsMapStore, type EndpointsMapUpdateResult } from './endpointsmap.ts';
import { createIncrementalRenderer, type IncrementalRenderer } from './incremental.ts';
import { declaredAmong, missingJumpLines, withLinesBeforeCommit } from './jumps.ts';
import { type RenderConfig, type RenderResult, renderBuiltinJumps } from './render.ts';
import { createServiceChangeTracker, type ServiceChangeTracker } from './servicechangetracker.ts';
import { createServiceMap, type ServiceMap } from './servicemap.ts';
import type { IPFamily, ServiceKey } from './types.ts';

/** Upstream forces a full sync at least hourly ("time.Hour is arbitrary"); the canary covers flushes. */
export const FULL_SYNC_PERIOD_MS = 60 * 60 * 1000;

/** The part of conntrack cleanup the proxier calls, after each successful restore; it never throws. */
export interface ConntrackCleanup {
  afterSync(input: CleanupInput): Promise<unknown>;
}

/** Render settings the daemon fixes at start; the proxier adds what it learns at run time. */
export type StaticRenderConfig = Omit<
  RenderConfig,
  'family' | 'nodeLabels' | 'hasRandomFully' | 'localAddresses'
>;

export interface ProxierOptions {
  readonly family: IPFamily;
  readonly iptables: Iptables;
  readonly render: StaticRenderConfig;
  /** --iptables-sync-period: retry delay after a failure, canary poll interval. */
  readonly syncPeriodMs: number;
  /** --iptables-min-sync-period. */
  readonly minSyncPeriodMs: number;
  readonly logger: Logger;
  readonly conntrack?: ConntrackCleanup;
  readonly metrics?: ProxyMetrics;
  readonly health?: ProxyHealthServer;
  readonly serviceHealth?: ServiceHealthServer;
  /** Addresses on the node's interfaces, read at each sync when nodePortAddresses needs them. */
  readonly localAddresses?: () => readonly string[];
  readonly clock?: Clock;
  /** Wall clock for timestamps and latencies (ms since the epoch). */
  readonly wallNow?: () => number;
}

/** Outcome of one sync, for tests and logs. */
export interface SyncOutcome {
  readonly ran: boolean;
  readonly full: boolean;
  readonly ok: boolean;
  readonly payloadBytes: number;
  readonly render?: RenderResult;
  readonly error?: unknown;
}

export class Proxier {
  readonly family: IPFamily;
  private readonly opts: ProxierOptions;
  private readonly log: Logger;
  private readonly serviceChanges: ServiceChangeTracker;
  private readonly endpointsChanges: EndpointsChangeTracker;
  private readonly serviceMap: ServiceMap = createServiceMap();
  private readonly endpointsMap: EndpointsMapStore = createEndpointsMap();
  private readonly runner: BoundedFrequencyRunner;
  /** Renders partial syncs as edits of what the last successful restore left (O(changes)). */
  private readonly renderer: IncrementalRenderer = createIncrementalRenderer();
  private readonly clock: Clock;
  private readonly wallNow: () => number;

  private servicesSynced = false;
  private endpointSlicesSynced = false;
  private needFullSync = true;
  private lastFullSync = Number.NEGATIVE_INFINITY;
  private nodeLabels: Readonly<Record<string, string>> = {};
  /** Service chains our successful restores left in nat; partial syncs delete stale ones from it. */
  private knownNatChains: Set<string> | undefined;
  private hasRandomFully: boolean | undefined;
  private syncing: Promise<SyncOutcome> | undefined;
  /** The last sync failed: its change results (and targeted conntrack flushes) were lost. */
  private lastSyncFailed = false;

  constructor(nodeName: string, opts: ProxierOptions) {
    this.family = opts.family;
    this.opts = opts;
    this.log = opts.logger.child({ component: 'proxier', ipFamily: opts.family });
    this.clock = opts.clock ?? realClock;
    this.wallNow = opts.wallNow ?? Date.now;
    this.serviceChanges = createServiceChangeTracker(opts.family);
    this.endpointsChanges = createEndpointsChangeTracker({ family: opts.family, nodeName });
    this.runner = new BoundedFrequencyRunner(
      async () => {
        await this.syncProxyRules();
      },
      {
        minIntervalMs: opts.minSyncPeriodMs,
        maxIntervalMs: Math.max(opts.syncPeriodMs, opts.minSyncPeriodMs, 1),
        burstRuns: 2,
        clock: this.clock,
        onError: (err) => this.log.error({ err }, 'sync loop error'),
      },
    );
  }

  // ---- informer events: record, then ask for a sync; never touch the kernel here ----

  onServiceUpdate(old: Service | undefined, cur: Service | undefined): void {
    this.opts.metrics?.serviceChangesTotal.inc();
    if (this.serviceChanges.update(old, cur)) this.requestSync();
    this.opts.metrics?.serviceChangesPending.set(this.serviceChanges.pendingCount());
  }

  onServicesSynced(): void {
    this.servicesSynced = true;
    void this.syncNowIfReady();
  }

  onEndpointSliceUpdate(slice: EndpointSlice, removed: boolean): void {
    if (this.endpointsChanges.endpointSliceUpdate(slice, removed)) {
      this.opts.metrics?.endpointChangesTotal.inc();
      this.requestSync();
    }
    this.opts.metrics?.endpointChangesPending.set(this.endpointsChanges.pendingCount());
  }

  onEndpointSlicesSynced(): void {
    this.endpointSlicesSynced = true;
    void this.syncNowIfReady();
  }

  /** This node's object: new topology labels need every service re-rendered. */
  onNodeUpdate(node: Node | undefined): void {
    const labels = node?.metadata.labels ?? {};
    if (sameLabels(labels, this.nodeLabels)) return;
    this.log.info({ zone: labels[TOPOLOGY_ZONE_LABEL] }, 'node labels changed, full sync queued');
    this.nodeLabels = { ...labels };
    this.needFullSync = true;
    this.requestSync();
  }

  /** Someone flushed our tables (the canary is gone): rebuild everything now. */
  forceFullSync(): void {
    this.needFullSync = true;
    this.requestSync();
  }

  get initialized(): boolean {
    return this.servicesSynced && this.endpointSlicesSynced;
  }

  requestSync(): void {
    if (!this.initialized) return;
    this.opts.health?.queuedUpdate(this.family);
    this.opts.metrics?.syncProxyRulesLastQueuedTimestamp.set(
      { ip_family: this.family },
      this.wallNow() / 1000,
    );
    this.runner.run();
  }

  /** Starts the periodic loop; syncs begin once Services and EndpointSlices are both listed. */
  start(): void {
    // Healthy while starting: upstream marks the family updated once when the loop starts.
    this.opts.health?.updated(this.family);
    this.runner.start();
  }

  async stop(): Promise<void> {
    await this.runner.stop();
    await this.syncing;
  }

  private async syncNowIfReady(): Promise<void> {
    if (!this.initialized) return;
    // The first sync after both caches are filled runs at once, outside the rate limit.
    await this.syncProxyRules();
  }

  /**
   * Applies the pending changes to the node. Never overlaps with itself; never throws: a failure
   * is logged, counted, and makes the next sync a full one (the pending changes were consumed, so
   * only a full render from the maps can recover).
   */
  syncProxyRules(): Promise<SyncOutcome> {
    const prev = this.syncing ?? Promise.resolve(undefined);
    const next = prev.then(() => this.doSync());
    this.syncing = next;
    return next;
  }

  private async doSync(): Promise<SyncOutcome> {
    if (!this.initialized) {
      this.log.debug('not syncing iptables until Services and EndpointSlices have been received');
      return { ran: false, full: false, ok: false, payloadBytes: 0 };
    }
    const started = this.clock.now();
    const full = this.needFullSync || this.clock.now() - this.lastFullSync > FULL_SYNC_PERIOD_MS;
    const services = this.serviceMap.update(this.serviceChanges);
    const endpoints = this.endpointsMap.update(this.endpointsChanges);
    this.opts.metrics?.serviceChangesPending.set(0);
    this.opts.metrics?.endpointChangesPending.set(0);
    const changed = new Set<ServiceKey>([...services.updatedServices, ...endpoints.updatedServices]);
    const labels = { ip_family: this.family } as const;
    let render: RenderResult | undefined;
    // The text length of the rendered payload (built-in jumps aside), for logs and metrics.
    let payloadBytes = 0;
    try {
      this.hasRandomFully ??= await this.opts.iptables.hasRandomFully().catch(() => false);
      // Full syncs read the tables once: for stale chains and for missing built-in jumps.
      const saved = full ? await this.readTables() : undefined;
      const existingNatChains = saved
        ? new Set(chainNamesOf(saved, 'nat'))
        : full
          ? undefined
          : this.knownNatChains;
      render = this.renderer.render(
        { services: this.serviceMap.ports, endpoints: this.endpointsMap.endpoints },
        {
          ...this.opts.render,
          family: this.family,
          nodeLabels: this.nodeLabels,
          hasRandomFully: this.hasRandomFully,
          ...(this.opts.localAddresses ? { localAddresses: this.opts.localAddresses() } : {}),
        },
        { full, changedServices: changed, ...(existingNatChains ? { existingNatChains } : {}) },
      );
      for (const w of render.warnings) this.log.warn(w);
      payloadBytes = payloadLength(render.payloadParts);
      const payload = full ? this.withBuiltinJumps(render, saved) : render.payloadParts;
      // An incremental sync with nothing to change writes nothing at all.
      if (payloadLength(payload) > 0)
        await this.opts.iptables.restoreAll(payload, { flush: false, counters: true });
    } catch (error) {
      this.renderer.reset();
      this.needFullSync = true;
      this.lastSyncFailed = true;
      this.knownNatChains = undefined;
      this.opts.metrics?.iptablesRestoreFailuresTotal.inc(labels);
      if (!full) this.opts.metrics?.iptablesPartialRestoreFailuresTotal.inc(labels);
      this.log.error({ err: error, full }, 'sync failed; the next sync is a full one');
      this.runner.retryAfter(this.opts.syncPeriodMs);
      this.observeDuration(full, started);
      return { ran: true, full, ok: false, payloadBytes, error };
    }

    this.renderer.commit();
    this.needFullSync = false;
    if (full) this.lastFullSync = this.clock.now();
    this.knownNatChains = render.activeNatChains;
    this.afterSuccess(render, full, endpoints, payloadBytes);
    this.observeDuration(full, started);
    this.log.debug(
      {
        full,
        changedServices: changed.size,
        bytes: payloadBytes,
        ms: Math.round(this.clock.now() - started),
      },
      'synced iptables rules',
    );

    await this.syncServiceHealth();
    await this.opts.conntrack?.afterSync({
      serviceMap: this.serviceMap.ports,
      endpointsMap: this.endpointsMap.endpoints,
      serviceResult: services,
      endpointsResult: endpoints,
      node: { name: this.opts.render.nodeName, labels: this.nodeLabels, localIPs: this.localIPsOfFamily() },
      forceReconcile: this.lastSyncFailed,
    });
    this.lastSyncFailed = false;
    return { ran: true, full, ok: true, payloadBytes, render };
  }

  private localIPsOfFamily(): string[] {
    return (this.opts.localAddresses?.() ?? []).filter((a) => parseIP(a)?.family === this.family);
  }

  private afterSuccess(
    render: RenderResult,
    full: boolean,
    endpoints: EndpointsMapUpdateResult,
    payloadBytes: number,
  ): void {
    const m = this.opts.metrics;
    const labels = { ip_family: this.family } as const;
    this.opts.health?.updated(this.family);
    if (!m) return;
    const now = this.wallNow();
    for (const times of endpoints.lastChangeTriggerTimes.values()) {
      for (const t of times)
        m.networkProgrammingDuration.observe(labels, Math.max(0, now - t.getTime()) / 1000);
    }
    m.iptablesRulesTotal.set({ table: 'nat', ...labels }, render.ruleCounts.nat.total);
    m.iptablesRulesTotal.set({ table: 'filter', ...labels }, render.ruleCounts.filter.total);
    m.iptablesRulesLast.set({ table: 'nat', ...labels }, render.ruleCounts.nat.last);
    m.iptablesRulesLast.set({ table: 'filter', ...labels }, render.ruleCounts.filter.last);
    m.syncProxyRulesNoLocalEndpointsTotal.set(
      { traffic_policy: 'internal', ...labels },
      render.noLocalEndpoints.internal,
    );
    m.syncProxyRulesNoLocalEndpointsTotal.set(
      { traffic_policy: 'external', ...labels },
      render.noLocalEndpoints.external,
    );
    m.syncProxyRulesLastTimestamp.set(labels, now / 1000);
    m.syncPayloadBytes.observe({ ...labels, sync_type: full ? 'full' : 'partial' }, payloadBytes);
  }

  private observeDuration(full: boolean, started: number): void {
    const m = this.opts.metrics;
    if (!m) return;
    const seconds = (this.clock.now() - started) / 1000;
    const labels = { ip_family: this.family } as const;
    m.syncProxyRulesDuration.observe(labels, seconds);
    (full ? m.syncFullProxyRulesDuration : m.syncPartialProxyRulesDuration).observe(labels, seconds);
  }

  private async syncServiceHealth(): Promise<void> {
    const sh = this.opts.serviceHealth;
    if (!sh) return;
    await sh.syncServices(this.serviceMap.healthCheckNodePorts());
    sh.syncEndpoints(this.endpointsMap.localReadyEndpoints());
  }

  /**
   * Full syncs only: the payload plus the jumps from the built-in chains that `saved` lacks
   * (upstream ensures them only on full syncs too, #114181). Without a readable table the jumps
   * are all written: a duplicate jump is harmless, a missing one breaks every service.
   */
  private withBuiltinJumps(render: RenderResult, saved: string | undefined): RestorePayload {
    const targets = new Set(renderBuiltinJumps().map((j) => j.target));
    const declared = new Map<Table, Set<string>>();
    for (const t of [render.filter, render.nat]) declared.set(t.table, declaredAmong(t.chains, targets));
    return withLinesBeforeCommit(render.payloadParts, missingJumpLines(saved ?? '', declared));
  }

  /** filter and nat as they are now; on failure stale chains simply stay until the next full sync. */
  private async readTables(): Promise<string | undefined> {
    try {
      const [filter, nat] = await Promise.all([
        this.opts.iptables.save('filter'),
        this.opts.iptables.save('nat'),
      ]);
      return `${filter}\n${nat}`;
    } catch (err) {
      this.log.warn({ err }, 'iptables-save failed; stale chains are not deleted this time');
      return undefined;
    }
  }
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}
