import { describe, expect, it } from 'vitest';
import { createFakeIptables } from '../../../pkg/iptables/fake.ts';
import type { Table } from '../../../pkg/iptables/types.ts';
import { missingJumpLines, withLinesBeforeCommit } from '../../../proxier/jumps.ts';

const DECLARED = new Map<Table, Set<string>>([
  [
    'filter',
    new Set([
      'KUBE-SERVICES',
      'KUBE-EXTERNAL-SERVICES',
      'KUBE-FORWARD',
      'KUBE-NODEPORTS',
      'KUBE-PROXY-FIREWALL',
    ]),
  ],
  ['nat', new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'])],
]);

const PAYLOAD = [
  '*filter',
  ':KUBE-SERVICES - [0:0]',
  ':KUBE-EXTERNAL-SERVICES - [0:0]',
  ':KUBE-FORWARD - [0:0]',
  ':KUBE-NODEPORTS - [0:0]',
  ':KUBE-PROXY-FIREWALL - [0:0]',
  'COMMIT',
  '*nat',
  ':KUBE-SERVICES - [0:0]',
  ':KUBE-NODEPORTS - [0:0]',
  ':KUBE-POSTROUTING - [0:0]',
  ':KUBE-MARK-MASQ - [0:0]',
  'COMMIT',
  '',
].join('\n');

describe('built-in jumps folded into the full-sync restore', () => {
  it('on a clean host inserts every jump, ending in upstream order (reverse of the list)', async () => {
    const ipt = createFakeIptables();
    const lines = missingJumpLines('', DECLARED);
    // KUBE-FIREWALL is not declared (IPv6 or no localhost NodePorts): no jump to it.
    expect([...lines.values()].flat().some((l) => l.includes('KUBE-FIREWALL'))).toBe(false);
    await ipt.restoreAll(withLinesBeforeCommit(PAYLOAD, lines), { flush: false, counters: true });
    expect(ipt.rulesOf('filter', 'INPUT')?.map((r) => r.at(-1))).toEqual([
      'KUBE-PROXY-FIREWALL',
      'KUBE-NODEPORTS',
      'KUBE-EXTERNAL-SERVICES',
    ]);
    expect(ipt.rulesOf('nat', 'PREROUTING')).toEqual([
      ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'],
    ]);
  });

  it('adds nothing when every jump is there, and only the missing one otherwise', async () => {
    const ipt = createFakeIptables();
    await ipt.restoreAll(withLinesBeforeCommit(PAYLOAD, missingJumpLines('', DECLARED)), {
      flush: false,
      counters: true,
    });
    const saved = `${await ipt.save('filter')}\n${await ipt.save('nat')}`;
    expect(missingJumpLines(saved, DECLARED).size).toBe(0);
    await ipt.deleteRule('nat', 'POSTROUTING', [
      '-m',
      'comment',
      '--comment',
      'kubernetes postrouting rules',
      '-j',
      'KUBE-POSTROUTING',
    ]);
    const after = `${await ipt.save('filter')}\n${await ipt.save('nat')}`;
    expect([...missingJumpLines(after, DECLARED).entries()]).toEqual([
      ['nat', ['-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING']],
    ]);
  });
});
