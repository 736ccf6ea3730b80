import { describe, expect, it } from 'vitest';
import { IptablesError, RestoreError } from '../../../pkg/iptables/errors.ts';
import type { Exec, ExecOptions, ExecResult } from '../../../pkg/iptables/exec.ts';
import { binariesFor, classifyFailure, createIptablesRunner } from '../../../pkg/iptables/runner.ts';
import { splitRestorePayload } from '../../../pkg/iptables/split.ts';
import {
  compareVersions,
  iptablesWaitFlags,
  parseVersion,
  restoreWaitFlags,
} from '../../../pkg/iptables/version.ts';
import { clusterPayload } from '../../support/cluster-payload.ts';

interface Call {
  readonly argv: readonly string[];
  readonly stdin: string | undefined;
}

/** An Exec that records calls and answers from a script keyed by the binary and first flag. */
function scripted(answer: (argv: readonly string[], stdin?: string) => Partial<ExecResult>): {
  exec: Exec;
  calls: Call[];
} {
  const calls: Call[] = [];
  const exec: Exec = async (argv, opts?: ExecOptions) => {
    const input = opts?.stdin;
    const stdin = input === undefined || typeof input === 'string' ? input : [...input].join('');
    calls.push({ argv, stdin });
    return { code: 0, signal: null, stdout: '', stderr: '', ...answer(argv, stdin) };
  };
  return { exec, calls };
}

const version = (v: string) => (argv: readonly string[]) =>
  argv.includes('--version') ? { stdout: `iptables v${v} (legacy)\n` } : {};

describe('versions and wait flags', () => {
  it('parses and compares versions', () => {
    expect(parseVersion('iptables v1.8.9 (nf_tables)')).toBe('1.8.9');
    expect(parseVersion('garbage')).toBeUndefined();
    expect(compareVersions('1.10.0', '1.9.9')).toBeGreaterThan(0);
    expect(compareVersions('1.6', '1.6.0')).toBe(0);
  });

  it.each([
    ['1.8.9', ['-w', '5', '-W', '100000']],
    ['1.6.1', ['-w', '5', '-W', '100000']],
    ['1.6.0', ['-w', '5']],
    ['1.4.22', ['-w', '5']],
    ['1.4.21', ['-w']],
    ['1.4.19', []],
  ])('iptables %s waits with %j', (v, flags) => {
    expect(iptablesWaitFlags(v)).toEqual(flags);
  });

  it('restore waits with -w 5 -W 100000 from 1.6.2, a bare -w before only if restore knows --version', () => {
    expect(restoreWaitFlags('1.6.2', false)).toEqual(['-w', '5', '-W', '100000']);
    expect(restoreWaitFlags('1.6.1', true)).toEqual(['-w']);
    expect(restoreWaitFlags('1.6.1', false)).toEqual([]);
  });
});

describe('binariesFor', () => {
  it('names the binaries of each family and backend', () => {
    expect(binariesFor('IPv4', 'legacy')).toEqual({
      iptables: 'iptables-legacy',
      restore: 'iptables-legacy-restore',
      save: 'iptables-legacy-save',
    });
    expect(binariesFor('IPv6', 'nft')).toEqual({
      iptables: 'ip6tables-nft',
      restore: 'ip6tables-nft-restore',
      save: 'ip6tables-nft-save',
    });
  });
});

