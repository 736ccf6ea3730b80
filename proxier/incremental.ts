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
 *
 * Apart from the cache, the renderer keeps every service port's rendered text (a memo of a pure
 * function, valid whatever the kernel holds): a full render then re-renders only the ports whose
 * Service or endpoints changed and joins the rest as they are.
 */
import {
  buildRestoreParts,
  chainLine,
  LineBuffer,
  newTableContent,
  textOnce,
} from '../pkg/iptables/payload.ts';
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
  endpointsOf,
  LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
  memoContext,
  renderRules,
  renderStatic,
  servicePortText,
} from './render.ts';
import { editTopLevelRules } from './render-edits.ts';
import type { ServicePortMemo } from './render-service.ts';
import { createServicePortMemo } from './render-service.ts';
import type { ServiceKey, ServicePort, ServicePortMap } from './types.ts';
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

/**
 * One Service's (all its ports') contribution to the tables, as last written. It refers to its
 * ports' renders rather than copying their lines: at 10,000 Services the copies were 40,000
 * arrays kept for the few Services a partial sync ever edits.
 */
interface ServiceEntry {
  readonly ports: readonly ServicePortRender[];
  readonly natChainRules: number;
  readonly filterRules: number;
  readonly natTopRules: number;
  readonly endpoints: number;
  readonly noLocalInternal: number;
  readonly noLocalExternal: number;
}

/** Its top-level filter rules (all ports, in order). */
function filterLines(e: ServiceEntry | undefined): string[] {
  return e === undefined ? [] : e.ports.flatMap((p) => p.filterRules);
}

/** Its top-level nat rules (all ports, in order). */
function natLines(e: ServiceEntry | undefined): string[] {
  return e === undefined ? [] : e.ports.flatMap((p) => p.natTopRules);
}

/** Its own nat chains. */
function chainsOf(e: ServiceEntry | undefined): string[] {
  return e === undefined ? [] : e.ports.flatMap((p) => p.outcome.activeChains);
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
  ports: ServicePortRender[];
  natChainRules: number;
  filterRules: number;
  natTopRules: number;
  endpoints: number;
  noLocalInternal: number;
  noLocalExternal: number;
}

function newBuilder(): EntryBuilder {
  return {
    ports: [],
    natChainRules: 0,
    filterRules: 0,
    natTopRules: 0,
    endpoints: 0,
    noLocalInternal: 0,
    noLocalExternal: 0,
  };
}

