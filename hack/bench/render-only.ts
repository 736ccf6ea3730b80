/**
 * Render costs alone, without iptables: the synthetic cluster goes through the real trackers,
 * then the incremental renderer renders a full payload cold and warm and a partial one after a
 * single endpoint change, as sync.ts does but with no restore in between. Runs as any user.
 *
 *   node --expose-gc hack/bench/render-only.ts 10000 5 [--reps 5]
 *
 * Prints one JSON line: times (wall and CPU), the peak RSS and heap after the cold render, and
 * SHA-256 of the payloads, so a change to the renderer can be checked byte for byte against the
 * previous commit's output. One size per process: the peak RSS is that size's alone.
 */
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createIncrementalRenderer, type IncrementalRenderResult } from '../../proxier/incremental.ts';
import type { RenderOptions } from '../../proxier/render.ts';
import { median, round1 } from './result.ts';
import { benchRenderConfig, loadSyntheticNode } from './sync.ts';
import { parseEndpointSlice } from './synthetic.ts';

const MB = 1024 * 1024;

const { values, positionals } = parseArgs({
  options: { reps: { type: 'string', default: '5' } },
  allowPositionals: true,
  strict: true,
});
const services = Number(positionals[0] ?? 1000);
const perService = Number(positionals[1] ?? 5);
const reps = Math.max(1, Number(values.reps));

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

interface Timing {
  readonly ms: number;
  readonly cpuMs: number;
  /** Kernel CPU: on a VM whose page faults are slow, mostly first touches of new memory. */
  readonly sysMs: number;
  /** Minor page faults: pages of memory touched for the first time (4 KiB each). */
  readonly faults: number;
}

function timed<T>(f: () => T): [T, Timing] {
  const f0 = process.resourceUsage().minorPageFault;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const v = f();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const faults = process.resourceUsage().minorPageFault - f0;
  return [v, { ms, cpuMs: (c.user + c.system) / 1000, sysMs: c.system / 1000, faults }];
}

const { cluster, svcTracker, epTracker, serviceMap, endpointsMap, state } = loadSyntheticNode(
  services,
  perService,
);
const config = benchRenderConfig();
const renderer = createIncrementalRenderer();
const render = (opts: RenderOptions): [IncrementalRenderResult, Timing] =>
  timed(() => renderer.render(state, config, opts));

gc();
const rssBeforeMB = process.memoryUsage().rss / MB;
const heapBeforeMB = process.memoryUsage().heapUsed / MB;
let [full, cold] = render({ full: true });
const heapUsedMB = process.memoryUsage().heapUsed / MB;
const rssPeakColdMB = process.resourceUsage().maxRSS / 1024;
const fullSha = sha(full.payload);
const payloadBytes = full.payload.length;
const rules = full.natRuleCount + full.filterRuleCount;
renderer.commit();

const warm: Timing[] = [];
for (let r = 0; r < reps; r++) {
  full = render({ full: true })[0];
  renderer.commit();
  // Measured separately from the line above so that a GC of the previous result is not counted.
  const [again, t] = render({ full: true });
  if (sha(again.payload) !== fullSha) throw new Error('warm full render differs from the cold one');
  renderer.commit();
  warm.push(t);
}

// One endpoint of one Service replaced per repetition, different Services each time.
const indexes = cluster.serviceIndexes();
const partial: Timing[] = [];
const partialShas: string[] = [];
for (let r = 0; r < reps; r++) {
  const i = indexes[(r * 7919 + Math.floor(indexes.length / 3)) % indexes.length]!;
  cluster.replaceEndpoint(i, 0);
  epTracker.endpointSliceUpdate(parseEndpointSlice(cluster.sliceObject(i)), false);
  const changed = new Set([
    ...serviceMap.update(svcTracker).updatedServices,
    ...endpointsMap.update(epTracker).updatedServices,
  ]);
  const [res, t] = render({ full: false, changedServices: changed });
  if (res.mode !== 'incremental') throw new Error(`partial render in ${res.mode} mode`);
  renderer.commit();
  partial.push(t);
  partialShas.push(sha(res.payload));
}
const [afterChanges] = render({ full: true });

const med = (xs: readonly Timing[], k: keyof Timing): number => round1(median(xs.map((t) => t[k])));
process.stdout.write(
  `${JSON.stringify({
    size: `${services}x${perService}`,
    rules,
    payloadMB: round1(payloadBytes / MB),
    renderColdMs: round1(cold.ms),
    renderColdCpuMs: round1(cold.cpuMs),
    renderColdSysMs: round1(cold.sysMs),
    renderColdFaults: cold.faults,
    renderWarmMs: med(warm, 'ms'),
    renderWarmCpuMs: med(warm, 'cpuMs'),
    renderWarmSysMs: med(warm, 'sysMs'),
    renderWarmFaults: med(warm, 'faults'),
    renderPartialMs: med(partial, 'ms'),
    renderPartialCpuMs: med(partial, 'cpuMs'),
    rssBeforeMB: round1(rssBeforeMB),
    rssPeakColdMB: round1(rssPeakColdMB),
    rssPeakMB: round1(process.resourceUsage().maxRSS / 1024),
    heapBeforeMB: round1(heapBeforeMB),
    heapUsedMB: round1(heapUsedMB),
    fullSha,
    partialSha: sha(partialShas.join()),
    afterChangesSha: sha(afterChanges.payload),
  })}\n`,
);
