/**
 * Sync costs of one cluster size on one backend, in one network namespace the caller made: the
 * objects go through the real change trackers, the incremental renderer renders, and the real
 * `iptables-restore --noflush` applies, timed apart. Run in a process of its own (sync-child.ts)
 * so that its peak RSS is the peak of this size alone.
 *
 * Measured, in order, on the same tables:
 *  1. full sync (render, then restore into the empty namespace), and a second, warm full render;
 *  2. one endpoint of one Service replaced: tracker apply, incremental render, restore (reps);
 *  3. the floor: a restore adding one chain with one rule to nat (reps);
 *  4. the same kind of change upstream's way (KEP-3453: top-level chains rewritten whole) (reps);
 *  5. one Service added, one deleted (reps each);
 *  6. 1,000 pending endpoint changes recorded and applied to the maps (no restore);
 *  7. the kernel's nat rule count against the renderer's gauge.
 * Repetitions use different Services; a value is the median of its repetitions.
 */
import { payloadByteLength } from '../../pkg/iptables/payload.ts';
import type { Iptables } from '../../pkg/iptables/types.ts';
import {
  createEndpointsChangeTracker,
  type EndpointsChangeTracker,
} from '../../proxier/endpointschangetracker.ts';
import { createEndpointsMap, type EndpointsMapStore } from '../../proxier/endpointsmap.ts';
import { createIncrementalRenderer, type IncrementalRenderResult } from '../../proxier/incremental.ts';
import type { RenderConfig, RenderOptions, RenderState } from '../../proxier/render.ts';
import { createServiceChangeTracker, type ServiceChangeTracker } from '../../proxier/servicechangetracker.ts';
import { createServiceMap, type ServiceMap } from '../../proxier/servicemap.ts';
import type { ServiceKey } from '../../proxier/types.ts';
import { median, round1 } from './result.ts';
import {
  BENCH_NAMESPACE,
  createSyntheticCluster,
  parseEndpointSlice,
  parseService,
  type SyntheticCluster,
  serviceName,
  serviceObject,
} from './synthetic.ts';

export const BENCH_NODE_NAME = 'node1';
export const BENCH_NODE_IP = '192.168.100.1';

/** What the daemon renders with its defaults on a node like the e2e one (no nfacct objects). */
export function benchRenderConfig(): RenderConfig {
  return {
    family: 'IPv4',
    nodeName: BENCH_NODE_NAME,
    nodeIPs: [BENCH_NODE_IP],
    nodeLabels: {},
    masqueradeAll: false,
    localDetector: { mode: 'ClusterCIDR', cidrs: ['10.244.0.0/16'] },
    nodePortAddresses: [],
    localhostNodePorts: true,
    hasRandomFully: true,
    nfacctCounters: new Set(),
    tcpBeLiberal: false,
  };
}

/** A synthetic cluster fed through the real trackers into the maps a node renders from. */
export interface SyntheticNode {
  readonly cluster: SyntheticCluster;
  readonly svcTracker: ServiceChangeTracker;
  readonly epTracker: EndpointsChangeTracker;
  readonly serviceMap: ServiceMap;
  readonly endpointsMap: EndpointsMapStore;
  readonly state: RenderState;
}

/** Loads every Service and EndpointSlice of a new synthetic cluster, as informers deliver them. */
export function loadSyntheticNode(services: number, endpointsPerService: number): SyntheticNode {
  const cluster = createSyntheticCluster(services, endpointsPerService);
  const svcTracker = createServiceChangeTracker('IPv4');
  const epTracker = createEndpointsChangeTracker({ family: 'IPv4', nodeName: BENCH_NODE_NAME });
  const serviceMap = createServiceMap();
  const endpointsMap = createEndpointsMap();
  for (const i of cluster.serviceIndexes()) {
    svcTracker.update(undefined, parseService(serviceObject(i)));
    epTracker.endpointSliceUpdate(parseEndpointSlice(cluster.sliceObject(i)), false);
  }
  serviceMap.update(svcTracker);
  endpointsMap.update(epTracker);
  const state: RenderState = { services: serviceMap.ports, endpoints: endpointsMap.endpoints };
  return { cluster, svcTracker, epTracker, serviceMap, endpointsMap, state };
}

