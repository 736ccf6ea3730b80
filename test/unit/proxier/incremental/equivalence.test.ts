/**
 * Randomized partial-vs-full equivalence on the in-memory fake, which applies `--noflush`
 * payloads (`-D`, `-I n`, chain lines, `-X`) with the kernel's semantics. The same driver runs on
 * real kernels in test/kernel/partial-sync/. Each seed is printed in the test name.
 */
import { describe, expect, it } from 'vitest';
import { createFakeIptables } from '../../../../pkg/iptables/fake.ts';
import { createIncrementalRenderer } from '../../../../proxier/incremental.ts';
import { fakeProxierConfig } from '../../../golden/support/builders.ts';
import { createNoflushFake } from './noflush-fake.ts';
import { runEquivalence } from './random-cluster.ts';

const SEEDS = [1, 2, 3, 42, 1234, 99991];

describe('incremental partial syncs equal a full render (fake iptables)', () => {
  it.each(SEEDS)('IPv4, seed %i: 300 syncs over up to 20 services', async (seed) => {
    const report = await runEquivalence({
      seed,
      steps: 300,
      checkEvery: 5,
      maxServices: 20,
      config: fakeProxierConfig('IPv4'),
      renderer: createIncrementalRenderer(),
      partial: createNoflushFake('IPv4'),
      fresh: async () => ({ ipt: createFakeIptables({ family: 'IPv4' }), dispose: async () => {} }),
    });
    expect(report.failure).toBeUndefined();
    expect(report.checks).toBe(60);
    // After the first full sync every partial sync is incremental, and some leave the top-level
    // chains alone entirely (only endpoints changed).
    expect(report.modes).toEqual({ full: 1, rewrite: 0, incremental: 300 });
    expect(report.untouchedTopLevel).toBeGreaterThan(20);
    // And others edited the top-level chains in both tables, rule by rule.
    expect(report.edits.filterDeletes).toBeGreaterThan(0);
    expect(report.edits.natDeletes).toBeGreaterThan(0);
    expect(report.edits.inserts).toBeGreaterThan(0);
  });

  it('IPv6, seed 7: 200 syncs over up to 12 services', async () => {
    const report = await runEquivalence({
      seed: 7,
      steps: 200,
      checkEvery: 4,
      maxServices: 12,
      config: fakeProxierConfig('IPv6', {
        localDetector: { mode: 'ClusterCIDR', cidrs: ['fd00:10::/64'] },
      }),
      renderer: createIncrementalRenderer(),
      partial: createNoflushFake('IPv6'),
      fresh: async () => ({ ipt: createFakeIptables({ family: 'IPv6' }), dispose: async () => {} }),
    });
    expect(report.failure).toBeUndefined();
  });
});
