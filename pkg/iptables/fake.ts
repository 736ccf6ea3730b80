/**
 * An in-memory Iptables for tests (upstream: pkg/util/iptables/testing/fake.go), built on the
 * same parser as everything else. It applies restore payloads with the kernel's semantics, so
 * that the proxier's partial syncs can be tested against it and fail where the kernel fails:
 *
 * - `--noflush`: a `:CHAIN` line creates a user chain or empties it; a built-in chain's line only
 *   sets its policy; chains the payload does not mention are untouched. Without `--noflush` each
 *   table named in the payload is emptied first (user chains deleted, built-ins flushed).
 * - `-j`/`-g` to a chain that does not exist fails, as does a NAT target outside the nat table.
 * - `-X` fails for a built-in chain, a missing chain, a non-empty chain, and a chain that a rule
 *   of another chain still jumps to.
 * - Each table is committed at its COMMIT: when one fails, it is left exactly as it was, the
 *   tables before it stay applied and those after it are not looked at (iptables-restore stops).
 *
 * Differences from the kernel, on purpose: rules are compared word for word (the kernel compares
 * its canonical form, so `-d 10.0.0.1` and `-d 10.0.0.1/32` are one rule there, two here); the
 * parser is stricter (a rule needs a `:CHAIN` line or a built-in chain, see parse.ts); rules are
 * printed as written, not in iptables-save's canonical argument order.
 */
import { IptablesError, type IptablesErrorCode, IptablesParseError, RestoreError } from './errors.ts';
import {
  BUILTIN_CHAINS,
  type Counters,
  formatWords,
  isBuiltinChain,
  type ParsedTable,
  parseDumpPartial,
  ruleTarget,
  TARGET_EXTENSIONS,
} from './parse.ts';
import { payloadText } from './payload.ts';
import type { Backend, Family, Iptables, RestoreOptions, RestorePayload, Table } from './types.ts';
import { RANDOM_FULLY_MIN_VERSION, versionAtLeast } from './version.ts';

interface ChainState {
  readonly name: string;
  readonly builtin: boolean;
  policy: string;
  counters: Counters;
  rules: string[][];
}

type TableState = Map<string, ChainState>;

export interface RestoreCall {
  /** The `-T` table of restore(); undefined for restoreAll(). */
  readonly table: Table | undefined;
  readonly payload: string;
  readonly opts: RestoreOptions;
}

export interface FakeIptables extends Iptables {
  /** Every restore()/restoreAll() call, in order, including failed ones. */
  readonly restores: readonly RestoreCall[];
  /** The rules of a chain as word arrays, or undefined when the chain does not exist. */
  rulesOf(table: Table, chain: string): string[][] | undefined;
  /** The chains of a table: built-ins first, then user chains sorted by name. */
  chainsOf(table: Table): string[];
  /** The next restore fails with this stderr and changes nothing (tests of the error path). */
  failNextRestore(stderr: string): void;
  /** Overrides what hasRandomFully() answers. */
  setHasRandomFully(value: boolean): void;
}

export interface FakeIptablesOptions {
  readonly family?: Family;
  readonly backend?: Backend;
  /** What version() reports; default 1.8.9. */
  readonly version?: string;
}

