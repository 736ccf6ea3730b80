import { describe, expect, it } from 'vitest';
import { mergeLines, parseLines } from '../../../hack/bench/report.ts';
import {
  type BenchLine,
  checkTargets,
  FIELD_ORDER,
  formatBenchLine,
  markdownTable,
  median,
  percentile,
} from '../../../hack/bench/result.ts';

describe('median and percentile', () => {
  it('median of odd and even lists, unsorted input left alone', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('nearest-rank percentiles over 100 values', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(() => percentile(xs, 101)).toThrow(RangeError);
  });
});

describe('formatBenchLine', () => {
  it('writes every known key in order, null for missing or non-finite, extra keys last', () => {
    const line = formatBenchLine({
      backend: 'nft',
      services: 100,
      renderFullMs: Number.NaN,
      extra: 'x',
    });
    const parsed = JSON.parse(line) as Record<string, unknown>;
    const keys = Object.keys(parsed);
    expect(keys.slice(0, FIELD_ORDER.length)).toEqual([...FIELD_ORDER]);
    expect(keys[keys.length - 1]).toBe('extra');
    expect(parsed.services).toBe(100);
    expect(parsed.backend).toBe('nft');
    expect(parsed.renderFullMs).toBeNull();
    expect(parsed.latencyP99Ms).toBeNull();
    expect(line).not.toContain('\n');
  });

  it('has the fields issue 7 asks for', () => {
    for (const k of [
      'services',
      'endpointsPerService',
      'backend',
      'rulesFull',
      'renderFullMs',
      'restoreFullMs',
      'payloadFullBytes',
      'renderPartialMs',
      'restorePartialMs',
      'payloadPartialBytes',
      'payloadAddBytes',
      'payloadDeleteBytes',
      'restoreOneRuleMs',
      'restoreUpstreamStylePartialMs',
      'trackerApplyMs',
      'latencyP50Ms',
      'latencyP99Ms',
      'conntrackEntries',
      'conntrackCleanupMs',
      'conntrackNetlinkRequests',
      'rssPeakMB',
      'heapUsedMB',
    ]) {
      expect(FIELD_ORDER).toContain(k);
    }
  });
});

const base: BenchLine = {
  services: 10_000,
  endpointsPerService: 10,
  backend: 'nft',
  renderFullMs: 500,
  restoreFullMs: 8000,
  payloadPartialBytes: 1700,
  syncPartialMs: 210,
  restoreOneRuleMs: 200,
  restorePartialMs: 205,
  restoreUpstreamStylePartialMs: 1800,
  latencyP99Ms: 400,
  minSyncPeriodMs: 100,
  rssPeakMB: 250,
};

function byTarget(lines: BenchLine[]) {
  return new Map(checkTargets(lines).map((c) => [c.target, c] as const));
}

describe('checkTargets', () => {
  it('passes a 10k x 10 nft line that meets everything but latency', () => {
    const c = byTarget([base]);
    expect(c.get('full sync: render <= 10% of restore')?.met).toBe(true);
    expect(c.get('one endpoint at 10k: payload < 5 KiB')?.met).toBe(true);
    expect(c.get('one endpoint at 10k: sync - restoreOneRule < 20 ms')?.met).toBe(true);
    expect(c.get('nft one endpoint at 10k: restorePartial <= 1.5x restoreOneRule')?.met).toBe(true);
    expect(c.get('nft one endpoint at 10k: restorePartial <= 1/4 upstream style')?.met).toBe(true);
    // nft bound: min sync period + 250 ms = 350 ms.
    expect(c.get('latency p99 at 10k')?.met).toBe(false);
    expect(c.get('peak RSS at 10k x 10 < 300 MB')?.met).toBe(true);
  });

  it('adds restoreOneRuleMs to the legacy latency bound', () => {
    const c = byTarget([{ ...base, backend: 'legacy' }]);
    // 100 + 200 + 250 = 550 ms >= 400 ms.
    expect(c.get('latency p99 at 10k')?.met).toBe(true);
    expect(c.has('nft one endpoint at 10k: restorePartial <= 1.5x restoreOneRule')).toBe(false);
  });

  it('reports misses and unmeasured values', () => {
    const c = byTarget([
      { ...base, renderFullMs: 900, payloadPartialBytes: 6000, syncPartialMs: 230, latencyP99Ms: null },
    ]);
    expect(c.get('full sync: render <= 10% of restore')?.met).toBe(false);
    expect(c.get('one endpoint at 10k: payload < 5 KiB')?.met).toBe(false);
    expect(c.get('one endpoint at 10k: sync - restoreOneRule < 20 ms')?.met).toBe(false);
    expect(c.get('latency p99 at 10k')?.met).toBeNull();
  });

  it('checks the 10k-only targets at 10k only', () => {
    const c = byTarget([{ ...base, services: 1000 }]);
    expect(c.has('one endpoint at 10k: payload < 5 KiB')).toBe(false);
    expect(c.has('full sync: render <= 10% of restore')).toBe(true);
  });

  it('checks conntrack once, only at 100k entries', () => {
    const ct = {
      conntrackEntries: 100_000,
      conntrackStale: 16,
      conntrackCleanupMs: 640,
      conntrackDumpRequests: 1,
      conntrackDeleteRequests: 16,
    };
    const target = 'conntrack: 100k entries, cleanup < 1 s, 1 dump + 1 delete per stale entry';
    const two = checkTargets([
      { ...base, ...ct },
      { ...base, ...ct, backend: 'legacy' },
    ]).filter((c) => c.target === target);
    expect(two).toHaveLength(1);
    expect(two[0]?.met).toBe(true);
    expect(byTarget([{ ...base, ...ct, conntrackDeleteRequests: 1 }]).get(target)?.met).toBe(false);
    expect(byTarget([{ ...base, ...ct, conntrackCleanupMs: 1200 }]).get(target)?.met).toBe(false);
    expect(byTarget([{ ...base, ...ct, conntrackEntries: 2000 }]).get(target)?.met).toBeNull();
  });
});

