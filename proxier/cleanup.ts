/**
 * `--cleanup`: removes every chain and jump kube-proxy (ours or upstream's) installed in one IP
 * family, and nothing else (upstream: CleanupLeftovers in pkg/proxy/iptables/proxier.go).
 *
 * Upstream deletes a fixed list of jumps with `iptables -D` and then flushes and deletes a fixed
 * list of chains through one restore per table. Here each table is cleaned by ONE
 * `iptables-restore --noflush` computed from that table's `iptables-save` text, so that:
 *
 * - jumps are deleted by what they point at, not by their exact words: a jump written by another
 *   kube-proxy version (other comment, other match) goes too, and it is deleted with the words
 *   iptables-save printed, which are the ones the kernel compares;
 * - a chain that a foreign chain still jumps to is flushed but kept, so the restore never fails on
 *   "Too many links" and the foreign rule keeps working (it just finds an empty chain);
 * - rules and chains of other programs (CNI, Docker, firewalls, kubelet's KUBE-FIREWALL) are never
 *   written to: the payload declares only our chains and deletes only rules that jump to them.
 *
 * Differences from upstream, on purpose: KUBE-MARK-MASQ, KUBE-PROXY-FIREWALL and the canaries are
 * removed too (upstream leaves them behind), KUBE-MARK-MASQ only when no foreign rule uses it (it
 * used to be shared with kubelet's hostport code).
 */
import { RestoreError } from '../pkg/iptables/errors.ts';
import { isBuiltinChain, type ParsedTable, parseDump, ruleTarget } from '../pkg/iptables/parse.ts';
import { chainLine } from '../pkg/iptables/payload.ts';
import type { Family, Iptables, Table } from '../pkg/iptables/types.ts';
import type { Logger } from '../pkg/log/logger.ts';
import {
  isServiceChain,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_CANARY,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from './chains.ts';

/** Prefix of upstream's old per-service Local chains (replaced by KUBE-SVL-/KUBE-EXT-). */
export const LEGACY_XLB_PREFIX = 'KUBE-XLB-';

/** The tables `cleanupLeftovers` cleans, in order. */
export const CLEANUP_TABLES: readonly Table[] = ['filter', 'nat', 'mangle'];

/** Fixed-name chains kube-proxy owns, per table. KUBE-FIREWALL is kubelet's and is not here. */
const OWNED_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  filter: [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
    KUBE_PROXY_CANARY,
  ],
  nat: [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ, KUBE_PROXY_CANARY],
  mangle: [KUBE_PROXY_CANARY],
  raw: [],
};

/** Whether `chain` in `table` is one kube-proxy creates (and cleanup may remove). */
export function isKubeProxyChain(table: Table, chain: string): boolean {
  if (OWNED_CHAINS[table].includes(chain)) return true;
  return table === 'nat' && (isServiceChain(chain) || chain.startsWith(LEGACY_XLB_PREFIX));
}

export interface KeptChain {
  readonly chain: string;
  readonly reason: string;
}

export interface CleanupPayload {
  /** `--noflush` restore input for the table; '' when there is nothing of ours in it. */
  readonly payload: string;
  /** Chains the payload flushes and deletes, in the order of the save text. */
  readonly removedChains: string[];
  /** Chains of ours left in place, and why. */
  readonly keptChains: KeptChain[];
  /** Rules deleted from built-in chains (jumps to our chains), as `CHAIN words...`. */
  readonly deletedJumps: string[];
}

const COUNTERS_PREFIX = /^\[\d+:\d+\]\s+/;

interface Referrers {
  readonly builtin: string[];
  readonly user: string[];
}

/**
 * For each chain of `ours`, the chains outside `ours` holding a rule that jumps (or goes) to it.
 * One pass over the rules: a big cluster has tens of thousands of chains and rules.
 */
function referrersOf(section: ParsedTable, ours: ReadonlySet<string>): Map<string, Referrers> {
  const out = new Map<string, Referrers>();
  for (const r of section.rules) {
    if (r.op !== '-A' || ours.has(r.chain)) continue;
    const target = ruleTarget(r.args)?.target;
    if (target === undefined || !ours.has(target)) continue;
    let refs = out.get(target);
    if (!refs) {
      refs = { builtin: [], user: [] };
      out.set(target, refs);
    }
    (isBuiltinChain(section.name, r.chain) ? refs.builtin : refs.user).push(r.chain);
  }
  return out;
}

/**
 * The cleanup restore payload for one table, from that table's iptables-save text. Pure.
 *
 * Layout: a `:CHAIN - [0:0]` line for every chain of ours (under --noflush that empties it), then
 * `-D` for every built-in-chain rule that jumps to one of them (the rule's words exactly as
 * saved), then `-X` for each one that no foreign chain references. Flushing all of ours first
 * means references between our own chains never block a `-X`.
 *
 * Throws IptablesParseError when the save text cannot be parsed.
 */
