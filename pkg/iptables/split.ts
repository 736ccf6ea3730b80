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

import { joinInChunks, payloadText, type RestorePayload } from './payload.ts';

export interface SplitOptions {
  /** Commands per section, roughly: a chain's commands are never split. */
  readonly sectionCommands: number;
  /** Payloads with fewer commands in a table are left whole (partial syncs stay atomic). */
  readonly minCommands: number;
}

export const NFT_SPLIT_DEFAULTS: SplitOptions = { sectionCommands: 2_000, minCommands: 8_000 };

/**
 * Where each section's lines are. Lines are (part, begin, end) in typed arrays, not strings: a
 * 320,000-rule payload is 33 MB, and joining it, or copying it line by line, cost seconds and
 * hundreds of MB before iptables-restore read a byte.
 */
export interface SplitPlan {
  readonly lines: PayloadLines;
  readonly sections: readonly PlannedSection[];
}

/** Every line of a payload given as parts (RestorePayload), by where it is. */
interface PayloadLines {
  readonly parts: readonly string[];
  readonly count: number;
  readonly part: Int32Array;
  /** Offsets in the part: first character, and one past the last (the newline or the part's end). */
  readonly begin: Int32Array;
  readonly end: Int32Array;
}

interface PlannedSection {
  /** The `*table` line's index. */
  readonly header: number;
  /** Line indexes, in the order they are to be written (COMMIT is added). */
  readonly lines: Int32Array;
}

/**
 * The payload with its big tables cut into sections (each COMMIT is a transaction of its own),
 * as one string. Returns the input's text when nothing is gained or it cannot be ordered safely.
 */
export function splitRestorePayload(
  payload: RestorePayload,
  opts: SplitOptions = NFT_SPLIT_DEFAULTS,
): string {
  const plan = planSplit(payload, opts);
  return plan === undefined ? payloadText(payload) : [...sectionTexts(plan)].join('');
}

/** The split text in chunks made one at a time, in order, as a pipe writer wants them. */
export function sectionTexts(plan: SplitPlan): Generator<string> {
  return joinInChunks(sectionPieces(plan));
}

/** The split text as pieces to join with newlines: lines, runs of lines, COMMITs, then ''. */
function* sectionPieces(plan: SplitPlan): Generator<string> {
  const { parts, part, begin, end } = plan.lines;
  for (const s of plan.sections) {
    yield (parts[part[s.header] as number] as string).slice(begin[s.header], end[s.header]);
    // Runs of consecutive lines of one part are copied as one slice.
    let runFirst = -1;
    let runLast = -1;
    for (let k = 0; k <= s.lines.length; k++) {
      const i = k < s.lines.length ? (s.lines[k] as number) : -1;
      if (i >= 0 && runLast >= 0 && i === runLast + 1 && part[i] === part[runLast]) {
        runLast = i;
        continue;
      }
      if (runFirst >= 0)
        yield (parts[part[runFirst] as number] as string).slice(begin[runFirst], end[runLast]);
      runFirst = i;
      runLast = i;
    }
    yield 'COMMIT';
  }
  yield '';
}

/** Indexes the lines of the payload's text without making it; undefined if it does not end in a newline. */
function indexLines(payload: RestorePayload): PayloadLines | undefined {
  // A string is one part followed by the empty part that its final newline implies.
  const parts = typeof payload === 'string' ? [payload.slice(0, -1), ''] : payload;
  if (typeof payload === 'string' && !payload.endsWith('\n')) return undefined;
  if (parts.length < 2 || parts[parts.length - 1] !== '') return undefined;
  let count = 0;
  for (let p = 0; p < parts.length - 1; p++) {
    const t = parts[p] as string;
    count++;
    for (let at = t.indexOf('\n'); at >= 0; at = t.indexOf('\n', at + 1)) count++;
  }
  const part = new Int32Array(count);
  const begin = new Int32Array(count);
  const end = new Int32Array(count);
  let i = 0;
  for (let p = 0; p < parts.length - 1; p++) {
    const t = parts[p] as string;
    let from = 0;
    for (let at = t.indexOf('\n'); ; at = t.indexOf('\n', from)) {
      part[i] = p;
      begin[i] = from;
      end[i] = at < 0 ? t.length : at;
      i++;
      if (at < 0) break;
      from = at + 1;
    }
  }
  return { parts, count, part, begin, end };
}