describe('markdownTable', () => {
  it('one header, one separator, one row per line, dashes for missing values', () => {
    const t = markdownTable([base, { ...base, backend: 'legacy', latencyP99Ms: null }]).split('\n');
    expect(t).toHaveLength(4);
    expect(t[0]).toMatch(/^\| services \| eps\/svc \| backend \|/);
    expect(t[2]).toContain('| 10000 | 10 | nft |');
    expect(t[3]).toContain('| legacy |');
    expect(t[3]).toContain('–');
    expect(t.every((row) => row.split('|').length === t[0]!.split('|').length)).toBe(true);
  });
});

describe('report: mergeLines', () => {
  it('merges lines of one size and backend, later non-null values winning, order kept', () => {
    const merged = mergeLines(
      parseLines(
        [
          '{"services":10,"endpointsPerService":5,"backend":"legacy","renderFullMs":3,"latencyP50Ms":null}',
          '{"services":10,"endpointsPerService":5,"backend":"nft","renderFullMs":4}',
          'bench: progress line',
          '{"services":10,"endpointsPerService":5,"backend":"legacy","renderFullMs":null,"latencyP50Ms":120}',
        ].join('\n'),
      ),
    );
    expect(merged).toEqual([
      { services: 10, endpointsPerService: 5, backend: 'legacy', renderFullMs: 3, latencyP50Ms: 120 },
      { services: 10, endpointsPerService: 5, backend: 'nft', renderFullMs: 4 },
    ]);
  });
});

describe('checkTargets in CPU time', () => {
  const cpu: BenchLine = {
    ...base,
    renderFullCpuMs: 1700,
    restoreFullCpuMs: 5400,
    trackerOneChangeMs: 3,
    renderPartialMs: 11,
    restorePartialCpuMs: 30,
    restoreOneRuleCpuMs: 20,
    restoreUpstreamStylePartialCpuMs: 730,
  };

  it('judges render against restore CPU and the sync overhead above the floor', () => {
    const c = byTarget([cpu]);
    expect(c.get('full sync: render <= 10% of restore (CPU time)')?.met).toBe(false);
    // 3 + 11 + (30 - 20) = 24 ms.
    expect(c.get('one endpoint at 10k: sync - restoreOneRule < 20 ms (CPU time)')?.met).toBe(false);
    expect(c.get('nft one endpoint at 10k: restorePartial <= 1.5x restoreOneRule (CPU time)')?.met).toBe(
      true,
    );
    expect(c.get('nft one endpoint at 10k: restorePartial <= 1/4 upstream style (CPU time)')?.met).toBe(true);
    const fast = byTarget([{ ...cpu, renderFullCpuMs: 500, restorePartialCpuMs: 20 }]);
    expect(fast.get('full sync: render <= 10% of restore (CPU time)')?.met).toBe(true);
    expect(fast.get('one endpoint at 10k: sync - restoreOneRule < 20 ms (CPU time)')?.met).toBe(true);
  });

  it('says n/a without CPU numbers', () => {
    expect(byTarget([base]).get('full sync: render <= 10% of restore (CPU time)')?.met).toBeNull();
  });
});
