/**
 * Golden test: upstream's TestSyncProxyRulesRepeated (pkg/proxy/iptables/proxier_test.go,
 * reference version). Ten syncs in a row: a full sync, then partial syncs that add a service,
 * delete one, add one without endpoints, give it endpoints, change and add endpoints, change
 * nothing, fail (injected), and a full resync that deletes the leftovers. Each payload is compared
 * with upstream's expected text, and the rule gauges with upstream's arithmetic.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RenderResult, RenderState } from '../../proxier/render.ts';
import { renderRules } from '../../proxier/render.ts';
import type { ServiceKey, ServicePort } from '../../proxier/types.ts';
import { fakeProxierConfig, makeEndpoint, makeServicePort, makeState } from './support/builders.ts';
import { checkRuleJumps, parseDump, sortIPTablesRules, testMarkSpelling } from './support/normalize.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

/** The nat chains a real table would hold: declared chains stay, `-X` removes. */
function applyNatChains(existing: Set<string>, result: RenderResult): Set<string> {
  const next = new Set(existing);
  for (const t of parseDump(result.payload)) {
    if (t.name !== 'nat') continue;
    for (const c of t.chains) next.add(c);
    for (const c of t.deleted) next.delete(c);
  }
  return next;
}

function countNatRules(text: string): number {
  return parseDump(text)
    .filter((t) => t.name === 'nat')
    .reduce((n, t) => n + t.rules.length, 0);
}

