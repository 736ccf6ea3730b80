/** The comparison helpers themselves, after upstream's TestSortIPTablesRules and TestCheckIPTablesRuleJumps. */
import { describe, expect, it } from 'vitest';
import { checkRuleJumps, sortIPTablesRules } from './support/normalize.ts';

describe('checkRuleJumps', () => {
  it('accepts a consistent dump', () => {
    const dump = [
      '*filter',
      'COMMIT',
      '*nat',
      ':KUBE-MARK-MASQ - [0:0]',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]',
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 10.20.30.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
      '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 10.20.30.41 --dport 80 ! -s 10.0.0.0/24 -j KUBE-MARK-MASQ',
      'COMMIT',
    ].join('\n');
    expect(checkRuleJumps(dump)).toEqual([]);
  });

  it.each([
    [
      'jump to a chain that was not created',
      [':KUBE-SERVICES - [0:0]', '-A KUBE-SERVICES -j KUBE-SVC-X'],
      'nat: chain KUBE-SVC-X is used but was not created',
    ],
    [
      'jump to a chain without rules',
      [':KUBE-SERVICES - [0:0]', ':KUBE-SVC-X - [0:0]', '-A KUBE-SERVICES -j KUBE-SVC-X'],
      'nat: chain KUBE-SVC-X is jumped to but has no rules',
    ],
    [
      'chain created and never used',
      [':KUBE-SERVICES - [0:0]', ':KUBE-SVC-X - [0:0]', '-A KUBE-SVC-X -j KUBE-MARK-MASQ'],
      'nat: chain KUBE-SVC-X is created but not used',
    ],
    [
      'jump to a chain deleted in the same dump',
      [':KUBE-SERVICES - [0:0]', ':KUBE-SEP-Y - [0:0]', '-A KUBE-SERVICES -j KUBE-SEP-Y', '-X KUBE-SEP-Y'],
      'nat: chain KUBE-SEP-Y is used but was not created',
    ],
  ])('reports a %s', (_name, lines, problem) => {
    const dump = ['*filter', 'COMMIT', '*nat', ...lines, 'COMMIT'].join('\n');
    expect(checkRuleJumps(dump)).toContain(problem);
  });
});

describe('sortIPTablesRules', () => {
  it('orders tables, chains, service rules and deletions as upstream, keeping the nodeports jump last', () => {
    const input = [
      '*nat',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-NODEPORTS - [0:0]',
      ':KUBE-SVC-B - [0:0]',
      ':KUBE-MARK-MASQ - [0:0]',
      ':KUBE-SEP-GONE - [0:0]',
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
      '-A KUBE-SERVICES -m comment --comment "ns2/b:p cluster IP" -j KUBE-SVC-B',
      '-A KUBE-SVC-B -j KUBE-MARK-MASQ',
      '-A KUBE-SERVICES -m comment --comment "ns1/a cluster IP" -j KUBE-SVC-A',
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
      '-X KUBE-SEP-GONE',
      'COMMIT',
      '*filter',
      ':KUBE-FORWARD - [0:0]',
      'COMMIT',
    ].join('\n');
    expect(sortIPTablesRules(input)).toBe(
      [
        '*filter',
        ':KUBE-FORWARD - [0:0]',
        'COMMIT',
        '*nat',
        ':KUBE-NODEPORTS - [0:0]',
        ':KUBE-SERVICES - [0:0]',
        ':KUBE-MARK-MASQ - [0:0]',
        ':KUBE-SEP-GONE - [0:0]',
        ':KUBE-SVC-B - [0:0]',
        '-A KUBE-SERVICES -m comment --comment "ns1/a cluster IP" -j KUBE-SVC-A',
        '-A KUBE-SERVICES -m comment --comment "ns2/b:p cluster IP" -j KUBE-SVC-B',
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
        '-A KUBE-SVC-B -j KUBE-MARK-MASQ',
        '-X KUBE-SEP-GONE',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('refuses rules for undeclared chains', () => {
    expect(() => sortIPTablesRules('*nat\n-A KUBE-SVC-X -j DROP\nCOMMIT\n')).toThrow(/undeclared/);
  });
});