/**
 * How to cut the payload, or undefined when it is better fed whole: no table has minCommands
 * lines, or one cannot be ordered (a jump cycle, a line this does not understand).
 */
export function planSplit(
  payload: RestorePayload,
  opts: SplitOptions = NFT_SPLIT_DEFAULTS,
): SplitPlan | undefined {
  const lines = indexLines(payload);
  if (lines === undefined) return undefined;
  const { parts, part, begin, end } = lines;
  const sections: PlannedSection[] = [];
  let changed = false;
  let header = -1;
  for (let i = 0; i < lines.count; i++) {
    const t = parts[part[i] as number] as string;
    const start = begin[i] as number;
    const c0 = start < (end[i] as number) ? t.charCodeAt(start) : NEWLINE;
    if (c0 === STAR) {
      if (header >= 0) return undefined;
      header = i;
    } else if ((end[i] as number) - start === 6 && t.startsWith('COMMIT', start)) {
      if (header < 0) return undefined;
      const first = header + 1;
      const split = i - first >= opts.minCommands ? planTable(lines, first, i, opts) : undefined;
      if (split === undefined) {
        const section = new Int32Array(i - first);
        for (let k = 0; k < section.length; k++) section[k] = first + k;
        sections.push({ header, lines: section });
      } else {
        changed = true;
        for (const l of split) sections.push({ header, lines: l });
      }
      header = -1;
    } else if (c0 === NEWLINE || c0 === HASH || header < 0) {
      return undefined;
    }
  }
  if (header >= 0 || !changed) return undefined;
  return { lines, sections };
}

const NEWLINE = 0x0a;
const STAR = 0x2a;
const HASH = 0x23;
const COLON = 0x3a;
const DASH = 0x2d;
const SPACE = 0x20;
const X = 0x58;
const J = 0x6a;
const G = 0x67;
// The one-letter commands whose second word is the chain: -A -I -D -R -X -F -Z.
const CHAIN_OPS: ReadonlySet<number> = new Set([0x41, 0x49, 0x44, 0x52, X, 0x46, 0x5a]);

/**
 * The lines of each section of one table (lines first..end-1), or undefined. A "group" is a
 * declared chain with its commands; groups are numbered in declaration order.
 */
const UNDECLARED = -1;
const DELETION = -2;
const DECLARATION = -3;

