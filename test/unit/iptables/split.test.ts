import { describe, expect, it } from 'vitest';
import { createFakeIptables } from '../../../pkg/iptables/fake.ts';
import { splitRestorePayload } from '../../../pkg/iptables/split.ts';
import {
  clusterChains,
  clusterPayload,
  endpointIP,
  scrambledName,
  sepChain,
  serviceIP,
  svcChain,
} from '../../support/cluster-payload.ts';

/**
 * An incremental sync's payload (proxier/incremental.ts's shape) over a clusterPayload cluster:
 * each listed Service gets a new SVC chain and new endpoints; KUBE-SERVICES, which the payload
 * does not declare, is edited rule by rule (`-D` the old jump, `-I` the new one); the old chains
 * are flushed and deleted.
 */
function replaceServicesPayload(
  services: readonly number[],
  perService: number,
): { payload: string; stale: string[] } {
  const decls: string[] = [];
  const edits: string[] = [];
  const rules: string[] = [];
  const stale: string[] = [];
  const jump = (i: number, chain: string) =>
    `KUBE-SERVICES -m comment --comment "ns/svc-${i}:http cluster IP" -m tcp -p tcp -d ${serviceIP(i)} --dport 80 -j ${chain}`;
  for (const i of services) {
    const svc = scrambledName('KUBE-SVC-', 100_000 + i);
    decls.push(`:${svc} - [0:0]`);
    edits.push(
      `-D ${jump(i, svcChain(i))}`,
      `-I ${jump(i, svc).replace('KUBE-SERVICES ', 'KUBE-SERVICES 1 ')}`,
    );
    stale.push(svcChain(i));
    for (let j = 0; j < perService; j++) {
      const e = 200_000 + i * perService + j;
      const sep = sepChain(e);
      decls.push(`:${sep} - [0:0]`);
      rules.push(
        `-A ${svc} -m statistic --mode random --probability ${(1 / (perService - j)).toFixed(10)} -j ${sep}`,
      );
      rules.push(
        `-A ${sep} -s ${endpointIP(e)} -j KUBE-MARK-MASQ`,
        `-A ${sep} -m tcp -p tcp -j DNAT --to-destination ${endpointIP(e)}:8080`,
      );
      stale.push(sepChain(i * perService + j));
    }
  }
  const payload = [
    '*nat',
    ...decls,
    ...stale.map((c) => `:${c} - [0:0]`),
    ...edits,
    ...rules,
    ...stale.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
  return { payload, stale };
}

const NOFLUSH = { flush: false, counters: true } as const;
const SMALL = { sectionCommands: 50, minCommands: 100 };

interface Section {
  readonly table: string;
  readonly lines: string[];
}

function sectionsOf(payload: string): Section[] {
  const out: Section[] = [];
  let cur: Section | undefined;
  for (const line of payload.split('\n')) {
    if (line.startsWith('*')) cur = { table: line.slice(1), lines: [] };
    else if (line === 'COMMIT') {
      if (cur) out.push(cur);
      cur = undefined;
    } else if (line !== '') cur?.lines.push(line);
  }
  return out;
}

const sectionText = (s: Section): string => `*${s.table}\n${[...s.lines, 'COMMIT'].join('\n')}\n`;
const chainOf = (line: string): string =>
  (line.startsWith(':') ? line.slice(1).split(' ')[0] : line.split(' ')[1]) as string;

describe('splitRestorePayload', () => {
  it('leaves a table with fewer commands than minCommands whole', () => {
    const payload = clusterPayload({ services: 3, endpointsPerService: 2 });
    expect(splitRestorePayload(payload, SMALL)).toBe(payload);
  });

  it('keeps every line, each chain in one section, and jump targets no later than their jumps', () => {
    const old = clusterChains({ services: 5, endpointsPerService: 2, endpointBase: 90_000 }).filter((c) =>
      c.startsWith('KUBE-SEP-'),
    );
    const o = { services: 40, endpointsPerService: 3, staleChains: old, builtinJump: true };
    const payload = clusterPayload(o);
    const split = splitRestorePayload(payload, SMALL);
    const sections = sectionsOf(split);
    const nat = sections.filter((s) => s.table === 'nat');
    expect(nat.length).toBeGreaterThan(5);
    // The filter table is small: one section, unchanged.
    expect(sections.filter((s) => s.table === 'filter')).toHaveLength(1);

    const given = sectionsOf(payload).flatMap((s) => s.lines);
    expect([...sections.flatMap((s) => s.lines)].sort()).toEqual([...given].sort());

    const sectionOfChain = new Map<string, number>();
    nat.forEach((s, i) => {
      for (const line of s.lines) {
        if (line.startsWith('-I PREROUTING') || line.startsWith('-X ')) continue;
        const c = chainOf(line);
        const seen = sectionOfChain.get(c);
        if (seen !== undefined) expect(seen, `${c} spans sections`).toBe(i);
        sectionOfChain.set(c, i);
      }
    });
    for (const [i, s] of nat.entries()) {
      for (const line of s.lines) {
        const target = / -j (KUBE-[A-Z0-9-]+)/.exec(line)?.[1];
        if (target === undefined) continue;
        expect(sectionOfChain.get(target), `${line} jumps ahead`).toBeLessThanOrEqual(i);
      }
    }
    // SEP chains, then SVC chains, then KUBE-SERVICES: sections never go back down.
    const sectionsOfKind = (prefix: string): number[] =>
      [...sectionOfChain].filter(([c]) => c.startsWith(prefix) && !old.includes(c)).map(([, i]) => i);
    expect(Math.max(...sectionsOfKind('KUBE-SEP-'))).toBeLessThanOrEqual(
      Math.min(...sectionsOfKind('KUBE-SVC-')),
    );
    expect(Math.max(...sectionsOfKind('KUBE-SVC-'))).toBeLessThanOrEqual(
      sectionOfChain.get('KUBE-SERVICES') as number,
    );
    expect(sectionOfChain.get(sepChain(0))).toBeLessThan(sectionOfChain.get(svcChain(39)) as number);
    // Deleted chains are flushed and deleted in the last section, with the built-in jump.
    const last = nat[nat.length - 1] as Section;
    for (const c of old) {
      expect(last.lines).toContain(`:${c} - [0:0]`);
      expect(last.lines).toContain(`-X ${c}`);
    }
    expect(last.lines.some((l) => l.startsWith('-I PREROUTING 1 '))).toBe(true);
  });

  it('ends in the state the whole payload makes, and every state between sections is whole', async () => {
    const first = { services: 30, endpointsPerService: 3 };
    const old = clusterChains(first);
    // The next sync: every Service got new endpoints, so every old SEP chain goes (and, with
    // scrambled names, the SVC chains stay and are rewritten).
    const next = {
      services: 30,
      endpointsPerService: 3,
      endpointBase: 50_000,
      staleChains: old.filter((c) => c.startsWith('KUBE-SEP-')),
      builtinJump: true,
    };
    const whole = createFakeIptables({ backend: 'nft' });
    const stepwise = createFakeIptables({ backend: 'nft' });
    for (const f of [whole, stepwise]) await f.restoreAll(clusterPayload(first), NOFLUSH);
    const oldSepRules = new Map(next.staleChains.map((c) => [c, whole.rulesOf('nat', c)]));

    await whole.restoreAll(clusterPayload(next), NOFLUSH);
    const split = splitRestorePayload(clusterPayload(next), SMALL);
    const sections = sectionsOf(split);
    expect(sections.length).toBeGreaterThan(4);
    for (const [i, s] of sections.entries()) {
      // The fake refuses a jump to a missing chain and a -X of a chain still jumped to.
      await stepwise.restoreAll(sectionText(s), NOFLUSH);
      if (i === sections.length - 1) break;
      // Until the last section, chains on their way out keep their rules: a packet that still
      // reaches one (through a chain not yet rewritten) is still DNATed.
      for (const [c, rules] of oldSepRules) expect(stepwise.rulesOf('nat', c)).toEqual(rules);
    }
    expect(await stepwise.saveAll()).toBe(await whole.saveAll());
    for (const c of next.staleChains) expect(stepwise.rulesOf('nat', c)).toBeUndefined();
  });

  it('splits payload parts (blocks of lines) exactly as their text', () => {
    const old = clusterChains({ services: 5, endpointsPerService: 2, endpointBase: 90_000 }).filter((c) =>
      c.startsWith('KUBE-SEP-'),
    );
    const text = clusterPayload({
      services: 40,
      endpointsPerService: 3,
      staleChains: old,
      builtinJump: true,
    });
    const lines = text.slice(0, -1).split('\n');
    // Blocks of 1 to 7 lines, as a renderer's LineBuffer holds them.
    const parts: string[] = [];
    for (let i = 0, k = 0; i < lines.length; k++) {
      const n = 1 + ((k * 5) % 7);
      parts.push(lines.slice(i, i + n).join('\n'));
      i += n;
    }
    parts.push('');
    expect(parts.join('\n')).toBe(text);
    const split = splitRestorePayload(parts, SMALL);
    expect(split).toBe(splitRestorePayload(text, SMALL));
    expect(split).not.toBe(text);
    // A payload without its final newline, or with an empty line, is left whole.
    expect(splitRestorePayload(text.slice(0, -1), SMALL)).toBe(text.slice(0, -1));
    expect(splitRestorePayload(['*nat', '', ...parts], SMALL)).toBe(['*nat', '', ...parts].join('\n'));
  });

  it('splits an incremental payload (edits of an undeclared KUBE-SERVICES) without a broken state between sections', async () => {
    const first = { services: 30, endpointsPerService: 3 };
    const { payload, stale } = replaceServicesPayload([0, 3, 4, 7, 9, 12, 15, 20, 21, 29], 3);
    const whole = createFakeIptables({ backend: 'nft' });
    const stepwise = createFakeIptables({ backend: 'nft' });
    for (const f of [whole, stepwise]) await f.restoreAll(clusterPayload(first), NOFLUSH);
    const before = new Map(stale.map((c) => [c, whole.rulesOf('nat', c)]));
    const servicesBefore = whole.rulesOf('nat', 'KUBE-SERVICES');
    await whole.restoreAll(payload, NOFLUSH);

    const sections = sectionsOf(splitRestorePayload(payload, SMALL));
    expect(sections.length).toBeGreaterThan(2);
    for (const [i, s] of sections.entries()) {
      await stepwise.restoreAll(sectionText(s), NOFLUSH);
      if (i === sections.length - 1) break;
      // Until the last section, the old jumps and the chains they lead to are untouched.
      expect(stepwise.rulesOf('nat', 'KUBE-SERVICES')).toEqual(servicesBefore);
      for (const [c, rules] of before) expect(stepwise.rulesOf('nat', c)).toEqual(rules);
    }
    // The edits and the deletions are all in the last section.
    const last = sections[sections.length - 1] as Section;
    expect(
      last.lines.filter((l) => l.startsWith('-D ') || l.startsWith('-I ') || l.startsWith('-X ')),
    ).toHaveLength(
      payload.split('\n').filter((l) => l.startsWith('-D ') || l.startsWith('-I ') || l.startsWith('-X '))
        .length,
    );
    expect(await stepwise.saveAll()).toBe(await whole.saveAll());
    for (const c of stale) expect(stepwise.rulesOf('nat', c)).toBeUndefined();
  });

  it('leaves a payload it cannot order whole', () => {
    const cycle = [
      '*nat',
      ':A - [0:0]',
      ':B - [0:0]',
      ...Array.from({ length: 60 }, (_, i) => `-A A -s 10.0.0.${i} -j B`),
      ...Array.from({ length: 60 }, (_, i) => `-A B -s 10.0.1.${i} -j A`),
      'COMMIT',
      '',
    ].join('\n');
    expect(splitRestorePayload(cycle, SMALL)).toBe(cycle);
    const withNew = clusterPayload({ services: 40, endpointsPerService: 3 }).replace(
      ':KUBE-NODEPORTS - [0:0]',
      ':KUBE-NODEPORTS - [0:0]\n-N KUBE-OTHER',
    );
    expect(splitRestorePayload(withNew, SMALL)).toBe(withNew);
    const counters = clusterPayload({ services: 40, endpointsPerService: 3 }).replace(
      '-A KUBE-MARK-MASQ',
      '[1:2] -A KUBE-MARK-MASQ',
    );
    expect(splitRestorePayload(counters, SMALL)).toBe(counters);
  });

  it('uses defaults that leave partial-sync-sized payloads whole and split full syncs', () => {
    const partial = clusterPayload({ services: 100, endpointsPerService: 5 });
    expect(splitRestorePayload(partial)).toBe(partial);
    const full = clusterPayload({ services: 1_000, endpointsPerService: 5 });
    expect(sectionsOf(splitRestorePayload(full)).length).toBeGreaterThan(5);
  });
});
