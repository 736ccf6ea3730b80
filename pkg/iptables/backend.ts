/**
 * Choosing between iptables-legacy and iptables-nft the way upstream's kube-proxy image does.
 * The image routes every iptables binary through kubernetes-sigs/iptables-wrappers, whose
 * wrapper (iptables-wrapper-installer.sh, the shell version up to v3; pkg/xtables/detect.go in
 * the Go rewrite) decides by what the host already uses:
 *
 * 1. kubelet (1.17+) creates KUBE-IPTABLES-HINT and KUBE-KUBELET-CANARY in the mangle table;
 *    found with iptables-nft-save / ip6tables-nft-save `-t mangle` → nft (checked first: cheaper
 *    and more common);
 * 2. the same chains in the full iptables-legacy-save / ip6tables-legacy-save → legacy (never
 *    `-t mangle` with legacy: that would make the kernel create the table);
 * 3. otherwise count the rule lines (`-...`) of both backends, IPv4 and IPv6 together; legacy
 *    only when it has strictly more, so a tie (e.g. nothing at all) means nft.
 *
 * Every command's failure counts as empty output, as in the wrapper. The Go rewrite drops step 3
 * and defaults to nft; the shell wrapper's step 3 is kept here because it is what makes an old
 * node with only legacy rules (and no kubelet hint) keep working.
 */
import type { Logger } from '../log/logger.ts';
import { silentLogger } from '../log/logger.ts';
import { IptablesError } from './errors.ts';
import { type Exec, spawnExec } from './exec.ts';
import type { Backend } from './types.ts';

export type BackendFlag = 'auto' | Backend;

/** Parses `--iptables-backend` style values. */
export function parseBackendFlag(value: string): BackendFlag {
  const v = value.trim().toLowerCase();
  if (v === 'auto' || v === 'legacy' || v === 'nft') return v;
  throw new IptablesError(
    'parse-error',
    `invalid iptables backend ${JSON.stringify(value)} (want auto, legacy or nft)`,
  );
}

const KUBELET_CHAINS = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)\b/m;

/** Whether iptables-save output shows kubelet's hint or canary chain. */
export function hasKubeletChains(saveOutput: string): boolean {
  return KUBELET_CHAINS.test(saveOutput);
}

/** Number of rule lines in iptables-save output (the wrapper's `grep '^-' | wc -l`). */
export function countRuleLines(saveOutput: string): number {
  let n = 0;
  for (const line of saveOutput.split('\n')) if (line.startsWith('-')) n++;
  return n;
}

/** What the detection looked at; each string is the concatenated IPv4 + IPv6 output. */
export interface BackendEvidence {
  /** `iptables-nft-save -t mangle` + `ip6tables-nft-save -t mangle`. */
  readonly nftMangle: string;
  /** `iptables-legacy-save` + `ip6tables-legacy-save` (all tables). */
  readonly legacyAll: string;
  /** `iptables-nft-save` + `ip6tables-nft-save` (all tables); only read by step 3. */
  readonly nftAll: () => Promise<string>;
}

/** The decision, given the evidence (pure apart from the lazy nftAll). */
export async function chooseBackend(e: BackendEvidence): Promise<{ backend: Backend; reason: string }> {
  if (hasKubeletChains(e.nftMangle)) return { backend: 'nft', reason: 'kubelet chains in nft mangle table' };
  if (hasKubeletChains(e.legacyAll)) return { backend: 'legacy', reason: 'kubelet chains in legacy tables' };
  const legacy = countRuleLines(e.legacyAll);
  const nft = countRuleLines(await e.nftAll());
  if (legacy > nft) return { backend: 'legacy', reason: `more legacy rules (${legacy} > ${nft})` };
  return { backend: 'nft', reason: `no more legacy rules than nft rules (${legacy} <= ${nft})` };
}

export interface DetectBackendOptions {
  /** Prepended to every command, e.g. `['ip', 'netns', 'exec', NS]`. */
  readonly execPrefix?: readonly string[];
  readonly logger?: Logger;
  readonly exec?: Exec;
}

/** Looks at the host's rules and picks the backend its other components use. */
export async function detectBackend(opts: DetectBackendOptions = {}): Promise<Backend> {
  const exec = opts.exec ?? spawnExec;
  const prefix = opts.execPrefix ?? [];
  const log = (opts.logger ?? silentLogger()).child({ component: 'iptables-backend' });
  // Failures read as empty output, as the wrapper's `|| true; ... 2>/dev/null`.
  const out = async (argv: readonly string[]): Promise<string> => {
    try {
      const r = await exec([...prefix, ...argv], { timeoutMs: 30_000 });
      return r.stdout;
    } catch {
      return '';
    }
  };
  const both = async (a: readonly string[], b: readonly string[]): Promise<string> => {
    const [x, y] = await Promise.all([out(a), out(b)]);
    return `${x}\n${y}`;
  };
  const nftMangle = await both(['iptables-nft-save', '-t', 'mangle'], ['ip6tables-nft-save', '-t', 'mangle']);
  const legacyAll = hasKubeletChains(nftMangle)
    ? ''
    : await both(['iptables-legacy-save'], ['ip6tables-legacy-save']);
  const { backend, reason } = await chooseBackend({
    nftMangle,
    legacyAll,
    nftAll: () => both(['iptables-nft-save'], ['ip6tables-nft-save']),
  });
  log.info({ backend, reason }, 'detected iptables backend');
  return backend;
}

/** The backend for a flag value: `auto` detects, the others are taken as given. */
export async function resolveBackend(flag: BackendFlag, opts: DetectBackendOptions = {}): Promise<Backend> {
  return flag === 'auto' ? detectBackend(opts) : flag;
}