function planTable(
  lines: PayloadLines,
  first: number,
  last: number,
  opts: SplitOptions,
): Int32Array[] | undefined {
  const { parts, part, begin, end } = lines;
  const isDeclaration = (l: number): boolean =>
    (parts[part[l] as number] as string).charCodeAt(begin[l] as number) === COLON;
  const n = last - first;
  const ids = new Map<string, number>();
  const declLine = new Int32Array(n);
  const deleted = new Uint8Array(n);
  // Per line (relative to first): its group, or one of these.
  const lineGroup = new Int32Array(n);
  // Jumps between groups, one per line at most.
  const edgeFrom = new Int32Array(n);
  const edgeTo = new Int32Array(n);
  let edges = 0;
  let sawCommand = false;
  // Consecutive commands mostly act on the same chain: checking that one first saves a lookup.
  let lastName = '';
  let lastId = -1;
  for (let i = first; i < last; i++) {
    const r = i - first;
    const payload = parts[part[i] as number] as string;
    const start = begin[i] as number;
    const stop = end[i] as number;
    const c0 = payload.charCodeAt(start);
    if (c0 === COLON) {
      // A declaration after a command would flush what that command did: keep the order.
      if (sawCommand) return undefined;
      const name = payload.slice(start + 1, wordEnd(payload, start + 1, stop));
      if (ids.has(name)) return undefined;
      lineGroup[r] = DECLARATION;
      declLine[ids.size] = i;
      ids.set(name, ids.size);
      continue;
    }
    // Anything else than `-? CHAIN ...` (counters, long options, -N, -P): leave the payload whole.
    const op = payload.charCodeAt(start + 1);
    if (c0 !== DASH || payload.charCodeAt(start + 2) !== SPACE || !CHAIN_OPS.has(op)) return undefined;
    sawCommand = true;
    let id: number;
    if (lastId >= 0 && actsOn(payload, start, stop, lastName)) id = lastId;
    else {
      lastName = payload.slice(start + 3, wordEnd(payload, start + 3, stop));
      id = ids.get(lastName) ?? -1;
      lastId = id;
    }
    if (op === X) {
      lineGroup[r] = DELETION;
      if (id >= 0) deleted[id] = 1;
      continue;
    }
    lineGroup[r] = id < 0 ? UNDECLARED : id;
    if (id < 0) continue;
    const t = jumpTarget(payload, start, stop);
    const to = t === undefined ? undefined : ids.get(t);
    if (to === undefined || (edges > 0 && edgeFrom[edges - 1] === id && edgeTo[edges - 1] === to)) continue;
    edgeFrom[edges] = id;
    edgeTo[edges] = to;
    edges++;
  }
  const groups = ids.size;
  const depth = groupDepths(groups, deleted, edgeFrom.subarray(0, edges), edgeTo.subarray(0, edges));
  if (depth === undefined) return undefined;

  // Commands of live groups, grouped by group in payload order (counting sort).
  const commandStart = new Int32Array(groups + 1);
  for (let r = 0; r < n; r++) {
    const g = lineGroup[r] as number;
    if (g >= 0 && deleted[g] === 0) commandStart[g + 1]++;
  }
  for (let g = 0; g < groups; g++) commandStart[g + 1] += commandStart[g] as number;
  const commands = new Int32Array(commandStart[groups] as number);
  const fill = commandStart.slice(0, groups);
  const tail: number[] = [];
  const deletions: number[] = [];
  for (let r = 0; r < n; r++) {
    const g = lineGroup[r] as number;
    if (g === DECLARATION) continue;
    if (g === DELETION) deletions.push(first + r);
    else if (g === UNDECLARED || deleted[g] === 1) tail.push(first + r);
    else commands[fill[g]++] = first + r;
  }

  // Live groups by depth, then declaration order (counting sort again).
  let maxDepth = 0;
  for (let g = 0; g < groups; g++)
    if (deleted[g] === 0 && (depth[g] as number) > maxDepth) maxDepth = depth[g] as number;
  const byDepth = new Int32Array(maxDepth + 2);
  for (let g = 0; g < groups; g++) if (deleted[g] === 0) byDepth[(depth[g] as number) + 1]++;
  for (let d = 0; d <= maxDepth; d++) byDepth[d + 1] += byDepth[d] as number;
  const ordered = new Int32Array(byDepth[maxDepth + 1] as number);
  const place = byDepth.slice(0, maxDepth + 1);
  for (let g = 0; g < groups; g++) if (deleted[g] === 0) ordered[place[depth[g] as number]++] = g;

  const out: Int32Array[] = [];
  const section = (from: number, to: number, extra: readonly number[][]): void => {
    let size = to - from;
    for (let k = from; k < to; k++) {
      const g = ordered[k] as number;
      size += (commandStart[g + 1] as number) - (commandStart[g] as number);
    }
    for (const e of extra) size += e.length;
    if (size === 0) return;
    const lines = new Int32Array(size);
    let w = 0;
    for (let k = from; k < to; k++) lines[w++] = declLine[ordered[k] as number] as number;
    for (const e of extra) for (const l of e) if (isDeclaration(l)) lines[w++] = l;
    for (let k = from; k < to; k++) {
      const g = ordered[k] as number;
      for (let c = commandStart[g] as number; c < (commandStart[g + 1] as number); c++)
        lines[w++] = commands[c] as number;
    }
    for (const e of extra) for (const l of e) if (!isDeclaration(l)) lines[w++] = l;
    out.push(lines);
  };
  let from = 0;
  let size = 0;
  for (let k = 0; k < ordered.length; k++) {
    if (size >= opts.sectionCommands) {
      section(from, k, []);
      from = k;
      size = 0;
    }
    const g = ordered[k] as number;
    size += 1 + (commandStart[g + 1] as number) - (commandStart[g] as number);
  }
  section(from, ordered.length, []);
  // The last section: deleted chains (declared, so flushed, then `-X`), commands on chains the
  // payload does not declare (and any a deleted chain has), then the deletions.
  const doomed: number[] = [];
  for (let g = 0; g < groups; g++) if (deleted[g] === 1) doomed.push(declLine[g] as number);
  section(0, 0, [doomed, tail, deletions]);
  return out;
}