describe('TestSyncProxyRulesRepeated', () => {
  const config = fakeProxierConfig('IPv4');
  const svc1 = makeServicePort({ ns: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', port: 80 });
  const svc2 = makeServicePort({
    ns: 'ns2',
    name: 'svc2',
    portName: 'p8080',
    clusterIP: '172.30.0.42',
    port: 8080,
  });
  const svc3 = makeServicePort({ ns: 'ns3', name: 'svc3', clusterIP: '172.30.0.43', port: 80 });
  const svc4 = makeServicePort({ ns: 'ns4', name: 'svc4', clusterIP: '172.30.0.44', port: 80 });
  const ep1 = [makeEndpoint('10.0.1.1', 80)] as const;
  const ep2 = [makeEndpoint('10.0.2.1', 8080)] as const;
  const ep4 = [makeEndpoint('10.0.4.1', 80)] as const;

  let existing = new Set<string>(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']);
  let rulesTotal = 0;

  function sync(
    state: RenderState,
    full: boolean,
    changed: readonly ServiceKey[] = [],
    apply = true,
  ): RenderResult {
    const result = renderRules(state, config, {
      full,
      changedServices: new Set(changed),
      existingNatChains: existing,
    });
    if (apply) existing = applyNatChains(existing, result);
    return result;
  }

  function expectStep(result: RenderResult, step: number, consistency: boolean): void {
    const name = `sync-repeated-step${String(step).padStart(2, '0')}.txt`;
    expect(sortIPTablesRules(testMarkSpelling(result.payload))).toBe(fixture(name));
    if (consistency) expect(checkRuleJumps(result.payload)).toEqual([]);
    expect(result.ruleCounts.nat.last).toBe(countNatRules(fixture(name)));
  }

  const withEps = (
    services: readonly ServicePort[],
    eps: readonly (readonly [ServicePort, readonly ReturnType<typeof makeEndpoint>[]])[],
  ) => makeState(services, eps);

  it('step 1: full sync of the initial state', () => {
    const r = sync(
      withEps(
        [svc1, svc2],
        [
          [svc1, ep1],
          [svc2, ep2],
        ],
      ),
      true,
    );
    expectStep(r, 1, true);
    rulesTotal = countNatRules(fixture('sync-repeated-step01.txt'));
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  it('step 2: adding a service writes only its chains', () => {
    const r = sync(
      withEps(
        [svc1, svc2, svc3],
        [
          [svc1, ep1],
          [svc2, ep2],
          [svc3, [makeEndpoint('10.0.3.1', 80)]],
        ],
      ),
      false,
      ['ns3/svc3'],
    );
    expectStep(r, 2, false);
    // 1 KUBE-SERVICES rule, 2 KUBE-SVC rules and 2 KUBE-SEP rules.
    rulesTotal += 5;
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  it('step 3: deleting a service deletes its chains although its slice remains', () => {
    const r = sync(
      withEps(
        [svc1, svc3],
        [
          [svc1, ep1],
          [svc2, ep2],
          [svc3, [makeEndpoint('10.0.3.1', 80)]],
        ],
      ),
      false,
      ['ns2/svc2'],
    );
    expectStep(r, 3, false);
    expect(r.deletedNatChains).toEqual(['KUBE-SEP-UHEGFW77JX3KXTOV', 'KUBE-SVC-2VJB64SDSIJUP5T6']);
    rulesTotal -= 5;
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  it('step 4: a service without endpoints only gets a filter REJECT', () => {
    const r = sync(
      withEps(
        [svc1, svc3, svc4],
        [
          [svc1, ep1],
          [svc3, [makeEndpoint('10.0.3.1', 80)]],
        ],
      ),
      false,
      ['ns4/svc4'],
    );
    expectStep(r, 4, false);
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  it('step 5: its endpoints appear', () => {
    const r = sync(
      withEps(
        [svc1, svc3, svc4],
        [
          [svc1, ep1],
          [svc3, [makeEndpoint('10.0.3.1', 80)]],
          [svc4, ep4],
        ],
      ),
      false,
      ['ns4/svc4'],
    );
    expectStep(r, 5, false);
    rulesTotal += 5;
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  it('step 6: changing an endpoint rewrites the SVC chain and deletes the old SEP', () => {
    const r = sync(
      withEps(
        [svc1, svc3, svc4],
        [
          [svc1, ep1],
          [svc3, [makeEndpoint('10.0.3.2', 80)]],
          [svc4, ep4],
        ],
      ),
      false,
      ['ns3/svc3'],
    );
    expectStep(r, 6, false);
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  const state7 = withEps(
    [svc1, svc3, svc4],
    [
      [svc1, ep1],
      [svc3, [makeEndpoint('10.0.3.2', 80), makeEndpoint('10.0.3.3', 80)]],
      [svc4, ep4],
    ],
  );

  it('step 7: adding an endpoint brings probabilities', () => {
    const r = sync(state7, false, ['ns3/svc3']);
    expectStep(r, 7, false);
    rulesTotal += 3;
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  it('step 8: a sync without changes writes no service chain', () => {
    const r = sync(state7, false, []);
    expectStep(r, 8, false);
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });

  const state9 = withEps(
    [svc1, svc3],
    [
      [svc1, ep1],
      [svc3, [makeEndpoint('10.0.3.2', 80), makeEndpoint('10.0.3.3', 80)]],
      [svc4, ep4],
    ],
  );

  it('step 9: the partial sync deleting svc4 deletes its chains (the restore fails upstream)', () => {
    // Upstream injects a rule from svc3's chain to svc4's endpoint so that this restore fails;
    // the table then keeps svc4's chains and the next sync is full.
    const r = sync(state9, false, ['ns4/svc4'], false);
    expect(r.deletedNatChains).toEqual(['KUBE-SEP-AYCN5HPXMIRJNJXU', 'KUBE-SVC-4SW47YFZTEDKD3PK']);
    expect(r.payload).not.toContain(':KUBE-SVC-X27LE4BHSL4DOUIK');
  });

  it('step 10: the full resync rewrites everything and deletes the leftovers', () => {
    const r = sync(state9, true);
    expectStep(r, 10, true);
    rulesTotal -= 5;
    expect(r.ruleCounts.nat.total).toBe(rulesTotal);
  });
});
