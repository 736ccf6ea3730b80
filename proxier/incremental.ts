/**
 * Partial syncs that cost O(changes) instead of O(services).
 *
 * Upstream's partial sync (KEP-3453) rewrites only the changed services' own chains, but still
 * writes KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS and the whole filter table on every
 * sync. This renderer keeps, per Service, the exact top-level rule lines it last wrote (the
 * cache) and, on a partial sync:
 * - re-renders only the changed Services (their SVC/SVL/EXT/FW/SEP chains, deleting the ones
 *   they no longer use);
 * - compares each changed Service's top-level rules with the cached ones: when they are equal
 *   (only endpoints changed, and not from none to some or local to none) the payload does not
 *   mention a top-level chain at all; otherwise it edits them rule by rule (`-D` the old line,
 *   `-I KUBE-SERVICES 1` / `-A` the new one) in the same `iptables-restore --noflush` call.
 *
 * The cache describes what the kernel holds, so it changes only when a restore succeeded:
 * `render` prepares the next cache, `commit()` adopts it after the restore went in, `reset()`
 * drops everything after a failure (the next render must then be a full one, which the sync loop
 * does anyway after any failure). Full syncs render exactly as renderRules does and rebuild the
 * cache from it. When anything a Service's top-level rules depend on besides the Service and its
 * endpoints changes (config, node labels, node-port addresses), or the cache is missing, a
 * partial sync falls back to upstream's way, rewriting the top-level chains whole.
 */
import { buildRestorePayload, chainLine, LineBuffer, newTableContent } from '../pkg/iptables/payload.ts';
import type {
  RenderConfig,
  RenderOptions,
  RenderResult,
  RenderState,
  ServicePortRender,
  StaticRender,
} from './render.ts';
import {
  compareServicePorts,
  LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
  renderRules,
  renderStatic,
} from './render.ts';
import { editTopLevelRules } from './render-edits.ts';
import { renderServicePort } from './render-service.ts';
import type { ServiceKey, ServicePort } from './types.ts';
import { serviceKey, servicePortKey } from './types.ts';

/**
 * How a render was made. `full`: every chain written (as renderRules with full). `rewrite`:
 * upstream's partial sync, top-level chains written whole. `incremental`: changed Services'
 * chains plus rule-by-rule edits of the top-level chains.
 */
export type RenderMode = 'full' | 'rewrite' | 'incremental';

export interface IncrementalRenderResult extends RenderResult {
  readonly mode: RenderMode;
}

export interface IncrementalRenderer {
  /**
   * Renders the payload for this sync. `opts.full` forces a full render; otherwise the partial
   * payload is as small as the cache allows. On partial syncs `existingNatChains` may be left
   * out: the renderer knows which chains its committed renders created. In incremental mode,
   * `activeNatChains` of the result is the renderer's own set and reflects this render once
   * `commit()` has run; treat it as read-only.
   */
  render(state: RenderState, config: RenderConfig, opts: RenderOptions): IncrementalRenderResult;
  /** The last render's payload is in the kernel: its rules become the cache. */
  commit(): void;
  /** The kernel's state is unknown (a restore failed): forget the cache and any pending render. */
  reset(): void;
  /** Whether a committed cache exists, i.e. whether a partial render can be incremental. */
  readonly primed: boolean;
}

/** One Service's (all its ports') contribution to the tables, as last written. */
interface ServiceEntry {
  readonly filter: readonly string[];
  readonly nat: readonly string[];
  /** Rules in its own nat chains. */
  readonly natChainRules: number;
  /** Its own nat chains. */
  readonly chains: readonly string[];
  readonly ports: number;
  readonly endpoints: number;
  readonly noLocalInternal: number;
  readonly noLocalExternal: number;
}

interface Totals {
  readonly filterRules: number;
  readonly natRules: number;
  readonly ports: number;
  readonly endpoints: number;
  readonly noLocalInternal: number;
  readonly noLocalExternal: number;
}

interface Cache {
  readonly services: Map<ServiceKey, ServiceEntry>;
  readonly activeChains: Set<string>;
  readonly fingerprint: string;
  totals: Totals;
}

type Pending =
  | { readonly kind: 'replace'; readonly cache: Cache }
  | {
      readonly kind: 'delta';
      /** undefined: the Service is gone. */
      readonly entries: Map<ServiceKey, ServiceEntry | undefined>;
      readonly addedChains: readonly string[];
      readonly removedChains: readonly string[];
      readonly totals: Totals;
    };

interface EntryBuilder {
  filter: string[];
  nat: string[];
  natChainRules: number;
  chains: string[];
  ports: number;
  endpoints: number;
  noLocalInternal: number;
  noLocalExternal: number;
}

function newBuilder(): EntryBuilder {
  return {
    filter: [],
    nat: [],
    natChainRules: 0,
    chains: [],
    ports: 0,
    endpoints: 0,
    noLocalInternal: 0,
    noLocalExternal: 0,
  };
}

