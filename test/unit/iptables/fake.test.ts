import { beforeEach, describe, expect, it } from 'vitest';
import { IptablesError, RestoreError } from '../../../pkg/iptables/errors.ts';
import { createFakeIptables, type FakeIptables } from '../../../pkg/iptables/fake.ts';
import { parseDump, rulesOf } from '../../../pkg/iptables/parse.ts';

const NOFLUSH = { flush: false, counters: true } as const;

/** Lines to payload text. */
const p = (...lines: string[]): string => `${lines.join('\n')}\n`;

// A kube-proxy-like full sync: two services, one with two endpoints.
const FULL = p(
  '*filter',
  ':KUBE-SERVICES - [0:0]',
  ':KUBE-FORWARD - [0:0]',
  '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
  'COMMIT',
  '*nat',
  ':KUBE-SERVICES - [0:0]',
  ':KUBE-MARK-MASQ - [0:0]',
  ':KUBE-SVC-A - [0:0]',
  ':KUBE-SEP-A1 - [0:0]',
  ':KUBE-SEP-A2 - [0:0]',
  ':KUBE-SVC-B - [0:0]',
  ':KUBE-SEP-B1 - [0:0]',
  '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
  '-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -d 10.96.0.1 -p tcp --dport 80 -j KUBE-SVC-A',
  '-A KUBE-SERVICES -m comment --comment "ns/b:p cluster IP" -d 10.96.0.2 -p tcp --dport 80 -j KUBE-SVC-B',
  '-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.0.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A1',
  '-A KUBE-SVC-A -m comment --comment "ns/a:p -> 10.0.0.2:80" -j KUBE-SEP-A2',
  '-A KUBE-SEP-A1 -m comment --comment ns/a:p -p tcp -j DNAT --to-destination 10.0.0.1:80',
  '-A KUBE-SEP-A2 -m comment --comment ns/a:p -p tcp -j DNAT --to-destination 10.0.0.2:80',
  '-A KUBE-SVC-B -j KUBE-SEP-B1',
  '-A KUBE-SEP-B1 -p tcp -j DNAT --to-destination 10.0.0.3:80',
  'COMMIT',
);

