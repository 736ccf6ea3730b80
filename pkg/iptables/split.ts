/**
 * Splits a big `--noflush` restore payload into several transactions (one `*table ... COMMIT`
 * section each) for iptables-nft.
 *
 * Why: iptables-nft-restore 1.8.x (nft-cache.c, cache_chain_list_insert) records every chain a
 * command names, and every jump target, in a sorted linked list that it walks from the head for
 * each command, and the list lives until COMMIT. A kube-proxy payload jumps from KUBE-SVC-* down to
 * KUBE-SEP-* chains, which sort before them, so each SVC rule walks past every SEP chain seen so
 * far: a 10,000-Service full sync (170,000 rules) took 38 minutes of CPU here, 2,000 Services 7 s.
 * Cut into sections of a few thousand commands, each list stays short and the same 10,000-Service
 * payload goes in in ~6 s. Legacy iptables-restore replaces the whole table at every COMMIT, so
 * this is for nft only.
 *
 * What is given up is one transaction for the whole table, so the order of the sections keeps
 * every state between them consistent ("make before break"):
 * - a chain's declaration and all its commands stay together, in one section, so a chain is
 *   never seen half filled;
 * - a chain comes after every chain of the payload it jumps to (targets first: SEP before SVC
 *   before KUBE-SERVICES), so a new jump target is already there, filled, when a jump to it lands;
 * - the last section holds the chains that are deleted (`-X`, flushed and deleted together, after
 *   every chain that jumped to them has been rewritten) and the commands on chains the payload
 *   does not declare (built-in jumps, `-D`/`-I` edits of existing chains), in payload order.
 * A payload this cannot order (a jump cycle among its chains, a command it does not know) is
 * returned whole.
 */

export interface SplitOptions {
  /** Commands per section, roughly: a chain's commands are never split. */
  readonly sectionCommands: number;
  /** Payloads with fewer commands in a table are left whole (partial syncs stay atomic). */
  readonly minCommands: number;
}

export const NFT_SPLIT_DEFAULTS: SplitOptions = { sectionCommands: 2_000, minCommands: 8_000 };

interface ChainGroup {
  readonly name: string;
  readonly decl: string;
  readonly commands: string[];
  /** Groups of this payload that its rules jump to (repeats allowed). */
  readonly targets: ChainGroup[];
  deleted: boolean;
  /** Longest jump path down to a chain that jumps to none of the payload's; -1 unknown, -2 being visited. */
  depth: number;
  readonly order: number;
}

interface TableSection {
  readonly header: string;
  readonly lines: string[];
}

/**
 * The payload as one or more restore payloads' worth of sections, to be fed in order (in one
 * iptables-restore run: each COMMIT is its own transaction). Returns the input when nothing is
 * gained or it cannot be ordered safely.
 */
export function splitRestorePayload(payload: string, opts: SplitOptions = NFT_SPLIT_DEFAULTS): string {
  const sections = readSections(payload);
  if (sections === undefined) return payload;
  let changed = false;
  const out: string[] = [];
  for (const s of sections) {
    const split = s.lines.length >= opts.minCommands ? splitTable(s, opts.sectionCommands) : undefined;
    if (split === undefined) {
      out.push(s.header);
      append(out, s.lines);
      out.push('COMMIT');
      continue;
    }
    changed = true;
    append(out, split);
  }
  if (!changed) return payload;
  return `${out.join('\n')}\n`;
}

/** `to.push(...from)` without the argument-count limit of a spread. */
function append(to: string[], from: readonly string[]): void {
  for (const x of from) to.push(x);
}

/** Table sections with the lines between `*table` and COMMIT; undefined when not plain. */
function readSections(payload: string): TableSection[] | undefined {
  const sections: TableSection[] = [];
  let current: TableSection | undefined;
  for (const line of payload.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      if (current !== undefined) return undefined;
      current = { header: line, lines: [] };
    } else if (line === 'COMMIT') {
      if (current === undefined) return undefined;
      sections.push(current);
      current = undefined;
    } else if (current === undefined) {
      return undefined;
    } else {
      current.lines.push(line);
    }
  }
  return current === undefined ? sections : undefined;
}

/** The chain after the last `-j`/`-g`, if any (a comment cannot hold the real target: it comes last). */
function jumpTarget(line: string): string | undefined {
  const j = Math.max(line.lastIndexOf(' -j '), line.lastIndexOf(' -g '));
  if (j < 0) return undefined;
  const end = line.indexOf(' ', j + 4);
  return line.slice(j + 4, end < 0 ? undefined : end);
}