function addPort(b: EntryBuilder, r: ServicePortRender): void {
  for (const l of r.filterRules) b.filter.push(l);
  for (const l of r.natTopRules) b.nat.push(l);
  for (const c of r.outcome.activeChains) b.chains.push(c);
  b.natChainRules += r.natChainRuleCount;
  b.ports++;
  b.endpoints += r.endpointCount;
  if (r.outcome.noLocalInternal) b.noLocalInternal++;
  if (r.outcome.noLocalExternal) b.noLocalExternal++;
}

function keyOf(svc: ServicePort): ServiceKey {
  return serviceKey(svc.name.namespace, svc.name.name);
}

function entryTotals(e: ServiceEntry | undefined): Totals {
  if (e === undefined) {
    return { filterRules: 0, natRules: 0, ports: 0, endpoints: 0, noLocalInternal: 0, noLocalExternal: 0 };
  }
  return {
    filterRules: e.filter.length,
    natRules: e.nat.length + e.natChainRules,
    ports: e.ports,
    endpoints: e.endpoints,
    noLocalInternal: e.noLocalInternal,
    noLocalExternal: e.noLocalExternal,
  };
}

function addTotals(a: Totals, b: Totals, sign: 1 | -1): Totals {
  return {
    filterRules: a.filterRules + sign * b.filterRules,
    natRules: a.natRules + sign * b.natRules,
    ports: a.ports + sign * b.ports,
    endpoints: a.endpoints + sign * b.endpoints,
    noLocalInternal: a.noLocalInternal + sign * b.noLocalInternal,
    noLocalExternal: a.noLocalExternal + sign * b.noLocalExternal,
  };
}

