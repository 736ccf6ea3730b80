/**
 * Smoke run of `hack/bench/main.ts --quick` (as root: it makes network namespaces, applies
 * rules with both backends, runs the daemon against the development API server and a conntrack
 * table): one JSON line per backend with every field measured, the kernel holding the rules the
 * renderer counts, and no namespace left behind. Times are not judged.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIELD_ORDER } from '../../../hack/bench/result.ts';
import { REPO } from '../../support/e2e.ts';

function benchNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith('kpt-bench-'));
}

describe('make bench --quick', () => {
  it('prints one complete line per backend and cleans up', () => {
    const before = new Set(benchNamespaces());
    const r = spawnSync(process.execPath, [join(REPO, 'hack/bench/main.ts'), '--quick'], {
      encoding: 'utf8',
      timeout: 280_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.backend)).toEqual(['legacy', 'nft']);
    for (const l of lines) {
      expect(Object.keys(l).slice(0, FIELD_ORDER.length)).toEqual([...FIELD_ORDER]);
      expect(l.ok, JSON.stringify(l.problems)).toBe(true);
      expect(l.services).toBe(60);
      expect(l.endpointsPerService).toBe(3);
      expect(l.kernelNatRules).toBe(l.rendererNatRules);
      expect(l.natRulesFull).toBe(l.kernelNatRules);
      expect(l.payloadPartialBytes as number).toBeLessThan(l.payloadUpstreamStylePartialBytes as number);
      expect(l.payloadUpstreamStylePartialBytes as number).toBeLessThan(l.payloadFullBytes as number);
      for (const k of [
        'renderFullMs',
        'restoreFullMs',
        'restorePartialMs',
        'restoreOneRuleMs',
        'restoreUpstreamStylePartialMs',
        'trackerApplyMs',
        'latencyP50Ms',
        'latencyP99Ms',
        'rssPeakMB',
        'heapUsedMB',
      ]) {
        expect(l[k], k).toBeGreaterThan(0);
      }
      expect(l.latencyChanges).toBe(10);
      expect(l.latencyP99Ms as number).toBeGreaterThanOrEqual(l.latencyP50Ms as number);
      expect(l.conntrackEntries).toBe(2000);
      expect(l.conntrackDumpRequests).toBe(1);
      expect(l.conntrackDeleteRequests).toBe(16);
    }
    expect(r.stderr).toContain('| target | where | result | numbers |');
    expect(benchNamespaces().filter((n) => !before.has(n))).toEqual([]);
  }, 300_000);
});