describe('fake iptables: restore with --noflush semantics', () => {
  let ipt: FakeIptables;
  beforeEach(async () => {
    ipt = createFakeIptables();
    await ipt.restoreAll(FULL, NOFLUSH);
  });

  it('starts with nat, filter and mangle and their built-in chains', () => {
    const fresh = createFakeIptables();
    expect(fresh.chainsOf('nat')).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
    expect(fresh.chainsOf('mangle')).toEqual(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
  });

  it('applies a full payload and saves text that parses back to the same rules', async () => {
    const dump = parseDump(await ipt.save('nat'));
    expect(rulesOf(dump, 'nat', 'KUBE-SVC-A')).toEqual(ipt.rulesOf('nat', 'KUBE-SVC-A'));
    expect(rulesOf(dump, 'nat', 'KUBE-SVC-A')[0]).toContain('ns/a:p -> 10.0.0.1:80');
    expect(ipt.chainsOf('nat')).toEqual([
      'PREROUTING',
      'INPUT',
      'OUTPUT',
      'POSTROUTING',
      'KUBE-MARK-MASQ',
      'KUBE-SEP-A1',
      'KUBE-SEP-A2',
      'KUBE-SEP-B1',
      'KUBE-SERVICES',
      'KUBE-SVC-A',
      'KUBE-SVC-B',
    ]);
    expect(await ipt.save('nat')).toContain(
      '-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -d 10.96.0.1',
    );
    expect(parseDump(await ipt.saveAll()).tables.map((t) => t.name)).toEqual(['filter', 'nat', 'mangle']);
  });

  it('a partial payload rewrites the chains it declares and leaves the others alone', async () => {
    await ipt.restoreAll(p('*nat', ':KUBE-SVC-A - [0:0]', '-A KUBE-SVC-A -j KUBE-SEP-A2', 'COMMIT'), NOFLUSH);
    expect(ipt.rulesOf('nat', 'KUBE-SVC-A')).toEqual([['-j', 'KUBE-SEP-A2']]);
    expect(ipt.rulesOf('nat', 'KUBE-SVC-B')).toEqual([['-j', 'KUBE-SEP-B1']]);
    expect(ipt.rulesOf('nat', 'KUBE-SERVICES')).toHaveLength(2);
    expect(ipt.rulesOf('filter', 'KUBE-FORWARD')).toHaveLength(1);
  });

  it('a declared chain with no rules is emptied; a stale chain is deleted with a chain line and -X', async () => {
    await ipt.restoreAll(
      p(
        '*nat',
        ':KUBE-SVC-A - [0:0]',
        ':KUBE-SEP-A1 - [0:0]',
        '-A KUBE-SVC-A -j KUBE-SEP-A2',
        '-X KUBE-SEP-A1',
        'COMMIT',
      ),
      NOFLUSH,
    );
    expect(ipt.rulesOf('nat', 'KUBE-SEP-A1')).toBeUndefined();
    expect(await ipt.chainExists('nat', 'KUBE-SEP-A1')).toBe(false);
  });

  it('a built-in chain line sets the policy and does not empty the chain', async () => {
    await ipt.ensureRule('append', 'filter', 'INPUT', ['-j', 'KUBE-SERVICES']);
    await ipt.restoreAll(p('*filter', ':INPUT DROP [0:0]', 'COMMIT'), NOFLUSH);
    expect(ipt.rulesOf('filter', 'INPUT')).toEqual([['-j', 'KUBE-SERVICES']]);
    expect(await ipt.save('filter')).toContain(':INPUT DROP [0:0]');
  });

  it('without --noflush the tables in the payload are emptied first, the others kept', async () => {
    await ipt.ensureRule('append', 'nat', 'PREROUTING', ['-j', 'KUBE-SERVICES']);
    await ipt.restoreAll(p('*nat', ':X - [0:0]', 'COMMIT'), { flush: true, counters: false });
    expect(ipt.chainsOf('nat')).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING', 'X']);
    expect(ipt.rulesOf('nat', 'PREROUTING')).toEqual([]);
    expect(ipt.rulesOf('filter', 'KUBE-FORWARD')).toHaveLength(1);
  });

  it('takes counters only with --counters', async () => {
    await ipt.restoreAll(p('*nat', ':KUBE-SVC-B - [7:8]', '-A KUBE-SVC-B -j KUBE-SEP-B1', 'COMMIT'), NOFLUSH);
    expect(await ipt.save('nat')).toContain(':KUBE-SVC-B - [7:8]');
    await ipt.restoreAll(p('*nat', ':KUBE-SVC-B - [7:8]', '-A KUBE-SVC-B -j KUBE-SEP-B1', 'COMMIT'), {
      flush: false,
      counters: false,
    });
    expect(await ipt.save('nat')).toContain(':KUBE-SVC-B - [0:0]');
  });

  it('restore(table) applies only that table of the payload', async () => {
    await ipt.restore(
      'filter',
      p('*nat', ':KUBE-SVC-A - [0:0]', 'COMMIT', '*filter', ':KUBE-FORWARD - [0:0]', 'COMMIT'),
      NOFLUSH,
    );
    expect(ipt.rulesOf('filter', 'KUBE-FORWARD')).toEqual([]);
    expect(ipt.rulesOf('nat', 'KUBE-SVC-A')).toHaveLength(2);
    expect(ipt.restores.at(-1)?.table).toBe('filter');
  });
});

describe('fake iptables: what the kernel refuses', () => {
  let ipt: FakeIptables;
  beforeEach(async () => {
    ipt = createFakeIptables();
    await ipt.restoreAll(FULL, NOFLUSH);
  });

  async function restoreError(payload: string): Promise<RestoreError> {
    try {
      await ipt.restoreAll(payload, NOFLUSH);
    } catch (e) {
      if (e instanceof RestoreError) return e;
      throw e;
    }
    throw new Error('restore unexpectedly succeeded');
  }

  it('-X of a chain still jumped to fails at its line and leaves the table as it was', async () => {
    const before = await ipt.save('nat');
    // Partial sync bug: SVC-A's chain is not rewritten, so it still jumps to SEP-A1.
    const e = await restoreError(
      p(
        '*nat',
        ':KUBE-SEP-A1 - [0:0]',
        ':KUBE-SVC-B - [0:0]',
        '-A KUBE-SVC-B -j KUBE-SEP-B1',
        '-X KUBE-SEP-A1',
        'COMMIT',
      ),
    );
    expect(e.line).toBe(5);
    expect(e.lineText).toBe('-X KUBE-SEP-A1');
    expect(e.message).toMatch(/referenced by rules in KUBE-SVC-A/);
    expect(await ipt.save('nat')).toBe(before);
  });

  it('a jump to a missing chain fails at its line', async () => {
    const e = await restoreError(
      p('*nat', ':KUBE-SVC-B - [0:0]', '-A KUBE-SVC-B -j KUBE-SEP-GONE', 'COMMIT'),
    );
    expect(e.line).toBe(3);
    expect(ipt.rulesOf('nat', 'KUBE-SVC-B')).toEqual([['-j', 'KUBE-SEP-B1']]);
  });

  it('each table commits on its own: an earlier table stays, the failing one and later ones do not change', async () => {
    const e = await restoreError(
      p(
        '*filter',
        ':KUBE-NEW - [0:0]',
        'COMMIT',
        '*nat',
        ':KUBE-SVC-B - [0:0]',
        '-A KUBE-SVC-B -j NOWHERE',
        'COMMIT',
        '*mangle',
        ':KUBE-M - [0:0]',
        'COMMIT',
      ),
    );
    expect(e.line).toBe(6);
    expect(await ipt.chainExists('filter', 'KUBE-NEW')).toBe(true);
    expect(ipt.rulesOf('nat', 'KUBE-SVC-B')).toEqual([['-j', 'KUBE-SEP-B1']]);
    expect(await ipt.chainExists('mangle', 'KUBE-M')).toBe(false);
  });

  it('a parse error in a later table still leaves the earlier tables applied', async () => {
    const e = await restoreError(
      p('*filter', ':KUBE-NEW - [0:0]', 'COMMIT', '*nat', '-A KUBE-UNDECLARED -j ACCEPT', 'COMMIT'),
    );
    expect(e.line).toBe(5);
    expect(await ipt.chainExists('filter', 'KUBE-NEW')).toBe(true);
  });

  it.each([
    [
      'DNAT outside nat',
      p('*filter', ':X - [0:0]', '-A X -j DNAT --to-destination 1.2.3.4', 'COMMIT'),
      3,
      /only valid in nat/,
    ],
    ['deleting a built-in chain', p('*nat', '-X PREROUTING', 'COMMIT'), 2, /built-in/],
    ['creating an existing chain', p('*nat', '-N KUBE-SVC-A', 'COMMIT'), 2, /already exists/],
    ['deleting a missing rule', p('*nat', '-D OUTPUT -j ACCEPT', 'COMMIT'), 2, /matching rule/],
    ['an unknown table', p('*bogus', 'COMMIT'), 1, /Table does not exist/],
    ['a jump to a built-in chain', p('*nat', ':X - [0:0]', '-A X -j PREROUTING', 'COMMIT'), 3, /built-in/],
  ])('refuses %s', async (_name, payload, line, reason) => {
    const e = await restoreError(payload);
    expect(e.line).toBe(line);
    expect(e.message).toMatch(reason);
  });

  it('failNextRestore fails one restore without changes', async () => {
    ipt.failNextRestore('iptables-restore: line 1 failed');
    await expect(ipt.restoreAll(p('*nat', ':X - [0:0]', 'COMMIT'), NOFLUSH)).rejects.toBeInstanceOf(
      RestoreError,
    );
    expect(await ipt.chainExists('nat', 'X')).toBe(false);
    await ipt.restoreAll(p('*nat', ':X - [0:0]', 'COMMIT'), NOFLUSH);
    expect(await ipt.chainExists('nat', 'X')).toBe(true);
    expect(ipt.restores).toHaveLength(3);
  });
});

describe('fake iptables: single commands', () => {
  it('ensureChain and ensureRule report whether the thing existed', async () => {
    const ipt = createFakeIptables();
    expect(await ipt.ensureChain('nat', 'KUBE-SERVICES')).toBe(false);
    expect(await ipt.ensureChain('nat', 'KUBE-SERVICES')).toBe(true);
    const jump = ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'];
    expect(await ipt.ensureRule('append', 'nat', 'PREROUTING', ['-j', 'ACCEPT'])).toBe(false);
    expect(await ipt.ensureRule('prepend', 'nat', 'PREROUTING', jump)).toBe(false);
    expect(await ipt.ensureRule('prepend', 'nat', 'PREROUTING', jump)).toBe(true);
    expect(ipt.rulesOf('nat', 'PREROUTING')).toEqual([jump, ['-j', 'ACCEPT']]);
    expect(await ipt.save('nat')).toContain(
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    );
  });

  it('ensureRule fails for a missing chain or a jump to a missing chain', async () => {
    const ipt = createFakeIptables();
    await expect(ipt.ensureRule('append', 'nat', 'NOPE', ['-j', 'ACCEPT'])).rejects.toMatchObject({
      code: 'not-found',
    });
    await expect(ipt.ensureRule('append', 'nat', 'OUTPUT', ['-j', 'NOPE'])).rejects.toMatchObject({
      code: 'not-found',
    });
  });

  it('deleteRule and deleteChain are quiet about missing things, not about referenced chains', async () => {
    const ipt = createFakeIptables();
    await ipt.deleteRule('nat', 'OUTPUT', ['-j', 'ACCEPT']);
    await ipt.deleteRule('nat', 'NOPE', ['-j', 'ACCEPT']);
    await ipt.deleteChain('nat', 'NOPE');
    await ipt.ensureChain('nat', 'KUBE-SERVICES');
    await ipt.ensureRule('append', 'nat', 'KUBE-SERVICES', ['-j', 'RETURN']);
    await ipt.ensureRule('append', 'nat', 'OUTPUT', ['-j', 'KUBE-SERVICES']);
    const err = await ipt.deleteChain('nat', 'KUBE-SERVICES').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IptablesError);
    expect((err as IptablesError).code).toBe('exec-failed');
    await ipt.deleteRule('nat', 'OUTPUT', ['-j', 'KUBE-SERVICES']);
    expect(ipt.rulesOf('nat', 'OUTPUT')).toEqual([]);
    await ipt.deleteChain('nat', 'KUBE-SERVICES');
    expect(await ipt.chainExists('nat', 'KUBE-SERVICES')).toBe(false);
  });

  it('flushChain empties a chain and reports a missing one as not-found', async () => {
    const ipt = createFakeIptables();
    await ipt.ensureRule('append', 'filter', 'INPUT', ['-j', 'ACCEPT']);
    await ipt.flushChain('filter', 'INPUT');
    expect(ipt.rulesOf('filter', 'INPUT')).toEqual([]);
    await expect(ipt.flushChain('filter', 'NOPE')).rejects.toMatchObject({ code: 'not-found' });
  });

  it('reports version and --random-fully support', async () => {
    expect(await createFakeIptables().hasRandomFully()).toBe(true);
    const old = createFakeIptables({ version: '1.6.1' });
    expect(await old.version()).toBe('1.6.1');
    expect(await old.hasRandomFully()).toBe(false);
    old.setHasRandomFully(true);
    expect(await old.hasRandomFully()).toBe(true);
  });
});