export function createIncrementalRenderer(): IncrementalRenderer {
  let cache: Cache | undefined;
  let pending: Pending | undefined;

  /** renderRules (full or upstream-style partial), recording every Service for the cache. */
  function renderWhole(
    state: RenderState,
    config: RenderConfig,
    opts: RenderOptions,
    mode: 'full' | 'rewrite',
    fingerprint: string,
  ): IncrementalRenderResult {
    const builders = new Map<ServiceKey, EntryBuilder>();
    let ports = 0;
    const existingNatChains =
      opts.existingNatChains ?? (mode === 'rewrite' ? cache?.activeChains : undefined);
    const result = renderRules(state, config, {
      full: mode === 'full',
      ...(opts.changedServices ? { changedServices: opts.changedServices } : {}),
      ...(existingNatChains ? { existingNatChains } : {}),
      onServicePort: (r) => {
        opts.onServicePort?.(r);
        const key = keyOf(r.svc);
        let b = builders.get(key);
        if (b === undefined) {
          b = newBuilder();
          builders.set(key, b);
        }
        addPort(b, r);
        ports++;
      },
    });
    pending = {
      kind: 'replace',
      cache: {
        services: builders,
        activeChains: result.activeNatChains,
        fingerprint,
        totals: {
          filterRules: result.ruleCounts.filter.total,
          natRules: result.ruleCounts.nat.total,
          ports,
          endpoints: result.totalEndpoints,
          noLocalInternal: result.noLocalEndpoints.internal,
          noLocalExternal: result.noLocalEndpoints.external,
        },
      },
    };
    return { ...result, mode };
  }

  /**
   * The O(changes) partial render against the committed cache. Returns undefined when the state
   * does not match the cache (a Service changed without being reported), so the caller rewrites.
   */
  function renderIncremental(
    state: RenderState,
    opts: RenderOptions,
    c: Cache,
    statics: StaticRender,
  ): IncrementalRenderResult | undefined {
    const changed = opts.changedServices ?? new Set<ServiceKey>();
    const portsOf = new Map<ServiceKey, ServicePort[]>();
    for (const k of changed) portsOf.set(k, []);
    let portCount = 0;
    for (const svc of state.services.values()) {
      portCount++;
      portsOf.get(keyOf(svc))?.push(svc);
    }

    // Every port in the state must be a changed Service's or in the cache; otherwise a change
    // went unreported and the cache cannot be trusted for this sync.
    let expectedPorts = c.totals.ports;
    let endpointsNow = c.totals.endpoints;
    let totals = c.totals;
    for (const [key, list] of portsOf) {
      const old = c.services.get(key);
      totals = addTotals(totals, entryTotals(old), -1);
      expectedPorts += list.length - (old?.ports ?? 0);
      endpointsNow -= old?.endpoints ?? 0;
      for (const svc of list) endpointsNow += state.endpoints.get(servicePortKey(svc.name))?.length ?? 0;
    }
    if (expectedPorts !== portCount) return undefined;
    const largeClusterMode = endpointsNow > LARGE_CLUSTER_ENDPOINTS_THRESHOLD;
    const ctx = { ...statics.serviceContext, largeClusterMode };

    const filter = newTableContent('filter');
    const nat = newTableContent('nat');
    const filterInserts: string[] = [];
    const natDeletes: string[] = [];
    const natInserts: string[] = [];
    const serviceChains = new LineBuffer();
    const serviceRules = new LineBuffer();
    const staleChains: string[] = [];
    const addedChains: string[] = [];
    const entries = new Map<ServiceKey, ServiceEntry | undefined>();

    for (const key of [...changed].sort()) {
      const ports = portsOf.get(key)!.sort(compareServicePorts);
      const b = newBuilder();
      for (const svc of ports) {
        const endpoints = state.endpoints.get(servicePortKey(svc.name)) ?? [];
        const filterRules = new LineBuffer();
        const natTopRules = new LineBuffer();
        const rules0 = serviceRules.length;
        const outcome = renderServicePort(svc, endpoints, ctx, {
          filterRules,
          topNatRules: natTopRules,
          natChains: serviceChains,
          natRules: serviceRules,
        });
        const r: ServicePortRender = {
          svc,
          filterRules: filterRules.lines,
          natTopRules: natTopRules.lines,
          natChainRuleCount: serviceRules.length - rules0,
          outcome,
          endpointCount: endpoints.length,
        };
        opts.onServicePort?.(r);
        addPort(b, r);
      }
      const old = c.services.get(key);
      const entry: ServiceEntry | undefined = b.ports > 0 ? b : undefined;
      entries.set(key, entry);
      totals = addTotals(totals, entryTotals(entry), 1);

      const f = editTopLevelRules('filter', old?.filter ?? [], b.filter);
      // All deletes go before all inserts, so a rule moving between two changed Services
      // cannot be deleted right after being inserted.
      for (const l of f.deletes) filter.rules.writeLine(l);
      filterInserts.push(...f.inserts);
      const n = editTopLevelRules('nat', old?.nat ?? [], b.nat);
      natDeletes.push(...n.deletes);
      natInserts.push(...n.inserts);

      const now = new Set(b.chains);
      const before = new Set(old?.chains ?? []);
      for (const ch of before) if (!now.has(ch)) staleChains.push(ch);
      for (const ch of now) if (!before.has(ch)) addedChains.push(ch);
    }
    for (const l of filterInserts) filter.rules.writeLine(l);

    // nat: chain lines (changed Services' chains, then stale ones to flush), top-level deletes
    // (before any -X of a chain they jump to), top-level inserts (their targets are declared
    // above), the Services' own chain rules, then the stale chains' -X.
    staleChains.sort();
    for (const l of serviceChains.lines) nat.chains.writeLine(l);
    for (const ch of staleChains) nat.chains.writeLine(chainLine(ch));
    for (const l of natDeletes) nat.rules.writeLine(l);
    for (const l of natInserts) nat.rules.writeLine(l);
    for (const l of serviceRules.lines) nat.rules.writeLine(l);
    for (const ch of staleChains) nat.rules.write('-X', ch);

    pending = { kind: 'delta', entries, addedChains, removedChains: staleChains, totals };

    const natWritten = natInserts.length + serviceRules.length;
    const filterWritten = filterInserts.length;
    const tables = [filter, nat].filter((t) => t.chains.length > 0 || t.rules.length > 0);
    return {
      mode: 'incremental',
      payload: tables.length === 0 ? '' : buildRestorePayload(tables),
      filter,
      nat,
      activeNatChains: c.activeChains,
      deletedNatChains: staleChains,
      natRuleCount: natWritten,
      filterRuleCount: filterWritten,
      ruleCounts: {
        filter: { total: totals.filterRules, last: filterWritten },
        nat: { total: totals.natRules, last: natWritten },
      },
      noLocalEndpoints: { internal: totals.noLocalInternal, external: totals.noLocalExternal },
      totalEndpoints: totals.endpoints,
      largeClusterMode,
      warnings: statics.warnings,
    };
  }
  return {
    render(state, config, opts) {
      pending = undefined;
      const statics = renderStatic(config);
      const fingerprint = statics.fingerprint;
      if (opts.full) return renderWhole(state, config, opts, 'full', fingerprint);
      if (cache === undefined || cache.fingerprint !== fingerprint) {
        return renderWhole(state, config, opts, 'rewrite', fingerprint);
      }
      return (
        renderIncremental(state, opts, cache, statics) ??
        renderWhole(state, config, opts, 'rewrite', fingerprint)
      );
    },
    commit() {
      const p = pending;
      pending = undefined;
      if (p === undefined) return;
      if (p.kind === 'replace') {
        cache = p.cache;
        return;
      }
      if (cache === undefined) return;
      for (const [key, entry] of p.entries) {
        if (entry === undefined) cache.services.delete(key);
        else cache.services.set(key, entry);
      }
      for (const ch of p.removedChains) cache.activeChains.delete(ch);
      for (const ch of p.addedChains) cache.activeChains.add(ch);
      cache.totals = p.totals;
    },
    reset() {
      cache = undefined;
      pending = undefined;
    },
    get primed() {
      return cache !== undefined;
    },
  };
}