export interface SyncBenchOptions {
  readonly services: number;
  readonly endpointsPerService: number;
  /** Runner acting in the benchmark's namespace. */
  readonly iptables: Iptables;
  readonly reps: number;
  /** Pending endpoint changes for trackerApplyMs. */
  readonly trackerChanges: number;
  /** CPU milliseconds of the iptables command that finished last (cpu-exec.ts), if measured. */
  readonly lastExecCpuMs?: () => number | undefined;
  /** Called between steps, e.g. to log progress. */
  readonly progress?: (step: string) => void;
}

export interface SyncBenchResult {
  readonly rulesFull: number;
  readonly natRulesFull: number;
  readonly renderFullMs: number;
  readonly renderFullWarmMs: number;
  readonly restoreFullMs: number;
  /** CPU time (user + system) of the restores, robust to a busy machine; null when unmeasured. */
  readonly restoreFullCpuMs: number | null;
  readonly renderFullCpuMs: number;
  readonly payloadFullBytes: number;
  readonly trackerOneChangeMs: number;
  readonly renderPartialMs: number;
  /** CPU time of the same renders (this process, user + system). */
  readonly renderPartialCpuMs: number;
  readonly restorePartialMs: number;
  readonly payloadPartialBytes: number;
  /** Tracker apply + render + restore of the one-endpoint change. */
  readonly syncPartialMs: number;
  readonly restoreOneRuleMs: number;
  readonly restorePartialCpuMs: number | null;
  readonly restoreOneRuleCpuMs: number | null;
  readonly restoreUpstreamStylePartialCpuMs: number | null;
  readonly renderUpstreamStylePartialMs: number;
  readonly restoreUpstreamStylePartialMs: number;
  readonly payloadUpstreamStylePartialBytes: number;
  readonly renderAddMs: number;
  readonly restoreAddMs: number;
  readonly payloadAddBytes: number;
  readonly renderDeleteMs: number;
  readonly restoreDeleteMs: number;
  readonly payloadDeleteBytes: number;
  readonly trackerChanges: number;
  readonly trackerRecordMs: number;
  readonly trackerApplyMs: number;
  readonly trackerLoadMs: number;
  readonly kernelNatRules: number;
  readonly rendererNatRules: number;
  readonly rssBeforeFullSyncMB: number;
  readonly rssPeakMB: number;
  readonly heapUsedMB: number;
  readonly ok: boolean;
  readonly problems: readonly string[];
}

const NOFLUSH = { flush: false, counters: true } as const;
const MB = 1024 * 1024;

function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const v = f();
  return [v, performance.now() - t0];
}

