/**
 * The nft runner's split restores (pkg/iptables/split.ts) against the kernel: a 1,000-Service
 * full sync and the next one (every endpoint replaced, old SEP chains deleted) leave exactly the
 * rules that the same payloads fed whole to iptables-nft-restore leave, and go in faster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binariesFor, createIptablesRunner } from '../../../pkg/iptables/runner.ts';
import { splitRestorePayload } from '../../../pkg/iptables/split.ts';
import { silentLogger } from '../../../pkg/log/logger.ts';
import { clusterChains, clusterPayload } from '../../support/cluster-payload.ts';
import { createNetns, deleteNetns, execIn, execInOk, inNetns } from '../../support/netns.ts';

const NOFLUSH = { flush: false, counters: true } as const;
const BIN = binariesFor('IPv4', 'nft');

/** A table's chains with their rules in order (iptables-save lists chains in kernel order). */
function rulesByChain(save: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of save.split('\n')) {
    if (line.startsWith(':')) out.set(line.slice(1).split(' ')[0] as string, []);
    else if (line.startsWith('-A ')) out.get(line.split(' ')[1] as string)?.push(line);
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

describe('nft: big restores split into sections', () => {
  let viaRunner: string;
  let whole: string;
  beforeAll(async () => {
    viaRunner = await createNetns('split');
    whole = await createNetns('whole');
  });
  afterAll(async () => {
    await deleteNetns(viaRunner);
    await deleteNetns(whole);
  });

  it('leaves the rules a whole restore leaves, first sync and next', { timeout: 120_000 }, async () => {
    const ipt = createIptablesRunner({
      family: 'IPv4',
      backend: 'nft',
      execPrefix: inNetns(viaRunner, []),
      logger: silentLogger(),
    });
    const first = { services: 1_000, endpointsPerService: 5, builtinJump: true };
    const next = {
      ...first,
      builtinJump: false,
      endpointBase: 100_000,
      staleChains: clusterChains(first).filter((c) => c.startsWith('KUBE-SEP-')),
    };
    for (const [name, o] of [
      ['first', first],
      ['next', next],
    ] as const) {
      const payload = clusterPayload(o);
      expect(splitRestorePayload(payload)).not.toBe(payload);
      const t0 = performance.now();
      await ipt.restoreAll(payload, NOFLUSH);
      const splitMs = performance.now() - t0;
      const t1 = performance.now();
      const r = await execIn(whole, [BIN.restore, '--noflush', '--counters'], payload);
      const wholeMs = performance.now() - t1;
      expect(r.code, r.stderr).toBe(0);
      console.log(
        `nft ${name} sync, ${o.services} services: split ${splitMs.toFixed(0)} ms, whole ${wholeMs.toFixed(0)} ms`,
      );

      const got = rulesByChain(await ipt.save('nat'));
      const want = rulesByChain(await execInOk(whole, [BIN.save, '-t', 'nat']));
      expect(got.size).toBeGreaterThan(6_000);
      expect([...got.keys()]).toEqual([...want.keys()]);
      for (const [chain, rules] of want) expect(got.get(chain), chain).toEqual(rules);
      expect(got.get('PREROUTING')).toHaveLength(1);
    }
    // The old SEP chains are gone, the new ones filled.
    const nat = rulesByChain(await ipt.save('nat'));
    for (const c of next.staleChains) expect(nat.has(c)).toBe(false);
    for (const c of clusterChains(next)) expect(nat.get(c)?.length, c).toBeGreaterThan(0);
  });
});
