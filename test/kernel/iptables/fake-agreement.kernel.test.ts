/**
 * The fake must refuse what the kernel refuses (the proxier's partial-sync tests rely on it):
 * the same restore sequences run on the fake and on both real backends, and must end the same
 * way: which restores fail, and which chains hold how many rules afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RestoreError } from '../../../pkg/iptables/errors.ts';
import { createFakeIptables } from '../../../pkg/iptables/fake.ts';
import { parseDump } from '../../../pkg/iptables/parse.ts';
import { createIptablesRunner, type Iptables } from '../../../pkg/iptables/runner.ts';
import { createNetns, deleteNetns, inNetns } from '../../support/netns.ts';

const NOFLUSH = { flush: false, counters: true } as const;
const p = (...lines: string[]): string => `${lines.join('\n')}\n`;

const BASE = p(
  '*nat',
  ':KUBE-SERVICES - [0:0]',
  ':KUBE-SVC-A - [0:0]',
  ':KUBE-SEP-A1 - [0:0]',
  ':KUBE-SEP-A2 - [0:0]',
  '-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A',
  '-A KUBE-SVC-A -m statistic --mode random --probability 0.5 -j KUBE-SEP-A1',
  '-A KUBE-SVC-A -j KUBE-SEP-A2',
  '-A KUBE-SEP-A1 -p tcp -j DNAT --to-destination 10.1.0.1:80',
  '-A KUBE-SEP-A2 -p tcp -j DNAT --to-destination 10.1.0.2:80',
  'COMMIT',
);

const SCENARIOS: [string, string[]][] = [
  [
    'partial sync rewriting one chain',
    [BASE, p('*nat', ':KUBE-SVC-A - [0:0]', '-A KUBE-SVC-A -j KUBE-SEP-A2', 'COMMIT')],
  ],
  [
    'stale endpoint removed correctly',
    [
      BASE,
      p(
        '*nat',
        ':KUBE-SVC-A - [0:0]',
        ':KUBE-SEP-A1 - [0:0]',
        '-A KUBE-SVC-A -j KUBE-SEP-A2',
        '-X KUBE-SEP-A1',
        'COMMIT',
      ),
    ],
  ],
  [
    'stale endpoint deleted while still referenced',
    [BASE, p('*nat', ':KUBE-SEP-A1 - [0:0]', '-X KUBE-SEP-A1', 'COMMIT')],
  ],
  [
    'jump to a chain that is not there',
    [BASE, p('*nat', ':KUBE-SVC-A - [0:0]', '-A KUBE-SVC-A -j KUBE-SEP-A3', 'COMMIT')],
  ],
  [
    'failing nat table after a good filter table',
    [
      BASE,
      p(
        '*filter',
        ':KUBE-FORWARD - [0:0]',
        '-A KUBE-FORWARD -j ACCEPT',
        'COMMIT',
        '*nat',
        ':KUBE-SVC-A - [0:0]',
        '-A KUBE-SVC-A -j NOPE',
        'COMMIT',
      ),
    ],
  ],
  [
    'DNAT in the filter table',
    [p('*filter', ':KUBE-X - [0:0]', '-A KUBE-X -j DNAT --to-destination 10.1.0.1:80', 'COMMIT')],
  ],
  [
    'empty declared chain deleted',
    [
      BASE,
      p('*nat', ':KUBE-EMPTY - [0:0]', 'COMMIT'),
      p('*nat', ':KUBE-EMPTY - [0:0]', '-X KUBE-EMPTY', 'COMMIT'),
    ],
  ],
];

interface Outcome {
  readonly results: string[];
  readonly chains: Record<string, number>;
}

/** Runs the payloads in order; records ok/failed per restore and the rule count per KUBE chain. */
async function play(ipt: Iptables, payloads: readonly string[]): Promise<Outcome> {
  const results: string[] = [];
  for (const payload of payloads) {
    try {
      await ipt.restoreAll(payload, NOFLUSH);
      results.push('ok');
    } catch (e) {
      if (!(e instanceof RestoreError)) throw e;
      results.push('failed');
    }
  }
  const chains: Record<string, number> = {};
  for (const table of parseDump(await ipt.saveAll()).tables) {
    for (const c of table.chains) if (c.name.startsWith('KUBE-')) chains[`${table.name}/${c.name}`] = 0;
    for (const r of table.rules) {
      const key = `${table.name}/${r.chain}`;
      if (key in chains) chains[key] = (chains[key] ?? 0) + 1;
    }
  }
  return { results, chains };
}

describe.each(['legacy', 'nft'] as const)('fake and %s kernel agree', (backend) => {
  const made: string[] = [];
  let n = 0;
  beforeAll(() => {
    n = 0;
  });
  afterAll(async () => {
    for (const ns of made.splice(0)) await deleteNetns(ns);
  });

  it.each(SCENARIOS)('%s', async (_name, payloads) => {
    const ns = await createNetns(`agr${backend[0]}${n++}`);
    made.push(ns);
    const kernel = await play(
      createIptablesRunner({ family: 'IPv4', backend, execPrefix: inNetns(ns, []) }),
      payloads,
    );
    const fake = await play(createFakeIptables({ backend }), payloads);
    expect(fake).toEqual(kernel);
  });
});
