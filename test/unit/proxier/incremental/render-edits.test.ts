import { describe, expect, it } from 'vitest';
import { chainOfRule, editTopLevelRules, placementOf } from '../../../../proxier/render-edits.ts';

const A = '-A KUBE-NODEPORTS -m comment --comment ns1/a:p80 -m tcp -p tcp --dport 30001 -j KUBE-EXT-A';
const B = '-A KUBE-NODEPORTS -m comment --comment ns1/a:p81 -m tcp -p tcp --dport 30002 -j KUBE-EXT-A2';
const S1 = '-A KUBE-SERVICES -m comment --comment "ns1/a:p80 cluster IP" -d 172.30.0.1 -j KUBE-SVC-A';
const S2 = '-A KUBE-SERVICES -m comment --comment "ns1/a:p80 external IP" -d 1.2.3.4 -j KUBE-EXT-A';
const F1 = '-A KUBE-SERVICES -m comment --comment "ns1/a:p80 has no endpoints" -d 172.30.0.1 -j REJECT';
const F2 = '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/a:p80 has no endpoints" -d 1.2.3.4 -j REJECT';

describe('placementOf', () => {
  it('prepends only to nat KUBE-SERVICES, whose last rule is the nodeports jump', () => {
    expect(placementOf('nat', 'KUBE-SERVICES')).toBe('prepend');
    expect(placementOf('nat', 'KUBE-NODEPORTS')).toBe('append');
    expect(placementOf('filter', 'KUBE-SERVICES')).toBe('append');
  });
});

describe('chainOfRule', () => {
  it('reads the chain of an -A line', () => {
    expect(chainOfRule(S1)).toBe('KUBE-SERVICES');
    expect(chainOfRule('-A KUBE-X')).toBe('KUBE-X');
  });
});

describe('editTopLevelRules', () => {
  it('writes nothing when the rules are unchanged', () => {
    expect(editTopLevelRules('nat', [S1, A], [S1, A])).toEqual({ deletes: [], inserts: [] });
    expect(editTopLevelRules('filter', [], [])).toEqual({ deletes: [], inserts: [] });
  });

  it('deletes rules that went away by their exact text', () => {
    expect(editTopLevelRules('nat', [S1, S2, A], [S1])).toEqual({
      deletes: [`-D${S2.slice(2)}`, `-D${A.slice(2)}`],
      inserts: [],
    });
  });

  it('appends new rules after the kept ones in append chains', () => {
    expect(editTopLevelRules('nat', [A], [A, B])).toEqual({ deletes: [], inserts: [B] });
    expect(editTopLevelRules('filter', [], [F1, F2])).toEqual({ deletes: [], inserts: [F1, F2] });
  });

  it('inserts new KUBE-SERVICES rules at position 1, last first, so they end up in order', () => {
    const e = editTopLevelRules('nat', [], [S1, S2]);
    expect(e.deletes).toEqual([]);
    expect(e.inserts).toEqual([
      '-I KUBE-SERVICES 1 -m comment --comment "ns1/a:p80 external IP" -d 1.2.3.4 -j KUBE-EXT-A',
      '-I KUBE-SERVICES 1 -m comment --comment "ns1/a:p80 cluster IP" -d 172.30.0.1 -j KUBE-SVC-A',
    ]);
  });

  it('prepends a new rule that precedes the kept ones', () => {
    expect(editTopLevelRules('nat', [S2], [S1, S2]).inserts).toEqual([
      '-I KUBE-SERVICES 1 -m comment --comment "ns1/a:p80 cluster IP" -d 172.30.0.1 -j KUBE-SVC-A',
    ]);
  });

  it('replaces the block when a new rule must go between or on the wrong side of kept ones', () => {
    // Appending B before A is impossible with -A: all of A..B is rewritten in order.
    expect(editTopLevelRules('nat', [A], [B, A])).toEqual({ deletes: [`-D${A.slice(2)}`], inserts: [B, A] });
    // KUBE-SERVICES: a new rule after a kept one cannot be placed with -I 1.
    const e = editTopLevelRules('nat', [S1], [S1, S2]);
    expect(e.deletes).toEqual([`-D${S1.slice(2)}`]);
    const prepend = (l: string) => `-I KUBE-SERVICES 1${l.slice('-A KUBE-SERVICES'.length)}`;
    expect(e.inserts).toEqual([prepend(S2), prepend(S1)]);
  });

  it('replaces the block when kept rules changed order', () => {
    expect(editTopLevelRules('nat', [A, B], [B, A])).toEqual({
      deletes: [`-D${A.slice(2)}`, `-D${B.slice(2)}`],
      inserts: [B, A],
    });
  });

  it('treats identical lines as a multiset', () => {
    expect(editTopLevelRules('filter', [F2, F2], [F2])).toEqual({
      deletes: [`-D${F2.slice(2)}`],
      inserts: [],
    });
    expect(editTopLevelRules('filter', [F2], [F2, F2])).toEqual({ deletes: [], inserts: [F2] });
  });

  it('edits each chain on its own', () => {
    // A service that gains endpoints: filter REJECTs go, nat jumps come.
    expect(editTopLevelRules('filter', [F1, F2], [])).toEqual({
      deletes: [`-D${F1.slice(2)}`, `-D${F2.slice(2)}`],
      inserts: [],
    });
    const e = editTopLevelRules('nat', [A], [S1, A, B]);
    expect(e).toEqual({
      deletes: [],
      inserts: [B, `-I KUBE-SERVICES 1${S1.slice('-A KUBE-SERVICES'.length)}`],
    });
  });
});