function addPort(b: EntryBuilder, r: ServicePortRender): void {
  b.ports.push(r);
  b.natChainRules += r.natChainRuleCount;
  b.filterRules += r.filterRules.length;
  b.natTopRules += r.natTopRules.length;
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
    filterRules: e.filterRules,
    natRules: e.natTopRules + e.natChainRules,
    ports: e.ports.length,
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

/**
 * The current ports of each changed Service, looked up by the keys the cache recorded for it; the
 * whole map is scanned only when its size says some port is new. Undefined when the map holds
 * ports that neither the cache nor the changed Services account for (an unreported change).
 */
function portsOfChanged(
  ports: ServicePortMap,
  changed: ReadonlySet<ServiceKey>,
  c: Cache,
): Map<ServiceKey, ServicePort[]> | undefined {
  const out = new Map<ServiceKey, ServicePort[]>();
  // Ports the cache and the changed Services account for.
  let known = c.totals.ports;
  for (const key of changed) {
    const list: ServicePort[] = [];
    const old = c.services.get(key);
    for (const p of old?.ports ?? []) {
      const svc = ports.get(servicePortKey(p.svc.name));
      if (svc !== undefined) list.push(svc);
    }
    known -= (old?.ports.length ?? 0) - list.length;
    out.set(key, list);
  }
  if (ports.size === known) return out;
  for (const [pk, svc] of ports) {
    const key = keyOf(svc);
    const list = out.get(key);
    if (list === undefined || c.services.get(key)?.ports.some((p) => servicePortKey(p.svc.name) === pk)) {
      continue;
    }
    list.push(svc);
    known++;
  }
  return ports.size === known ? out : undefined;
}

export function createIncrementalRenderer(): IncrementalRenderer {
  let cache: Cache | undefined;
  let pending: Pending | undefined;
  // Rendered text of every port, kept whatever the kernel holds: a pure function's results.
  const memo: ServicePortMemo = createServicePortMemo();

  /** renderRules (full or upstream-style partial), recording every Service for the cache. */
  function renderWhole(
    state: RenderState,
    config: RenderConfig,
    opts: RenderOptions,
    mode: 'full' | 'rewrite',
    fingerprint: string,
  ): IncrementalRenderResult {
    const builders = new Map<ServiceKey, EntryBuilder>();
    let last: { namespace: string; name: string; builder: EntryBuilder } | undefined;
    let ports = 0;
    const existingNatChains =
      opts.existingNatChains ?? (mode === 'rewrite' ? cache?.activeChains : undefined);
    const result = renderRules(state, config, {
      full: mode === 'full',
      ...(opts.changedServices ? { changedServices: opts.changedServices } : {}),
      ...(existingNatChains ? { existingNatChains } : {}),
      memo,
      onServicePort: (r) => {
        opts.onServicePort?.(r);
        // Ports come sorted by name, so a Service's ports usually follow each other.
        const { namespace, name } = r.svc.name;
        if (last === undefined || namespace !== last.namespace || name !== last.name) {
          const key = serviceKey(namespace, name);
          let b = builders.get(key);
          if (b === undefined) {
            b = newBuilder();
            builders.set(key, b);
          }
          last = { namespace, name, builder: b };
        }
        addPort(last.builder, r);
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
    // Descriptors, not a spread: a spread would read the lazy payload and join it.
    return Object.defineProperties(
      { mode },
      Object.getOwnPropertyDescriptors(result),
    ) as IncrementalRenderResult;
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
    const portsOf = portsOfChanged(state.services, changed, c);
    if (portsOf === undefined) return undefined;

    let endpointsNow = c.totals.endpoints;
    let totals = c.totals;
    for (const [key, list] of portsOf) {
      const old = c.services.get(key);
      totals = addTotals(totals, entryTotals(old), -1);
      endpointsNow -= old?.endpoints ?? 0;
      for (const svc of list) endpointsNow += endpointsOf(state, svc).length;
    }
    const largeClusterMode = endpointsNow > LARGE_CLUSTER_ENDPOINTS_THRESHOLD;
    const ctx = { ...statics.serviceContext, largeClusterMode };
    memo.useContext(memoContext(statics, largeClusterMode));

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
        const endpoints = endpointsOf(state, svc);
        const text = servicePortText(svc, endpoints, ctx, true, memo);
        serviceChains.writeBlock(text.natChains, text.natChainCount);
        serviceRules.writeBlock(text.natRules, text.natRuleCount);
        const r: ServicePortRender = {
          svc,
          filterRules: text.filterRules,
          natTopRules: text.natTopRules,
          natChainRuleCount: text.natRuleCount,
          outcome: text,
          endpointCount: endpoints.length,
        };
        opts.onServicePort?.(r);
        addPort(b, r);
      }
      const old = c.services.get(key);
      const entry: ServiceEntry | undefined = b.ports.length > 0 ? b : undefined;
      entries.set(key, entry);
      totals = addTotals(totals, entryTotals(entry), 1);

      const f = editTopLevelRules('filter', filterLines(old), filterLines(entry));
      // All deletes go before all inserts, so a rule moving between two changed Services
      // cannot be deleted right after being inserted.
      for (const l of f.deletes) filter.rules.writeLine(l);
      filterInserts.push(...f.inserts);
      const n = editTopLevelRules('nat', natLines(old), natLines(entry));
      natDeletes.push(...n.deletes);
      natInserts.push(...n.inserts);

      const now = new Set(chainsOf(entry));
      const before = new Set(chainsOf(old));
      for (const ch of before) if (!now.has(ch)) staleChains.push(ch);
      for (const ch of now) if (!before.has(ch)) addedChains.push(ch);
    }
    for (const l of filterInserts) filter.rules.writeLine(l);

    // nat: chain lines (changed Services' chains, then stale ones to flush), top-level deletes
    // (before any -X of a chain they jump to), top-level inserts (their targets are declared
    // above), the Services' own chain rules, then the stale chains' -X.
    staleChains.sort();
    nat.chains.append(serviceChains);
    for (const ch of staleChains) nat.chains.writeLine(chainLine(ch));
    for (const l of natDeletes) nat.rules.writeLine(l);
    for (const l of natInserts) nat.rules.writeLine(l);
    nat.rules.append(serviceRules);
    for (const ch of staleChains) nat.rules.write('-X', ch);

    pending = { kind: 'delta', entries, addedChains, removedChains: staleChains, totals };

    const natWritten = natInserts.length + serviceRules.length;
    const filterWritten = filterInserts.length;
    const tables = [filter, nat].filter((t) => t.chains.length > 0 || t.rules.length > 0);
    const payloadParts = buildRestoreParts(tables);
    const text = textOnce(payloadParts);
    return {
      mode: 'incremental',
      payloadParts,
      get payload() {
        return text();
      },
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