// The kernel accepts these only in the nat table ("DNAT target: only valid in nat table").
const NAT_ONLY_TARGETS = new Set(['DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'NETMAP']);
const TABLE_ORDER = ['filter', 'nat', 'mangle', 'raw', 'security'];

/** A rule the kernel would refuse; `code` is what the runner would classify it as. */
class Refusal extends Error {
  readonly code: IptablesErrorCode;
  constructor(code: IptablesErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

function newTable(name: string): TableState {
  const builtins = BUILTIN_CHAINS[name];
  if (!builtins)
    throw new Refusal('not-found', `can't initialize iptables table \`${name}': Table does not exist`);
  const t: TableState = new Map();
  for (const c of builtins)
    t.set(c, { name: c, builtin: true, policy: 'ACCEPT', counters: zero(), rules: [] });
  return t;
}

function zero(): Counters {
  return { packets: 0, bytes: 0 };
}

function cloneTable(t: TableState): TableState {
  const out: TableState = new Map();
  for (const [k, c] of t) out.set(k, { ...c, rules: c.rules.map((r) => [...r]) });
  return out;
}

function sameWords(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((w, i) => w === b[i]);
}

function getChain(t: TableState, chain: string): ChainState {
  const c = t.get(chain);
  if (!c) throw new Refusal('not-found', `No chain/target/match by that name: chain "${chain}"`);
  return c;
}

/** Checks a rule's target as the kernel would when the rule is added. */
function checkTarget(table: string, t: TableState, args: readonly string[]): void {
  const target = ruleTarget(args);
  if (!target) return;
  const name = target.target;
  if (TARGET_EXTENSIONS.has(name)) {
    if (NAT_ONLY_TARGETS.has(name) && table !== 'nat') {
      throw new Refusal('exec-failed', `${name} target: only valid in nat table, not ${table}`);
    }
    return;
  }
  if (isBuiltinChain(table, name))
    throw new Refusal('exec-failed', `cannot jump to built-in chain "${name}"`);
  if (!t.has(name)) {
    throw new Refusal(
      'not-found',
      `Couldn't load target \`${name}': No such file or directory (no chain "${name}")`,
    );
  }
}

/** The chains holding a rule that jumps to `chain` (other than `chain` itself). */
function referrers(t: TableState, chain: string): string[] {
  const out: string[] = [];
  for (const c of t.values()) {
    if (c.name !== chain && c.rules.some((r) => ruleTarget(r)?.target === chain)) out.push(c.name);
  }
  return out;
}

function deleteChainIn(t: TableState, chain: string): void {
  const c = getChain(t, chain);
  if (c.builtin) throw new Refusal('exec-failed', `cannot delete built-in chain "${chain}"`);
  if (c.rules.length > 0)
    throw new Refusal('exec-failed', `Directory not empty: chain "${chain}" still has rules`);
  const from = referrers(t, chain);
  if (from.length > 0) {
    throw new Refusal(
      'exec-failed',
      `Too many links: chain "${chain}" is still referenced by rules in ${from.join(', ')}`,
    );
  }
  t.delete(chain);
}

/** Applies one parsed table section to a copy of `current`; throws {line, Refusal}. */
function applyTable(current: TableState | undefined, section: ParsedTable, opts: RestoreOptions): TableState {
  const fail = (line: number, e: unknown): never => {
    throw Object.assign(new Error('refused'), { line, refusal: e });
  };
  let t: TableState;
  try {
    t = current ? cloneTable(current) : newTable(section.name);
  } catch (e) {
    return fail(section.line, e);
  }
  if (opts.flush) {
    for (const [name, c] of t) {
      if (c.builtin) c.rules = [];
      else t.delete(name);
    }
  }
  type Step = { line: number; run: () => void };
  const steps: Step[] = [
    ...section.chains.map((c) => ({
      line: c.line,
      run: () => {
        const existing = t.get(c.name);
        if (existing?.builtin) {
          // --noflush never empties a built-in chain; its line sets the policy only.
          if (c.policy !== '-') existing.policy = c.policy;
          if (opts.counters) existing.counters = c.counters;
        } else if (existing) {
          existing.rules = [];
          existing.counters = opts.counters ? c.counters : zero();
        } else {
          t.set(c.name, {
            name: c.name,
            builtin: false,
            policy: '-',
            counters: opts.counters ? c.counters : zero(),
            rules: [],
          });
        }
      },
    })),
    ...section.rules.map((r) => ({
      line: r.line,
      run: () => {
        switch (r.op) {
          case '-A':
            checkTarget(section.name, t, r.args);
            getChain(t, r.chain).rules.push([...r.args]);
            break;
          case '-I': {
            const c = getChain(t, r.chain);
            const pos = r.position ?? 1;
            if (pos > c.rules.length + 1)
              throw new Refusal('exec-failed', `Index of insertion too big: ${pos}`);
            checkTarget(section.name, t, r.args);
            c.rules.splice(pos - 1, 0, [...r.args]);
            break;
          }
          case '-R': {
            const c = getChain(t, r.chain);
            const pos = r.position ?? 0;
            if (pos > c.rules.length)
              throw new Refusal('exec-failed', `Index of replacement too big: ${pos}`);
            checkTarget(section.name, t, r.args);
            c.rules[pos - 1] = [...r.args];
            break;
          }
          case '-D': {
            const c = getChain(t, r.chain);
            const idx =
              r.position !== undefined ? r.position - 1 : c.rules.findIndex((x) => sameWords(x, r.args));
            if (idx < 0 || idx >= c.rules.length) {
              throw new Refusal('not-found', 'Bad rule (does a matching rule exist in that chain?)');
            }
            c.rules.splice(idx, 1);
            break;
          }
          case '-N':
            if (t.has(r.chain)) throw new Refusal('exec-failed', `Chain already exists: "${r.chain}"`);
            t.set(r.chain, { name: r.chain, builtin: false, policy: '-', counters: zero(), rules: [] });
            break;
          case '-X':
            deleteChainIn(t, r.chain);
            break;
          case '-F':
            getChain(t, r.chain).rules = [];
            break;
          case '-Z':
            getChain(t, r.chain).counters = zero();
            break;
          case '-P': {
            const c = getChain(t, r.chain);
            if (!c.builtin) throw new Refusal('exec-failed', `Bad built-in chain name "${r.chain}"`);
            c.policy = r.args[0]!;
            break;
          }
        }
      },
    })),
  ].sort((a, b) => a.line - b.line);
  for (const s of steps) {
    try {
      s.run();
    } catch (e) {
      fail(s.line, e);
    }
  }
  return t;
}

/** iptables-save-like text of one table. */
function formatTable(name: string, t: TableState): string {
  const builtins = BUILTIN_CHAINS[name] ?? [];
  const users = [...t.values()].filter((c) => !c.builtin).map((c) => c.name);
  // Plain code-unit order, as legacy iptables-save lists user chains.
  users.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const order = [...builtins.filter((c) => t.has(c)), ...users];
  const out = [`*${name}`];
  for (const c of order) {
    const s = t.get(c)!;
    out.push(`:${c} ${s.builtin ? s.policy : '-'} [${s.counters.packets}:${s.counters.bytes}]`);
  }
  for (const c of order) for (const r of t.get(c)!.rules) out.push(`-A ${c} ${formatWords(r)}`);
  out.push('COMMIT');
  return `${out.join('\n')}\n`;
}

export function createFakeIptables(opts: FakeIptablesOptions = {}): FakeIptables {
  const family = opts.family ?? 'IPv4';
  const backend = opts.backend ?? 'legacy';
  const version = opts.version ?? '1.8.9';
  let randomFully = versionAtLeast(version, RANDOM_FULLY_MIN_VERSION);
  let nextRestoreFailure: string | undefined;
  const restores: RestoreCall[] = [];
  // As upstream's fake: nat, filter and an empty mangle exist from the start; others on first use.
  const tables = new Map<string, TableState>([
    ['filter', newTable('filter')],
    ['nat', newTable('nat')],
    ['mangle', newTable('mangle')],
  ]);

  function tableFor(name: string): TableState {
    let t = tables.get(name);
    if (!t) {
      try {
        t = newTable(name);
      } catch (e) {
        throw toIptablesError(e);
      }
      tables.set(name, t);
    }
    return t;
  }

  function toIptablesError(e: unknown): IptablesError {
    if (e instanceof Refusal) return new IptablesError(e.code, e.message, { stderr: e.message, exitCode: 1 });
    return e as IptablesError;
  }

  /** Runs a single-command operation on a table (as one iptables invocation would). */
  function op<T>(table: string, f: (t: TableState) => T): T {
    try {
      return f(tableFor(table));
    } catch (e) {
      throw toIptablesError(e);
    }
  }

  async function restoreImpl(
    only: Table | undefined,
    given: RestorePayload,
    o: RestoreOptions,
  ): Promise<void> {
    const payload = payloadText(given);
    restores.push({ table: only, payload, opts: { ...o } });
    if (nextRestoreFailure !== undefined) {
      const stderr = nextRestoreFailure;
      nextRestoreFailure = undefined;
      throw new RestoreError({ payload, stderr, exitCode: 1 });
    }
    const { dump, error } = parseDumpPartial(payload);
    for (const section of dump.tables) {
      if (only !== undefined && section.name !== only) continue;
      let next: TableState;
      try {
        next = applyTable(tables.get(section.name), section, o);
      } catch (e) {
        const { line, refusal } = e as { line: number; refusal: unknown };
        const reason = refusal instanceof Error ? refusal.message : String(refusal);
        throw new RestoreError({
          payload,
          line,
          stderr: `iptables-restore: line ${line} failed: ${reason}\n`,
          exitCode: 1,
        });
      }
      // COMMIT: the table changes as a whole.
      tables.set(section.name, next);
    }
    if (error instanceof IptablesParseError) {
      throw new RestoreError({
        payload,
        line: error.line,
        stderr: `iptables-restore: ${error.reason}\nError occurred at line: ${error.line}\n`,
        exitCode: 2,
      });
    }
  }

  return {
    family,
    backend,
    restores,
    restoreAll: (payload, o) => restoreImpl(undefined, payload, o),
    restore: (table, payload, o) => restoreImpl(table, payload, o),

    save: async (table) => op(table, (t) => formatTable(table, t)),
    saveAll: async () =>
      TABLE_ORDER.filter((n) => tables.has(n))
        .map((n) => formatTable(n, tables.get(n)!))
        .join(''),

    ensureChain: async (table, chain) =>
      op(table, (t) => {
        if (t.has(chain)) return true;
        t.set(chain, { name: chain, builtin: false, policy: '-', counters: zero(), rules: [] });
        return false;
      }),

    ensureRule: async (position, table, chain, args) =>
      op(table, (t) => {
        const c = getChain(t, chain);
        if (c.rules.some((r) => sameWords(r, args))) return true;
        if (args.some((w) => w.includes('\n')))
          throw new Refusal('exec-failed', 'a rule word contains a newline');
        checkTarget(table, t, args);
        if (position === 'prepend') c.rules.unshift([...args]);
        else c.rules.push([...args]);
        return false;
      }),

    deleteRule: async (table, chain, args) =>
      op(table, (t) => {
        const c = t.get(chain);
        const idx = c ? c.rules.findIndex((r) => sameWords(r, args)) : -1;
        if (c && idx >= 0) c.rules.splice(idx, 1);
      }),

    deleteChain: async (table, chain) =>
      op(table, (t) => {
        const c = t.get(chain);
        if (!c) return;
        if (c.builtin) throw new Refusal('exec-failed', `cannot delete built-in chain "${chain}"`);
        // Two iptables calls, as in the runner: when -X fails, the -F has happened.
        c.rules = [];
        deleteChainIn(t, chain);
      }),

    chainExists: async (table, chain) => op(table, (t) => t.has(chain)),

    flushChain: async (table, chain) =>
      op(table, (t) => {
        getChain(t, chain).rules = [];
      }),

    version: async () => version,
    hasRandomFully: async () => randomFully,

    rulesOf: (table, chain) =>
      tables
        .get(table)
        ?.get(chain)
        ?.rules.map((r) => [...r]),
    chainsOf: (table) => {
      const t = tables.get(table);
      if (!t) return [];
      const text = formatTable(table, t);
      return text
        .split('\n')
        .filter((l) => l.startsWith(':'))
        .map((l) => l.slice(1, l.indexOf(' ')));
    },
    failNextRestore: (stderr) => {
      nextRestoreFailure = stderr;
    },
    setHasRandomFully: (v) => {
      randomFully = v;
    },
  };
}
