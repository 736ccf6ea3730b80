/**
 * The canary monitor against real iptables (legacy and nft) in a fresh namespace: a firewall
 * reload that deletes every chain (flush + -X, table by table) is noticed within one interval.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { binariesFor, createIptablesRunner } from '../../../pkg/iptables/runner.ts';
import type { Backend, Table } from '../../../pkg/iptables/types.ts';
import { silentLogger } from '../../../pkg/log/logger.ts';
import { type CanaryMonitor, createCanaryMonitor } from '../../../proxier/canary.ts';
import { createNetns, deleteNetns, execInOk, inNetns } from '../../support/netns.ts';
import { installKubeProxy } from '../../unit/proxier/cleanup/fixture.ts';

const INTERVAL_MS = 1000;
const CANARY = 'KUBE-PROXY-CANARY';
const TABLES: readonly Table[] = ['mangle', 'nat', 'filter'];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(50);
  }
  return cond();
}

describe.each(['legacy', 'nft'] as readonly Backend[])('canary monitor on iptables-%s', (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  });

  it('notices a firewall reload that deletes every KUBE-* chain within one interval', async () => {
    const ns = await createNetns(`cn${backend.slice(0, 3)}`);
    cleanups.push(() => deleteNetns(ns));
    const ipt = createIptablesRunner({ family: 'IPv4', backend, execPrefix: inNetns(ns, []) });
    await installKubeProxy(ipt);

    const flushedAt: number[] = [];
    const monitor: CanaryMonitor = createCanaryMonitor({
      iptables: ipt,
      intervalMs: INTERVAL_MS,
      onFlushed: () => flushedAt.push(Date.now()),
      logger: silentLogger(),
    });
    cleanups.push(() => monitor.stop());
    monitor.start();

    const allCanaries = async () => {
      for (const t of TABLES) if (!(await ipt.chainExists(t, CANARY))) return false;
      return true;
    };
    expect(await until(allCanaries, 5000)).toBe(true);
    // Two quiet intervals: nothing to report while the canaries stand.
    await sleep(2 * INTERVAL_MS + 200);
    expect(flushedAt).toEqual([]);

    // A firewall reload: each table emptied and its user chains deleted, one table at a time.
    const bin = binariesFor('IPv4', backend).iptables;
    const reloadStart = Date.now();
    for (const t of TABLES) {
      await execInOk(ns, [bin, '-w', '-t', t, '-F']);
      await execInOk(ns, [bin, '-w', '-t', t, '-X']);
    }
    const reloadEnd = Date.now();
    const saved = await ipt.saveAll();
    expect(saved).not.toMatch(/KUBE-/);

    expect(await until(async () => flushedAt.length > 0, INTERVAL_MS + 3000)).toBe(true);
    expect(flushedAt).toHaveLength(1);
    // Noticed within one poll interval of the reload (plus the time the reload itself took and
    // the few iptables calls of one check).
    expect(flushedAt[0]! - reloadStart).toBeLessThanOrEqual(INTERVAL_MS + (reloadEnd - reloadStart) + 750);
    // The canaries are back, ready for the next reload.
    expect(await until(allCanaries, 3000)).toBe(true);

    await monitor.stop();
    for (const t of TABLES) expect(await ipt.chainExists(t, CANARY)).toBe(false);
    expect(flushedAt).toHaveLength(1);
  });
});