async function timedAsync(f: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** `-A` lines of one table in iptables-save output. */
export function countRules(saveText: string): number {
  let n = 0;
  for (const line of saveText.split('\n')) if (line.startsWith('-A ')) n++;
  return n;
}

export async function measureSync(o: SyncBenchOptions): Promise<SyncBenchResult> {
  const ipt = o.iptables;
  const progress = o.progress ?? (() => {});
  const problems: string[] = [];
  const config = benchRenderConfig();
  const renderer = createIncrementalRenderer();
  let activeChains = new Set<string>();
  await ipt.version(); // detection (one `iptables --version`) stays out of the timings

  // ---- the cluster, through the trackers as informers deliver it ----
  progress('load');
  const t0 = performance.now();
  const { cluster, svcTracker, epTracker, serviceMap, endpointsMap, state } = loadSyntheticNode(
    o.services,
    o.endpointsPerService,
  );
  const trackerLoadMs = performance.now() - t0;

  const apply = (): Set<ServiceKey> => {
    const s = serviceMap.update(svcTracker);
    const e = endpointsMap.update(epTracker);
    return new Set([...s.updatedServices, ...e.updatedServices]);
  };
  const render = (opts: RenderOptions): [IncrementalRenderResult, number] =>
    timed(() => renderer.render(state, config, opts));
  const cpuOfLast = o.lastExecCpuMs ?? (() => undefined);
  const restore = async (r: IncrementalRenderResult, cpu?: number[]): Promise<number> => {
    const ms = await timedAsync(() => ipt.restoreAll(r.payloadParts, NOFLUSH));
    const c = cpuOfLast();
    if (cpu !== undefined && c !== undefined) cpu.push(c);
    renderer.commit();
    activeChains = new Set(r.activeNatChains);
    return ms;
  };

  // ---- 1. full sync ----
  progress('full');
  gc();
  const rssBeforeFullSyncMB = process.memoryUsage().rss / MB;
  const cpu0 = process.cpuUsage();
  const [full, renderFullMs] = render({ full: true });
  const cpuRender = process.cpuUsage(cpu0);
  const renderFullCpuMs = (cpuRender.user + cpuRender.system) / 1000;
  const heapUsedMB = process.memoryUsage().heapUsed / MB;
  const payloadFullBytes = payloadByteLength(full.payloadParts);
  const fullCpu: number[] = [];
  const restoreFullMs = await restore(full, fullCpu);
  const rssPeakMB = process.resourceUsage().maxRSS / 1024;
  const rulesFull = full.natRuleCount + full.filterRuleCount;
  const natRulesFull = full.natRuleCount;
  // A periodic full resync runs with warm code and a filled chain-name memo; not applied.
  const [, renderFullWarmMs] = render({ full: true });
  renderer.reset();
  // Re-prime the cache from the state the kernel holds (the warm render was not applied).
  renderer.render(state, config, { full: true });
  renderer.commit();

  // Services to change: spread over the cluster, never the same twice.
  const indexes = cluster.serviceIndexes();
  let pick = 0;
  const nextService = (): number => {
    const i = indexes[(pick * 7919 + Math.floor(indexes.length / 3)) % indexes.length]!;
    pick++;
    return i;
  };
  const changeOneEndpoint = (i: number): void => {
    cluster.replaceEndpoint(i, 0);
    epTracker.endpointSliceUpdate(parseEndpointSlice(cluster.sliceObject(i)), false);
  };

  // ---- 2. one endpoint changed, O(changes) ----
  progress('partial');
  const partial = {
    apply: [] as number[],
    render: [] as number[],
    renderCpu: [] as number[],
    restore: [] as number[],
    cpu: [] as number[],
    bytes: [] as number[],
  };
  for (let r = 0; r < o.reps; r++) {
    changeOneEndpoint(nextService());
    const [changed, applyMs] = timed(apply);
    const c0 = process.cpuUsage();
    const [res, renderMs] = render({ full: false, changedServices: changed });
    const c1 = process.cpuUsage(c0);
    partial.renderCpu.push((c1.user + c1.system) / 1000);
    if (res.mode !== 'incremental') problems.push(`one-endpoint change rendered in ${res.mode} mode`);
    partial.apply.push(applyMs);
    partial.render.push(renderMs);
    partial.bytes.push(payloadByteLength(res.payloadParts));
    partial.restore.push(await restore(res, partial.cpu));
  }

  // ---- 3. the floor: one new chain with one rule ----
  progress('one-rule');
  const oneRule: number[] = [];
  const oneRuleCpu: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    const chain = `KUBE-BENCH-ONE-${r}`;
    const payload = `*nat\n:${chain} - [0:0]\n-A ${chain} -j RETURN\nCOMMIT\n`;
    oneRule.push(await timedAsync(() => ipt.restoreAll(payload, NOFLUSH)));
    const c = cpuOfLast();
    if (c !== undefined) oneRuleCpu.push(c);
  }

  // ---- 4. upstream's way: the incremental cache dropped, so the partial render rewrites ----
  progress('upstream-style');
  const upstream = {
    render: [] as number[],
    restore: [] as number[],
    cpu: [] as number[],
    bytes: [] as number[],
  };
  for (let r = 0; r < o.reps; r++) {
    changeOneEndpoint(nextService());
    const changed = apply();
    renderer.reset();
    const [res, renderMs] = render({
      full: false,
      changedServices: changed,
      existingNatChains: activeChains,
    });
    if (res.mode !== 'rewrite') problems.push(`upstream-style change rendered in ${res.mode} mode`);
    upstream.render.push(renderMs);
    upstream.bytes.push(payloadByteLength(res.payloadParts));
    upstream.restore.push(await restore(res, upstream.cpu));
  }

  // ---- 5. one Service added, one deleted ----
  progress('add-delete');
  const added = { render: [] as number[], restore: [] as number[], bytes: [] as number[] };
  const deleted = { render: [] as number[], restore: [] as number[], bytes: [] as number[] };
  for (let r = 0; r < o.reps; r++) {
    const i = cluster.addService();
    svcTracker.update(undefined, parseService(serviceObject(i)));
    epTracker.endpointSliceUpdate(parseEndpointSlice(cluster.sliceObject(i)), false);
    const [res, renderMs] = render({ full: false, changedServices: apply() });
    if (res.mode !== 'incremental') problems.push(`service add rendered in ${res.mode} mode`);
    added.render.push(renderMs);
    added.bytes.push(payloadByteLength(res.payloadParts));
    added.restore.push(await restore(res));
  }
  for (let r = 0; r < o.reps; r++) {
    const i = nextService();
    const slice = parseEndpointSlice(cluster.sliceObject(i));
    cluster.deleteService(i);
    svcTracker.update(parseService(serviceObject(i)), undefined);
    epTracker.endpointSliceUpdate(slice, true);
    const [res, renderMs] = render({ full: false, changedServices: apply() });
    if (res.mode !== 'incremental') problems.push(`service delete rendered in ${res.mode} mode`);
    deleted.render.push(renderMs);
    deleted.bytes.push(payloadByteLength(res.payloadParts));
    deleted.restore.push(await restore(res));
  }

  // ---- 7 (before 6, which changes the maps without a restore): kernel vs renderer ----
  progress('verify');
  const kernelNatRules = countRules(await ipt.save('nat')) - o.reps; // minus the one-rule chains
  const lastRender = renderer.render(state, config, { full: false, changedServices: new Set() });
  const rendererNatRules = lastRender.ruleCounts.nat.total;
  if (kernelNatRules !== rendererNatRules) {
    problems.push(`kernel holds ${kernelNatRules} nat rules, the renderer counts ${rendererNatRules}`);
  }

  // ---- 6. tracker: many pending endpoint changes ----
  progress('tracker');
  const live = cluster.serviceIndexes();
  const slices = Array.from({ length: o.trackerChanges }, (_, k) => {
    const i = live[k % live.length]!;
    cluster.replaceEndpoint(i, k % o.endpointsPerService);
    return parseEndpointSlice(cluster.sliceObject(i));
  });
  const [, trackerRecordMs] = timed(() => {
    for (const s of slices) epTracker.endpointSliceUpdate(s, false);
  });
  const [changedByTracker, trackerApplyMs] = timed(apply);
  const expectChanged = Math.min(o.trackerChanges, live.length);
  if (changedByTracker.size !== expectChanged) {
    problems.push(`tracker reported ${changedByTracker.size} changed services, expected ${expectChanged}`);
  }
  if (!changedByTracker.has(`${BENCH_NAMESPACE}/${serviceName(live[0]!)}`) && o.trackerChanges > 0) {
    problems.push('tracker did not report the first changed service');
  }

  const m = (xs: readonly number[]) => round1(median(xs));
  const mc = (xs: readonly number[]) => (xs.length === 0 ? null : m(xs));
  return {
    rulesFull,
    natRulesFull,
    renderFullMs: round1(renderFullMs),
    renderFullWarmMs: round1(renderFullWarmMs),
    restoreFullMs: round1(restoreFullMs),
    restoreFullCpuMs: mc(fullCpu),
    renderFullCpuMs: round1(renderFullCpuMs),
    payloadFullBytes,
    trackerOneChangeMs: m(partial.apply),
    renderPartialMs: m(partial.render),
    renderPartialCpuMs: m(partial.renderCpu),
    restorePartialMs: m(partial.restore),
    payloadPartialBytes: median(partial.bytes),
    syncPartialMs: round1(median(partial.apply) + median(partial.render) + median(partial.restore)),
    restoreOneRuleMs: m(oneRule),
    restorePartialCpuMs: mc(partial.cpu),
    restoreOneRuleCpuMs: mc(oneRuleCpu),
    restoreUpstreamStylePartialCpuMs: mc(upstream.cpu),
    renderUpstreamStylePartialMs: m(upstream.render),
    restoreUpstreamStylePartialMs: m(upstream.restore),
    payloadUpstreamStylePartialBytes: median(upstream.bytes),
    renderAddMs: m(added.render),
    restoreAddMs: m(added.restore),
    payloadAddBytes: median(added.bytes),
    renderDeleteMs: m(deleted.render),
    restoreDeleteMs: m(deleted.restore),
    payloadDeleteBytes: median(deleted.bytes),
    trackerChanges: o.trackerChanges,
    trackerRecordMs: round1(trackerRecordMs),
    trackerApplyMs: round1(trackerApplyMs),
    trackerLoadMs: round1(trackerLoadMs),
    kernelNatRules,
    rendererNatRules,
    rssBeforeFullSyncMB: round1(rssBeforeFullSyncMB),
    rssPeakMB: round1(rssPeakMB),
    heapUsedMB: round1(heapUsedMB),
    ok: problems.length === 0,
    problems,
  };
}
