import { describe, expect, it } from 'vitest';
import { createFakeIptables } from '../../../pkg/iptables/fake.ts';
import { LineBuffer, payloadText } from '../../../pkg/iptables/payload.ts';
import type { Table } from '../../../pkg/iptables/types.ts';
import { declaredAmong, missingJumpLines, withLinesBeforeCommit } from '../../../proxier/jumps.ts';

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

describe('withLinesBeforeCommit', () => {
  const lines = new Map<Table, string[]>([
    ['filter', ['-I INPUT 1 -j KUBE-A', '-I FORWARD 1 -j KUBE-B']],
    ['nat', ['-I OUTPUT 1 -j KUBE-C']],
  ]);

  it('puts each table its lines right before its own COMMIT', () => {
    const payload = '*filter\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n*nat\n:KUBE-C - [0:0]\nCOMMIT\n';
    expect(withLinesBeforeCommit(payload, lines)).toBe(
      '*filter\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-I INPUT 1 -j KUBE-A\n-I FORWARD 1 -j KUBE-B\nCOMMIT\n' +
        '*nat\n:KUBE-C - [0:0]\n-I OUTPUT 1 -j KUBE-C\nCOMMIT\n',
    );
  });

  it('matches only whole COMMIT lines inside a table, and tables it has lines for', () => {
    const payload =
      'COMMIT\n*raw\nCOMMIT\n*nat\n-A X -m comment --comment COMMIT\nCOMMITTED\n COMMIT\nCOMMIT\n*filter\nCOMMIT';
    expect(withLinesBeforeCommit(payload, lines)).toBe(
      'COMMIT\n*raw\nCOMMIT\n*nat\n-A X -m comment --comment COMMIT\nCOMMITTED\n COMMIT\n-I OUTPUT 1 -j KUBE-C\nCOMMIT\n' +
        '*filter\n-I INPUT 1 -j KUBE-A\n-I FORWARD 1 -j KUBE-B\nCOMMIT',
    );
  });

  it('does the same on payload parts, without joining them', () => {
    const parts = [
      '*filter',
      ':KUBE-A - [0:0]\n-A KUBE-A -j RETURN',
      'COMMIT',
      '*nat',
      ':KUBE-C - [0:0]',
      'COMMIT',
      '',
    ];
    const got = withLinesBeforeCommit(parts, lines);
    expect(Array.isArray(got)).toBe(true);
    expect(payloadText(got)).toBe(withLinesBeforeCommit(payloadText(parts), lines));
    expect(withLinesBeforeCommit(parts, new Map())).toBe(parts);
  });

  it('returns the payload itself when there is nothing to add', () => {
    expect(withLinesBeforeCommit(PAYLOAD, new Map())).toBe(PAYLOAD);
    expect(withLinesBeforeCommit(PAYLOAD, new Map([['raw', ['-I X 1 -j Y']]]))).toBe(PAYLOAD);
  });
});

describe('declaredAmong', () => {
  it('finds chain lines in single lines and in blocks, whole names only', () => {
    const b = new LineBuffer();
    b.writeLine(':KUBE-SERVICES - [0:0]');
    b.writeBlock(':KUBE-SVC-X - [0:0]\n:KUBE-NODEPORTS - [0:0]', 2);
    b.writeLine(':KUBE-POSTROUTING-OTHER - [0:0]');
    const got = declaredAmong(b, ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-FORWARD']);
    expect([...got].sort()).toEqual(['KUBE-NODEPORTS', 'KUBE-SERVICES']);
  });
});