const COLON = 0x3a;
const DASH = 0x2d;
const SPACE = 0x20;
const X = 0x58;
// The one-letter commands whose second word is the chain: -A -I -D -R -X -F -Z.
const CHAIN_OPS: ReadonlySet<number> = new Set([0x41, 0x49, 0x44, 0x52, X, 0x46, 0x5a]);

/** Whether `line` (a command) acts on chain `name`: the word after `-? ` is exactly it. */
function actsOn(line: string, name: string): boolean {
  if (!line.startsWith(name, 3)) return false;
  const after = line.charCodeAt(3 + name.length);
  return after === SPACE || Number.isNaN(after);
}

function splitTable(s: TableSection, sectionCommands: number): string[] | undefined {
  const groups = new Map<string, ChainGroup>();
  // Commands on chains this section does not declare, and `-X` lines, in payload order.
  const rest: string[] = [];
  const deletions: string[] = [];
  // Consecutive commands mostly act on the same chain: checking that one first saves a lookup.
  let last: ChainGroup | undefined;
  for (const line of s.lines) {
    const c0 = line.charCodeAt(0);
    if (c0 === COLON) {
      const end = line.indexOf(' ');
      const name = line.slice(1, end < 0 ? undefined : end);
      if (groups.has(name)) return undefined;
      groups.set(name, {
        name,
        decl: line,
        commands: [],
        targets: [],
        deleted: false,
        depth: -1,
        order: groups.size,
      });
      continue;
    }
    // Anything else than `-? CHAIN ...` (counters, long options, -N, -P): leave the payload whole.
    if (c0 !== DASH || line.charCodeAt(2) !== SPACE || !CHAIN_OPS.has(line.charCodeAt(1))) return undefined;
    let g = last !== undefined && actsOn(line, last.name) ? last : undefined;
    if (g === undefined) {
      const end = line.indexOf(' ', 3);
      g = groups.get(line.slice(3, end < 0 ? undefined : end));
    }
    last = g;
    if (line.charCodeAt(1) === X) {
      deletions.push(line);
      if (g !== undefined) g.deleted = true;
      continue;
    }
    if (g === undefined) {
      rest.push(line);
      continue;
    }
    g.commands.push(line);
    const t = jumpTarget(line);
    if (t === undefined) continue;
    const tg = groups.get(t);
    if (tg !== undefined && tg !== g.targets[g.targets.length - 1]) g.targets.push(tg);
  }
  const live: ChainGroup[] = [];
  const doomed: ChainGroup[] = [];
  for (const g of groups.values()) (g.deleted ? doomed : live).push(g);
  if (!setDepths(live)) return undefined;
  live.sort((a, b) => a.depth - b.depth || a.order - b.order);

  const out: string[] = [];
  let decls: string[] = [];
  let commands: string[] = [];
  const close = (): void => {
    if (decls.length === 0 && commands.length === 0) return;
    out.push(s.header);
    append(out, decls);
    append(out, commands);
    out.push('COMMIT');
    decls = [];
    commands = [];
  };
  for (const g of live) {
    if (decls.length + commands.length >= sectionCommands) close();
    decls.push(g.decl);
    append(commands, g.commands);
  }
  close();
  // The last section: deleted chains (declared, so flushed, then `-X`) and everything else. A
  // deleted chain's own commands (none in a sane payload) go with it.
  for (const g of doomed) decls.push(g.decl);
  for (const g of doomed) append(commands, g.commands);
  append(commands, rest);
  append(commands, deletions);
  close();
  return out;
}

/**
 * Sets each group's depth (0: jumps to none of the groups; else 1 + its deepest target's).
 * False on a cycle, or on a jump to a chain that is deleted.
 */
function setDepths(groups: readonly ChainGroup[]): boolean {
  // Iterative DFS: recursion depth would be the jump-path length, which a payload chooses.
  const stack: ChainGroup[] = [];
  const next: number[] = [];
  for (const root of groups) {
    if (root.depth >= 0) continue;
    root.depth = -2;
    stack.push(root);
    next.push(0);
    while (stack.length > 0) {
      const top = stack.length - 1;
      const g = stack[top] as ChainGroup;
      const i = next[top] as number;
      if (i < g.targets.length) {
        next[top] = i + 1;
        const t = g.targets[i] as ChainGroup;
        if (t.deleted || t.depth === -2) return false;
        if (t.depth === -1) {
          t.depth = -2;
          stack.push(t);
          next.push(0);
        }
        continue;
      }
      let d = 0;
      for (const t of g.targets) if (t.depth + 1 > d) d = t.depth + 1;
      g.depth = d;
      stack.pop();
      next.pop();
    }
  }
  return true;
}