describe('fake iptables: commands on undeclared chains', () => {
  const NOFLUSH = { flush: false, counters: true } as const;

  it('edits an existing chain the payload does not declare, keeping its other rules', async () => {
    const ipt = createFakeIptables();
    await ipt.restoreAll(
      '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -d 10.0.0.1 -j ACCEPT\n-A KUBE-SERVICES -d 10.0.0.2 -j ACCEPT\nCOMMIT\n',
      NOFLUSH,
    );
    await ipt.restoreAll(
      '*nat\n-D KUBE-SERVICES -d 10.0.0.1 -j ACCEPT\n-I KUBE-SERVICES 1 -d 10.0.0.3 -j ACCEPT\nCOMMIT\n',
      NOFLUSH,
    );
    expect(ipt.rulesOf('nat', 'KUBE-SERVICES')?.map((r) => r.join(' '))).toEqual([
      '-d 10.0.0.3 -j ACCEPT',
      '-d 10.0.0.2 -j ACCEPT',
    ]);
  });

  it('refuses a rule for a chain that does not exist, as the kernel does', async () => {
    const ipt = createFakeIptables();
    await expect(ipt.restoreAll('*nat\n-A NOPE -j ACCEPT\nCOMMIT\n', NOFLUSH)).rejects.toBeInstanceOf(
      IptablesError,
    );
  });
});
