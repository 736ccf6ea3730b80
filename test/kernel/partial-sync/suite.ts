/**
 * Incremental partial syncs on a real kernel: random sequences of Service and endpoint changes
 * (seeded; the seed is in the test name and in every failure message) over up to 20 Services,
 * each applied with the incremental renderer through the real `iptables-restore --noflush` in one
 * namespace; every few syncs `iptables-save` of nat and filter there must equal a full render of
 * the same state applied in a fresh namespace (same rules per chain; Services in any order inside
 * the top-level chains, the nodeports jump last), and the rule gauges must equal the rules the
 * kernel holds. One file per backend, so that the two run side by side.
 *
 * `SEED=n` in the environment replays one seed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RestoreError } from '../../../pkg/iptables/errors.ts';
import { chainNamesOf } from '../../../pkg/iptables/parse.ts';
import { createIptablesRunner } from '../../../pkg/iptables/runner.ts';
import type { Backend } from '../../../pkg/iptables/types.ts';
import { createIncrementalRenderer } from '../../../proxier/incremental.ts';
import { renderRules } from '../../../proxier/render.ts';
import { fakeProxierConfig } from '../../golden/support/builders.ts';
import { createNetns, deleteNetns, execInOk, inNetns } from '../../support/netns.ts';
import {
  normalizeTables,
  RandomCluster,
  runEquivalence,
} from '../../unit/proxier/incremental/random-cluster.ts';

const NOFLUSH = { flush: false, counters: true } as const;

// The namespaces have no nfacct objects: rules naming a counter would be refused.
const CONFIG = fakeProxierConfig('IPv4', { nfacctCounters: new Set() });
const CONFIG6 = fakeProxierConfig('IPv6', { nfacctCounters: new Set() });
const STEPS = 96;
const CHECK_EVERY = 6;

/**
 * One fixed seed per backend (the in-memory equivalence test runs many more sequences; this one
 * proves the kernel applies the same edits the same way), or `SEED` from the environment.
 */
function seeds(backend: Backend): number[] {
  if (process.env.SEED) return [Number(process.env.SEED)];
  return [backend === 'legacy' ? 20240611 : 7130];
}

export function partialSyncSuite(backend: Backend): void {
  describe(`partial syncs on ${backend} iptables equal a full render`, () => {
    const made = new Set<string>();
    afterAll(async () => {
      for (const ns of made) await deleteNetns(ns);
    });

    const runner = (ns: string, family: 'IPv4' | 'IPv6' = 'IPv4') =>
      createIptablesRunner({ family, backend, execPrefix: inNetns(ns, []) });

    it.each(seeds(backend))(
      `seed %i: ${STEPS} syncs over up to 20 services`,
      async (seed) => {
        const ns = await createNetns(`ps${backend[0]}`);
        made.add(ns);
        const report = await runEquivalence({
          seed,
          steps: STEPS,
          checkEvery: CHECK_EVERY,
          maxServices: 20,
          config: CONFIG,
          renderer: createIncrementalRenderer(),
          partial: runner(ns),
          fresh: async () => {
            const fresh = await createNetns(`pf${backend[0]}`);
            made.add(fresh);
            return {
              ipt: runner(fresh),
              dispose: async () => {
                await deleteNetns(fresh);
                made.delete(fresh);
              },
            };
          },
        });
        expect(report.failure).toBeUndefined();
        expect(report.checks).toBe(STEPS / CHECK_EVERY);
        expect(report.modes).toEqual({ full: 1, rewrite: 0, incremental: STEPS });
        // Some syncs only changed endpoints: their payloads left the top-level chains alone.
        expect(report.untouchedTopLevel).toBeGreaterThan(0);
        // And others edited the top-level chains in both tables, rule by rule.
        expect(report.edits.filterDeletes).toBeGreaterThan(0);
        expect(report.edits.natDeletes).toBeGreaterThan(0);
        expect(report.edits.inserts).toBeGreaterThan(0);
        await deleteNetns(ns);
        made.delete(ns);
      },
      // About 20 s on an idle machine; the bound leaves room for a loaded one.
      120_000,
    );

    it('IPv6 (ip6tables-restore), seed 606: 30 syncs over up to 12 services', async () => {
      const ns = await createNetns(`p6${backend[0]}`);
      made.add(ns);
      const report = await runEquivalence({
        seed: 606,
        steps: 30,
        checkEvery: 6,
        maxServices: 12,
        config: CONFIG6,
        renderer: createIncrementalRenderer(),
        partial: runner(ns, 'IPv6'),
        fresh: async () => {
          const fresh = await createNetns(`pf${backend[0]}`);
          made.add(fresh);
          return {
            ipt: runner(fresh, 'IPv6'),
            dispose: async () => {
              await deleteNetns(fresh);
              made.delete(fresh);
            },
          };
        },
      });
      expect(report.failure).toBeUndefined();
      expect(report.checks).toBe(5);
      expect(report.modes).toEqual({ full: 1, rewrite: 0, incremental: 30 });
    }, 60_000);

    it('a top-level rule removed behind our back fails the -D; reset and a full sync recover', async () => {
      const ns = await createNetns(`pr${backend[0]}`);
      made.add(ns);
      const ipt = runner(ns);
      const cluster = new RandomCluster(5, 10);
      let key = '';
      for (let i = 0; i < 8; i++) key = cluster.addService();
      const renderer = createIncrementalRenderer();
      await ipt.restoreAll(renderer.render(cluster.state(), CONFIG, { full: true }).payload, NOFLUSH);
      renderer.commit();

      // Someone empties nat KUBE-SERVICES; then the last Service goes away.
      await execInOk(ns, [`iptables-${backend}`, '-t', 'nat', '-F', 'KUBE-SERVICES']);
      const before = await ipt.save('nat');
      cluster.deleteService(key);
      const partial = renderer.render(cluster.state(), CONFIG, {
        full: false,
        changedServices: new Set([key]),
      });
      expect(partial.payload).toMatch(/^-D KUBE-SERVICES /m);
      const err = await ipt.restoreAll(partial.payload, NOFLUSH).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RestoreError);
      // The nat transaction was refused as a whole: its chain deletions did not happen either.
      expect(normalizeTables(await ipt.save('nat'))).toBe(normalizeTables(before));

      // The sync loop's failure path: forget the cache, then a full sync from what is there.
      renderer.reset();
      const existingNatChains = new Set(chainNamesOf(await ipt.save('nat'), 'nat'));
      const full = renderer.render(cluster.state(), CONFIG, { full: true, existingNatChains });
      await ipt.restoreAll(full.payload, NOFLUSH);
      renderer.commit();
      const fresh = await createNetns(`pf${backend[0]}`);
      made.add(fresh);
      await runner(fresh).restoreAll(renderRules(cluster.state(), CONFIG, { full: true }).payload, NOFLUSH);
      expect(normalizeTables(await ipt.saveAll())).toBe(normalizeTables(await runner(fresh).saveAll()));
      // And partial syncs work again from there.
      const next = cluster.mutate();
      const again = renderer.render(cluster.state(), CONFIG, {
        full: false,
        changedServices: new Set([next.key]),
      });
      expect(again.mode).toBe('incremental');
      await ipt.restoreAll(again.payload, NOFLUSH);
    });
  });
}