/** End of the word starting at `from` (a space or the line's end). */
function wordEnd(payload: string, from: number, stop: number): number {
  const space = payload.indexOf(' ', from);
  return space < 0 || space > stop ? stop : space;
}

/** Whether the command line [start, stop) acts on chain `name`: its second word is exactly it. */
function actsOn(payload: string, start: number, stop: number, name: string): boolean {
  if (!payload.startsWith(name, start + 3)) return false;
  const after = start + 3 + name.length;
  return after === stop || payload.charCodeAt(after) === SPACE;
}

/** The chain after the line's last `-j`/`-g`, if any (a comment cannot hold the real target: it comes last). */
function jumpTarget(payload: string, start: number, stop: number): string | undefined {
  // By hand, backwards from the end of the line: lastIndexOf would run on past the line's start
  // through the whole payload when the line has no jump.
  for (let k = stop - 4; k >= start; k--) {
    if (
      payload.charCodeAt(k) !== SPACE ||
      payload.charCodeAt(k + 1) !== DASH ||
      payload.charCodeAt(k + 3) !== SPACE
    )
      continue;
    const flag = payload.charCodeAt(k + 2);
    if (flag !== J && flag !== G) continue;
    return payload.slice(k + 4, wordEnd(payload, k + 4, stop));
  }
  return undefined;
}

/**
 * Each group's depth (0: jumps to no group; else 1 + its deepest target's), by an iterative DFS
 * (recursion depth would be the jump-path length, which a payload chooses). Undefined on a cycle
 * or on a jump to a deleted chain.
 */
function groupDepths(
  groups: number,
  deleted: Uint8Array,
  edgeFrom: Int32Array,
  edgeTo: Int32Array,
): Int32Array | undefined {
  const outStart = new Int32Array(groups + 1);
  for (const f of edgeFrom) outStart[f + 1]++;
  for (let g = 0; g < groups; g++) outStart[g + 1] += outStart[g] as number;
  const targets = new Int32Array(edgeTo.length);
  const fill = outStart.slice(0, groups);
  for (let e = 0; e < edgeFrom.length; e++) targets[fill[edgeFrom[e] as number]++] = edgeTo[e] as number;

  const UNKNOWN = -1;
  const VISITING = -2;
  const depth = new Int32Array(groups).fill(UNKNOWN);
  const stack = new Int32Array(groups);
  const next = new Int32Array(groups);
  for (let root = 0; root < groups; root++) {
    if (depth[root] !== UNKNOWN) continue;
    let top = 0;
    stack[0] = root;
    next[0] = outStart[root] as number;
    depth[root] = VISITING;
    while (top >= 0) {
      const g = stack[top] as number;
      const e = next[top] as number;
      if (e < (outStart[g + 1] as number)) {
        next[top] = e + 1;
        const t = targets[e] as number;
        if (deleted[t] === 1 || depth[t] === VISITING) return undefined;
        if (depth[t] === UNKNOWN) {
          depth[t] = VISITING;
          top++;
          stack[top] = t;
          next[top] = outStart[t] as number;
        }
        continue;
      }
      let d = 0;
      for (let k = outStart[g] as number; k < (outStart[g + 1] as number); k++) {
        const td = (depth[targets[k] as number] as number) + 1;
        if (td > d) d = td;
      }
      depth[g] = d;
      top--;
    }
  }
  return depth;
}
