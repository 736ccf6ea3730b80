/**
 * The jumps from the built-in chains (INPUT, FORWARD, OUTPUT, PREROUTING, POSTROUTING) into
 * ours. Upstream ensures each with its own `iptables -N`, `-C` and `-I` on every full sync: about
 * 40 process runs, each taking the xtables lock, which on a busy node costs seconds. Here the full
 * sync reads the tables once (it already does, for stale chains) and the missing jumps go into
 * the same restore as `-I <chain> 1 ...` lines, so the rules and their entry points commit
 * together. The result on a clean host is upstream's: each jump inserted at position 1 in list
 * order, so the top of every built-in chain is in reverse list order; a jump already present
 * anywhere in the chain stays put.
 */

import { type ParsedDump, parseDumpPartial, ruleTarget } from '../pkg/iptables/parse.ts';
import { comment, type LineBuffer } from '../pkg/iptables/payload.ts';
import type { RestorePayload, Table } from '../pkg/iptables/types.ts';
import { type BuiltinJump, renderBuiltinJumps } from './render.ts';

/** `-I` lines per table for the jumps absent from `saved` (iptables-save of filter and nat). */
export function missingJumpLines(
  saved: string,
  declaredChains: ReadonlyMap<Table, ReadonlySet<string>>,
): Map<Table, string[]> {
  const dump = parseDumpPartial(builtinChainRules(saved)).dump;
  const out = new Map<Table, string[]>();
  for (const j of renderBuiltinJumps()) {
    // KUBE-FIREWALL is only in IPv4 payloads with localhost NodePorts; no chain, no jump.
    if (!declaredChains.get(j.table)?.has(j.target)) continue;
    if (hasJump(dump, j)) continue;
    const lines = out.get(j.table) ?? [];
    lines.push(['-I', j.chain, '1', ...argsForRestore(j)].join(' '));
    out.set(j.table, lines);
  }
  return out;
}

/**
 * The save text cut down to what hasJump looks at: table lines and the built-in chains' rules.
 * A full sync reads the whole table (170,000 rules at 10,000 Services); parsing all of it to
 * find a handful of jumps would cost more than the rest of the render.
 */
function builtinChainRules(saved: string): string {
  const keep: string[] = [];
  for (let start = 0; start < saved.length; ) {
    let end = saved.indexOf('\n', start);
    if (end < 0) end = saved.length;
    const c0 = saved.charCodeAt(start);
    if (c0 === 42 /* '*' */ || saved.startsWith('COMMIT', start)) keep.push(saved.slice(start, end));
    else if (c0 === 45 /* '-' */ && BUILTIN_RULE_PREFIXES.some((p) => saved.startsWith(p, start)))
      keep.push(saved.slice(start, end));
    start = end + 1;
  }
  keep.push('');
  return keep.join('\n');
}

const BUILTIN_RULE_PREFIXES = ['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING'].map(
  (c) => `-A ${c} `,
);

/** Which of `names` the buffer declares (`:NAME - [0:0]`), without splitting it into lines. */
export function declaredAmong(chains: LineBuffer, names: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const name of names) {
    const line = `:${name} `;
    if (chains.blocks.some((b) => b.startsWith(line) || b.includes(`\n${line}`))) out.add(name);
  }
  return out;
}

function hasJump(dump: ParsedDump, j: BuiltinJump): boolean {
  const table = dump.tables.find((t) => t.name === j.table);
  return table?.rules.some((r) => r.chain === j.chain && ruleTarget(r.args)?.target === j.target) ?? false;
}

/** The jump's arguments with the comment quoted for restore input. */
function argsForRestore(j: BuiltinJump): string[] {
  const args = [...j.args];
  const i = args.indexOf('--comment');
  if (i < 0) return args;
  return [...args.slice(0, i - 2), ...comment(args[i + 1]!), ...args.slice(i + 2)];
}

/**
 * Inserts per-table lines just before that table's COMMIT in a restore payload. Full syncs pass
 * the whole payload (tens of MB at 10,000 services), so it is scanned line start by line start
 * and copied once, never split into a string per line.
 */
export function withLinesBeforeCommit(
  payload: RestorePayload,
  lines: ReadonlyMap<Table, readonly string[]>,
): RestorePayload {
  if (lines.size === 0) return payload;
  if (typeof payload !== 'string') return withPartsBeforeCommit(payload, lines);
  let table: string | undefined;
  const parts: string[] = [];
  let copied = 0;
  for (let start = 0; start <= payload.length; ) {
    let end = payload.indexOf('\n', start);
    if (end < 0) end = payload.length;
    if (payload.charCodeAt(start) === 42 /* '*' */) table = payload.slice(start + 1, end);
    if (table && end - start === 6 && payload.startsWith('COMMIT', start)) {
      const extra = lines.get(table as Table) ?? [];
      if (extra.length > 0) {
        parts.push(payload.slice(copied, start), ...extra.map((l) => `${l}\n`));
        copied = start;
      }
    }
    start = end + 1;
  }
  parts.push(payload.slice(copied));
  return parts.join('');
}

/** withLinesBeforeCommit on parts (buildRestoreParts: `*table` and COMMIT are parts of their own). */
function withPartsBeforeCommit(
  parts: readonly string[],
  lines: ReadonlyMap<Table, readonly string[]>,
): string[] {
  const out: string[] = [];
  let table: string | undefined;
  for (const p of parts) {
    if (p.charCodeAt(0) === 42 /* '*' */ && !p.includes('\n')) table = p.slice(1);
    if (p === 'COMMIT' && table !== undefined) for (const l of lines.get(table as Table) ?? []) out.push(l);
    out.push(p);
  }
  return out;
}
