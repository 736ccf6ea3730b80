/**
 * `--cleanup` against real iptables (legacy and nft), each case in a fresh namespace: every
 * kube-proxy chain and jump goes, every rule of kubelet, a CNI plugin, Docker and the admin stays
 * byte for byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createIptablesRunner } from '../../../pkg/iptables/runner.ts';
import type { Backend, Family, Iptables } from '../../../pkg/iptables/types.ts';
import { silentLogger } from '../../../pkg/log/logger.ts';
import { cleanupLeftovers, isKubeProxyChain } from '../../../proxier/cleanup.ts';
import { createNetns, deleteNetns, inNetns } from '../../support/netns.ts';
import {
  foreignLines,
  foreignRules,
  installKubeProxy,
  saveLines,
} from '../../unit/proxier/cleanup/fixture.ts';

const BACKENDS: readonly Backend[] = ['legacy', 'nft'];

describe.each(BACKENDS)('cleanupLeftovers on iptables-%s', (backend) => {
  const made: string[] = [];
  afterEach(async () => {
    for (const ns of made.splice(0)) await deleteNetns(ns);
  });

  async function node(label: string, family: Family = 'IPv4'): Promise<Iptables> {
    const ns = await createNetns(label);
    made.push(ns);
    return createIptablesRunner({ family, backend, execPrefix: inNetns(ns, []) });
  }

  async function saveAll(ipt: Iptables): Promise<string> {
    // Only the three tables cleanup works on; nft lists no table it has not been asked about.
    let out = '';
    for (const t of ['filter', 'nat', 'mangle'] as const) out += await ipt.save(t);
    return out;
  }

  it.each(['IPv4', 'IPv6'] as const)(
    '%s: removes every kube-proxy chain and jump, and leaves foreign rules byte-identical',
    async (family) => {
      const ipt = await node(`cl${backend.slice(0, 3)}${family.slice(-1)}`, family);
      await ipt.restoreAll(foreignRules(family), { flush: false, counters: true });
      await installKubeProxy(ipt);
      const before = await saveAll(ipt);
      // The setup is what it claims to be: our chains, our jumps and the neighbours' rules are in.
      expect(before).toMatch(/^:KUBE-SEP-/m);
      expect(before).toMatch(/^:KUBE-FW-/m);
      expect(before).toMatch(/^:KUBE-PROXY-CANARY/m);
      expect(before).toMatch(/^-A PREROUTING .*-j KUBE-SERVICES$/m);
      expect(before).toMatch(/^-A FORWARD .*-j CNI-FORWARD$/m);
      expect(before).toMatch(/^-A DOCKER .*-j DNAT --to-destination \S+:80$/m);

      const r = await cleanupLeftovers(ipt, silentLogger());
      expect(r.ok).toBe(true);

      const after = await saveAll(ipt);
      expect(saveLines(after)).toEqual(foreignLines(before));
      const left = after
        .split('\n')
        .filter((l) => l.startsWith(':'))
        .map((l) => l.slice(1, l.indexOf(' ')));
      expect(left.filter((c) => c.startsWith('KUBE-'))).toEqual(['KUBE-FIREWALL']);
      expect(after).not.toMatch(/-j KUBE-(?!FIREWALL)/);
      // What the result names as removed really was there and really is gone.
      for (const entry of r.removed) {
        const [table, chain] = entry.split('/') as ['filter' | 'nat' | 'mangle', string];
        expect(isKubeProxyChain(table, chain)).toBe(true);
        expect(await ipt.chainExists(table, chain)).toBe(false);
      }
      expect(r.removed.length).toBeGreaterThan(15);

      // Cleaning a clean node is a success that changes nothing.
      const again = await cleanupLeftovers(ipt, silentLogger());
      expect(again).toMatchObject({ ok: true, removed: [] });
      expect(saveLines(await saveAll(ipt))).toEqual(saveLines(after));
    },
  );

  it('keeps a chain a foreign chain jumps to (flushed) and KUBE-MARK-MASQ while others use it', async () => {
    const ipt = await node(`ck${backend.slice(0, 3)}`);
    await installKubeProxy(ipt);
    await ipt.restoreAll(
      [
        '*nat',
        ':CNI-HOSTPORT-DNAT - [0:0]',
        ':CNI-HOSTPORT-SETMARK - [0:0]',
        '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
        '-A CNI-HOSTPORT-DNAT -p tcp -m tcp --dport 9000 -j KUBE-NODEPORTS',
        '-A CNI-HOSTPORT-SETMARK -j KUBE-MARK-MASQ',
        'COMMIT',
        '',
      ].join('\n'),
      { flush: false, counters: true },
    );
    const before = await saveAll(ipt);
    const r = await cleanupLeftovers(ipt, silentLogger());
    expect(r.ok).toBe(true);
    const nat = r.tables.find((t) => t.table === 'nat')!;
    expect(nat.keptChains.map((k) => k.chain).sort()).toEqual(['KUBE-MARK-MASQ', 'KUBE-NODEPORTS']);

    const after = await saveAll(ipt);
    expect(saveLines(after)).toEqual(
      foreignLines(
        before,
        new Map([
          ['nat/KUBE-NODEPORTS', 'flushed'],
          ['nat/KUBE-MARK-MASQ', 'untouched'],
        ]),
      ),
    );
    expect(after).toMatch(/^-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000\/0x4000$/m);
    expect(await ipt.chainExists('nat', 'KUBE-SERVICES')).toBe(false);
  });
});