export function renderCleanupPayload(saveText: string, table: Table): CleanupPayload {
  const empty: CleanupPayload = { payload: '', removedChains: [], keptChains: [], deletedJumps: [] };
  const section: ParsedTable | undefined = parseDump(saveText).tables.find((t) => t.name === table);
  if (!section) return empty;
  const sourceLines = saveText.split('\n');

  const candidates = section.chains.map((c) => c.name).filter((name) => isKubeProxyChain(table, name));
  if (candidates.length === 0) return empty;
  const ours = new Set(candidates);

  const keptChains: KeptChain[] = [];
  // KUBE-MARK-MASQ used to be shared with kubelet (hostports): when any other rule still jumps to
  // it, it stays exactly as it is, with its MARK rule, and so do the rules jumping to it.
  let refs = referrersOf(section, ours);
  if (table === 'nat' && ours.has(KUBE_MARK_MASQ)) {
    const from = refs.get(KUBE_MARK_MASQ);
    if (from) {
      ours.delete(KUBE_MARK_MASQ);
      // Its own rules are now foreign ones, and may reference chains of ours.
      refs = referrersOf(section, ours);
      const names = [...new Set([...from.builtin, ...from.user])].sort();
      keptChains.push({
        chain: KUBE_MARK_MASQ,
        reason: `still used by rules in ${names.join(', ')}; left untouched`,
      });
    }
  }

  const chainLines: string[] = [];
  const deleteLines: string[] = [];
  const deleteChainLines: string[] = [];
  const removedChains: string[] = [];
  const deletedJumps: string[] = [];

  for (const name of candidates) {
    if (!ours.has(name)) continue;
    chainLines.push(chainLine(name));
    const users = refs.get(name)?.user ?? [];
    if (users.length > 0) {
      const from = [...new Set(users)].sort();
      keptChains.push({ chain: name, reason: `still referenced by ${from.join(', ')}; flushed but kept` });
    } else {
      deleteChainLines.push(`-X ${name}`);
      removedChains.push(name);
    }
  }

  for (const r of section.rules) {
    if (r.op !== '-A' || !isBuiltinChain(table, r.chain)) continue;
    const target = ruleTarget(r.args)?.target;
    if (target === undefined || !ours.has(target)) continue;
    // Delete with the exact text iptables-save printed (quoting included), only `-A` → `-D`.
    const raw = sourceLines[r.line - 1]!.replace(/\r$/, '').trim().replace(COUNTERS_PREFIX, '');
    const rest = raw.replace(/^(-A|--append)\s+/, '');
    deleteLines.push(`-D ${rest}`);
    deletedJumps.push(rest);
  }

  const payload = [`*${table}`, ...chainLines, ...deleteLines, ...deleteChainLines, 'COMMIT', ''].join('\n');
  return { payload, removedChains, keptChains, deletedJumps };
}

export interface TableCleanupResult {
  readonly table: Table;
  readonly ok: boolean;
  readonly removedChains: readonly string[];
  readonly keptChains: readonly KeptChain[];
  readonly deletedJumps: readonly string[];
  /** What failed (save, parse or restore), when !ok. */
  readonly error?: unknown;
}

export interface CleanupResult {
  readonly family: Family;
  /** False when any table failed; `--cleanup` then exits non-zero. */
  readonly ok: boolean;
  readonly tables: readonly TableCleanupResult[];
  /** Every removed chain as `table/CHAIN`. */
  readonly removed: readonly string[];
}

async function cleanTable(iptables: Iptables, table: Table, log: Logger): Promise<TableCleanupResult> {
  // Two attempts: a restore can fail when something (a still-running proxy, a CNI plugin)
  // changed the table between our save and our restore; the second try works from fresh text.
  const attempts = 2;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let plan: CleanupPayload;
    try {
      plan = renderCleanupPayload(await iptables.save(table), table);
    } catch (err) {
      log.error({ err, table }, 'cannot read the table for cleanup');
      return { table, ok: false, removedChains: [], keptChains: [], deletedJumps: [], error: err };
    }
    if (plan.payload === '') return { table, ok: true, removedChains: [], keptChains: [], deletedJumps: [] };
    try {
      await iptables.restore(table, plan.payload, { flush: false, counters: true });
    } catch (err) {
      lastError = err;
      if (err instanceof RestoreError && attempt < attempts) {
        log.warn({ err, table }, 'cleanup restore failed; retrying from a fresh iptables-save');
        continue;
      }
      log.error({ err, table }, 'cleanup restore failed');
      break;
    }
    for (const k of plan.keptChains)
      log.warn({ table, chain: k.chain, reason: k.reason }, 'chain kept by cleanup');
    log.info(
      { table, removedChains: plan.removedChains.length, deletedJumps: plan.deletedJumps.length },
      'removed kube-proxy rules',
    );
    return {
      table,
      ok: true,
      removedChains: plan.removedChains,
      keptChains: plan.keptChains,
      deletedJumps: plan.deletedJumps,
    };
  }
  return { table, ok: false, removedChains: [], keptChains: [], deletedJumps: [], error: lastError };
}

/**
 * Removes kube-proxy's chains and jumps from filter, nat and mangle of one IP family. A table
 * that fails is logged and reported, and the others are still cleaned. Never throws.
 */
export async function cleanupLeftovers(iptables: Iptables, logger: Logger): Promise<CleanupResult> {
  const log = logger.child({ component: 'cleanup', family: iptables.family });
  const tables: TableCleanupResult[] = [];
  for (const table of CLEANUP_TABLES) tables.push(await cleanTable(iptables, table, log));
  return {
    family: iptables.family,
    ok: tables.every((t) => t.ok),
    tables,
    removed: tables.flatMap((t) => t.removedChains.map((c) => `${t.table}/${c}`)),
  };
}
