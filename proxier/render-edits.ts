/**
 * Rule-by-rule edits of the top-level chains (nat KUBE-SERVICES and KUBE-NODEPORTS; filter
 * KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS and KUBE-PROXY-FIREWALL) for one service:
 * given the rules it had there (as last written) and the rules it should have now, the `-D` and
 * `-I`/`-A` lines that turn one into the other inside an `iptables-restore --noflush` payload.
 *
 * Upstream's partial sync (KEP-3453) rewrites these chains whole, so every sync costs
 * O(services); these edits cost O(rules of the changed service). iptables-restore applies `-D`
 * by rule spec, compared in the kernel's canonical form, so a deleted line only has to be the
 * line that was written, which the caller keeps.
 */
import type { Table } from '../pkg/iptables/payload.ts';
import { KUBE_SERVICES } from './chains.ts';

/** Where new rules of a chain go. */
export type Placement = 'append' | 'prepend';

/**
 * nat KUBE-SERVICES ends with the nodeports jump(s), which must stay last (`--dst-type LOCAL`
 * also matches external IPs and VIPs on the node): new rules go to its top. Order between
 * services does not matter elsewhere (their matches are disjoint), so other chains append.
 */
export function placementOf(table: Table, chain: string): Placement {
  return table === 'nat' && chain === KUBE_SERVICES ? 'prepend' : 'append';
}

export interface RuleEdits {
  /** `-D CHAIN spec` lines; they go before the inserts and before any `-X`. */
  readonly deletes: string[];
  /** `-A CHAIN spec` or `-I CHAIN 1 spec` lines, in the order they must be applied. */
  readonly inserts: string[];
}

/** `-A CHAIN spec` → CHAIN. Lines come from our own renderer, so the shape is fixed. */
export function chainOfRule(line: string): string {
  const end = line.indexOf(' ', 3);
  return end < 0 ? line.slice(3) : line.slice(3, end);
}

function groupByChain(lines: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of lines) {
    const chain = chainOfRule(l);
    let list = out.get(chain);
    if (list === undefined) {
      list = [];
      out.set(chain, list);
    }
    list.push(l);
  }
  return out;
}

function sameLines(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((l, i) => l === b[i]);
}

/**
 * Minimal edits for one service's rules of one chain when the rules it keeps stay in the same
 * order and the new ones land on the right side of them (after for append, before for prepend);
 * otherwise all of its old rules go and all new ones come back as a block, which keeps the
 * service's own order exactly as a full render writes it (it matters when one service has two
 * rules for one destination: e.g. the localhost nfacct NodePort rule must precede the general
 * one, and an IP that is both an external IP and a VIP is decided by the first rule).
 */
function chainEdits(before: readonly string[], after: readonly string[], placement: Placement): RuleEdits {
  if (sameLines(before, after)) return { deletes: [], inserts: [] };
  const available = new Map<string, number>();
  for (const l of before) available.set(l, (available.get(l) ?? 0) + 1);
  const addedAt: number[] = [];
  const keptAfter: string[] = [];
  after.forEach((l, i) => {
    const n = available.get(l) ?? 0;
    if (n > 0) {
      available.set(l, n - 1);
      keptAfter.push(l);
    } else {
      addedAt.push(i);
    }
  });
  // What is still available was not kept: those copies are deleted (identical copies are
  // interchangeable, so which one does not matter).
  const removed: string[] = [];
  const keptBefore: string[] = [];
  const toRemove = new Map(available);
  for (let i = before.length - 1; i >= 0; i--) {
    const l = before[i]!;
    const n = toRemove.get(l) ?? 0;
    if (n > 0) {
      toRemove.set(l, n - 1);
      removed.push(l);
    } else {
      keptBefore.push(l);
    }
  }
  removed.reverse();
  keptBefore.reverse();

  const added = new Set(addedAt);
  const keptIndexes = after.map((_, i) => i).filter((i) => !added.has(i));
  const sidesOk =
    keptIndexes.length === 0 ||
    addedAt.length === 0 ||
    (placement === 'append'
      ? addedAt[0]! > keptIndexes[keptIndexes.length - 1]!
      : addedAt[addedAt.length - 1]! < keptIndexes[0]!);
  if (sameLines(keptBefore, keptAfter) && sidesOk) {
    return { deletes: removed, inserts: addedAt.map((i) => after[i]!) };
  }
  return { deletes: [...before], inserts: [...after] };
}

function deleteLine(line: string): string {
  return `-D${line.slice(2)}`;
}

/** `-I CHAIN 1 spec` from `-A CHAIN spec`. */
function prependLine(line: string, chain: string): string {
  return `-I ${chain} 1${line.slice(3 + chain.length)}`;
}

/**
 * The payload lines that replace one service's top-level rules `before` by `after` in one table.
 * Both are `-A CHAIN spec` lines in render order; chains are handled independently.
 */
export function editTopLevelRules(
  table: Table,
  before: readonly string[],
  after: readonly string[],
): RuleEdits {
  if (sameLines(before, after)) return { deletes: [], inserts: [] };
  const old = groupByChain(before);
  const next = groupByChain(after);
  const chains = [...new Set([...old.keys(), ...next.keys()])];
  const deletes: string[] = [];
  const inserts: string[] = [];
  for (const chain of chains) {
    const placement = placementOf(table, chain);
    const e = chainEdits(old.get(chain) ?? [], next.get(chain) ?? [], placement);
    for (const l of e.deletes) deletes.push(deleteLine(l));
    if (placement === 'append') {
      inserts.push(...e.inserts);
    } else {
      // Inserting at 1 in reverse order leaves the block in render order at the top.
      for (let i = e.inserts.length - 1; i >= 0; i--) inserts.push(prependLine(e.inserts[i]!, chain));
    }
  }
  return { deletes, inserts };
}