describe('createIptablesRunner command lines', () => {
  it('restoreAll: wait flags, --noflush --counters, payload on stdin, exec prefix, version detected once', async () => {
    const { exec, calls } = scripted(version('1.8.9'));
    const ipt = createIptablesRunner({
      family: 'IPv4',
      backend: 'nft',
      execPrefix: ['ip', 'netns', 'exec', 'x'],
      exec,
    });
    await ipt.restoreAll('*nat\nCOMMIT\n', { flush: false, counters: true });
    await ipt.restore('nat', '*nat\nCOMMIT\n', { flush: true, counters: false });
    expect(calls.map((c) => c.argv.join(' '))).toEqual([
      'ip netns exec x iptables-nft --version',
      'ip netns exec x iptables-nft-restore -w 5 -W 100000 --noflush --counters',
      'ip netns exec x iptables-nft-restore -w 5 -W 100000 -T nat',
    ]);
    expect(calls[1]!.stdin).toBe('*nat\nCOMMIT\n');
  });

  it('nft: a big --noflush payload goes in split into sections; legacy and flush restores never', async () => {
    const payload = clusterPayload({ services: 1_000, endpointsPerService: 5 });
    const commits = (text: string | undefined): number =>
      text?.split('\n').filter((l) => l === 'COMMIT').length ?? 0;
    const stdinOf = async (backend: 'nft' | 'legacy', flush: boolean): Promise<string | undefined> => {
      const { exec, calls } = scripted(version('1.8.9'));
      await createIptablesRunner({ family: 'IPv4', backend, exec }).restoreAll(payload, {
        flush,
        counters: true,
      });
      return calls.at(-1)?.stdin;
    };
    expect(commits(payload)).toBe(2);
    const nft = await stdinOf('nft', false);
    expect(commits(nft)).toBeGreaterThan(5);
    expect(nft).toBe(splitRestorePayload(payload));
    expect(await stdinOf('nft', true)).toBe(payload);
    expect(await stdinOf('legacy', false)).toBe(payload);
  });

  it('old iptables: restore gets -w only when iptables-restore --version answers', async () => {
    const { exec, calls } = scripted((argv) =>
      argv[0] === 'ip6tables-legacy-restore' && argv.includes('--version')
        ? { code: 2, stdout: '' }
        : version('1.6.0')(argv),
    );
    const ipt = createIptablesRunner({ family: 'IPv6', backend: 'legacy', exec });
    await ipt.restoreAll('', { flush: false, counters: false });
    expect(calls.at(-1)!.argv).toEqual(['ip6tables-legacy-restore', '--noflush']);
    await ipt.ensureChain('nat', 'X');
    expect(calls.at(-1)!.argv).toEqual(['ip6tables-legacy', '-w', '5', '-N', 'X', '-t', 'nat']);
  });

  it('assumes 1.4.11 when the version cannot be read', async () => {
    const { exec } = scripted(() => ({ stdout: 'no version here' }));
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'legacy', exec });
    expect(await ipt.version()).toBe('1.4.11');
    expect(await ipt.hasRandomFully()).toBe(false);
  });

  it('a failed restore becomes a RestoreError carrying the rejected line', async () => {
    const payload = '*nat\n:A - [0:0]\n-A A -j NOPE\nCOMMIT\n';
    const { exec } = scripted((argv) =>
      argv[0] === 'iptables-legacy-restore'
        ? { code: 2, stderr: "Couldn't load target `NOPE'\nError occurred at line: 3\n" }
        : version('1.8.9')(argv),
    );
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'legacy', exec });
    const err = await ipt.restoreAll(payload, { flush: false, counters: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err).toMatchObject({ line: 3, lineText: '-A A -j NOPE', exitCode: 2 });
  });

  it('streams payload parts: legacy gets their text in chunks, nft their text split', async () => {
    const payload = clusterPayload({ services: 1_000, endpointsPerService: 5 });
    const parts = payload.split('\n');
    for (const backend of ['legacy', 'nft'] as const) {
      const fed: string[] = [];
      const exec: Exec = async (argv, opts) => {
        if (typeof opts?.stdin === 'object') for (const piece of opts.stdin) fed.push(piece);
        return {
          code: 0,
          signal: null,
          stdout: argv.includes('--version') ? 'iptables v1.8.9\n' : '',
          stderr: '',
        };
      };
      await createIptablesRunner({ family: 'IPv4', backend, exec }).restoreAll(parts, {
        flush: false,
        counters: true,
      });
      expect(fed.length).toBeGreaterThan(5);
      expect(fed.join('')).toBe(backend === 'nft' ? splitRestorePayload(payload) : payload);
    }
  });

  it('nft: a failed split restore names the line of the text it was fed', async () => {
    const payload = clusterPayload({ services: 1_000, endpointsPerService: 5 });
    const fed = splitRestorePayload(payload);
    const lineNo = 5_000;
    const { exec } = scripted((argv) =>
      argv[0] === 'iptables-nft-restore'
        ? { code: 1, stderr: `iptables-nft-restore: line ${lineNo} failed\n` }
        : version('1.8.9')(argv),
    );
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'nft', exec });
    const err = await ipt.restoreAll(payload, { flush: false, counters: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err).toMatchObject({ line: lineNo, lineText: fed.split('\n')[lineNo - 1] });
  });

  it('a lock timeout on restore is lock-timeout, not a payload problem', async () => {
    const { exec } = scripted((argv) =>
      argv[0] === 'iptables-legacy-restore'
        ? {
            code: 4,
            stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n',
          }
        : version('1.8.9')(argv),
    );
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'legacy', exec });
    const err = await ipt.restoreAll('', { flush: false, counters: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IptablesError);
    expect(err).not.toBeInstanceOf(RestoreError);
    expect((err as IptablesError).code).toBe('lock-timeout');
  });

  it('ensureRule checks with -C and adds only when absent; position picks -I or -A', async () => {
    let present = false;
    const { exec, calls } = scripted((argv) => {
      if (argv.includes('-C')) return { code: present ? 0 : 1 };
      if (argv.includes('-I')) present = true;
      return version('1.8.9')(argv);
    });
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'legacy', exec });
    const args = ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'];
    expect(await ipt.ensureRule('prepend', 'nat', 'PREROUTING', args)).toBe(false);
    expect(await ipt.ensureRule('prepend', 'nat', 'PREROUTING', args)).toBe(true);
    expect(calls.slice(1).map((c) => c.argv.slice(0, 9).join(' '))).toEqual([
      'iptables-legacy -w 5 -W 100000 -C PREROUTING -t nat',
      'iptables-legacy -w 5 -W 100000 -I PREROUTING -t nat',
      'iptables-legacy -w 5 -W 100000 -C PREROUTING -t nat',
    ]);
    // The comment travels as one argv word, no shell quoting.
    expect(calls[1]!.argv).toContain('kubernetes service portals');
  });

  it('ensureChain: exit 1 "already exists" means it existed; other failures throw', async () => {
    let exists = false;
    const { exec } = scripted((argv) => {
      if (argv.includes('-N')) {
        if (argv.includes('BAD')) return { code: 2, stderr: 'iptables v1.8.9: chain name too long\n' };
        if (exists) return { code: 1, stderr: 'iptables: Chain already exists.\n' };
        exists = true;
      }
      return version('1.8.9')(argv);
    });
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'legacy', exec });
    expect(await ipt.ensureChain('nat', 'KUBE-SERVICES')).toBe(false);
    expect(await ipt.ensureChain('nat', 'KUBE-SERVICES')).toBe(true);
    await expect(ipt.ensureChain('nat', 'BAD')).rejects.toMatchObject({ code: 'exec-failed', exitCode: 2 });
  });

  it('a binary that cannot start is exec-failed', async () => {
    const exec: Exec = async () => {
      throw Object.assign(new Error('spawn iptables-legacy ENOENT'), { code: 'ENOENT' });
    };
    const ipt = createIptablesRunner({ family: 'IPv4', backend: 'legacy', exec });
    await expect(ipt.save('nat')).rejects.toMatchObject({ code: 'exec-failed' });
  });

  it('classifies failures by exit status and message', () => {
    expect(classifyFailure({ code: 1, stderr: 'iptables: No chain/target/match by that name.' })).toBe(
      'not-found',
    );
    expect(
      classifyFailure({
        code: 1,
        stderr: "iptables v1.8.9 (nf_tables): chain `X' in table `nat' is incompatible",
      }),
    ).toBe('exec-failed');
    expect(classifyFailure({ code: 4, stderr: 'Another app is currently holding the xtables lock.' })).toBe(
      'lock-timeout',
    );
  });
});
