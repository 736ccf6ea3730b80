import { describe, expect, it } from 'vitest';
import {
  chooseBackend,
  countRuleLines,
  detectBackend,
  hasKubeletChains,
  parseBackendFlag,
} from '../../../pkg/iptables/backend.ts';
import type { Exec } from '../../../pkg/iptables/exec.ts';

const HINT = '*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n';
const rules = (n: number): string =>
  `*filter\n:INPUT ACCEPT [0:0]\n${'-A INPUT -j ACCEPT\n'.repeat(n)}COMMIT\n`;

describe('parseBackendFlag', () => {
  it('accepts auto, legacy and nft, case-insensitively', () => {
    expect(parseBackendFlag('auto')).toBe('auto');
    expect(parseBackendFlag(' NFT ')).toBe('nft');
    expect(parseBackendFlag('legacy')).toBe('legacy');
    expect(() => parseBackendFlag('iptables')).toThrow(/invalid iptables backend/);
  });
});

describe('chooseBackend (iptables-wrapper logic)', () => {
  const none = async () => '';
  it.each([
    ['kubelet hint in nft mangle', { nftMangle: HINT, legacyAll: rules(50), nftAll: none }, 'nft'],
    [
      'kubelet canary in legacy',
      { nftMangle: '', legacyAll: '*mangle\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n', nftAll: none },
      'legacy',
    ],
    ['more legacy rules', { nftMangle: '', legacyAll: rules(3), nftAll: async () => rules(2) }, 'legacy'],
    ['more nft rules', { nftMangle: '', legacyAll: rules(1), nftAll: async () => rules(2) }, 'nft'],
    ['a tie means nft', { nftMangle: '', legacyAll: rules(2), nftAll: async () => rules(2) }, 'nft'],
    ['nothing anywhere means nft', { nftMangle: '', legacyAll: '', nftAll: none }, 'nft'],
  ])('%s', async (_name, evidence, backend) => {
    expect((await chooseBackend(evidence)).backend).toBe(backend);
  });

  it('recognises the chains only as declarations', () => {
    expect(hasKubeletChains('-A X -m comment --comment ":KUBE-IPTABLES-HINT"')).toBe(false);
    expect(hasKubeletChains(':KUBE-KUBELET-CANARY - [0:0]')).toBe(true);
    expect(countRuleLines(rules(4))).toBe(4);
  });
});

describe('detectBackend', () => {
  it('runs the wrapper commands (legacy never with -t mangle) and treats failures as empty', async () => {
    const seen: string[] = [];
    const exec: Exec = async (argv) => {
      seen.push(argv.join(' '));
      if (argv.join(' ') === 'pfx iptables-legacy-save')
        return { code: 0, signal: null, stdout: rules(5), stderr: '' };
      if (argv.includes('ip6tables-nft-save')) throw new Error('ENOENT');
      return { code: 1, signal: null, stdout: '', stderr: 'nope' };
    };
    expect(await detectBackend({ exec, execPrefix: ['pfx'] })).toBe('legacy');
    expect(seen).toEqual(
      expect.arrayContaining([
        'pfx iptables-nft-save -t mangle',
        'pfx ip6tables-nft-save -t mangle',
        'pfx iptables-legacy-save',
        'pfx ip6tables-legacy-save',
        'pfx iptables-nft-save',
      ]),
    );
    expect(seen.some((c) => c.includes('legacy-save -t'))).toBe(false);
  });
});
