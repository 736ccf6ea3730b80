/**
 * Parser for iptables-save output and iptables-restore input (upstream's model:
 * pkg/util/iptables/testing/parse.go). It is an explicit state machine over lines:
 *
 *   outside ──`*table`──▶ inside ──`COMMIT`──▶ outside
 *                          │  `:CHAIN POLICY [p:b]`, `-A/-I/-D/-R/-N/-X/-F/-Z/-P ...` stay inside
 *
 * Blank lines and `#` comments are skipped anywhere. It refuses what cannot be meant: a table
 * without COMMIT, a rule outside a table, a rule or `-X` for a chain the table section neither
 * declares nor has built in, a chain that the same section both deletes and fills, an open quote.
 * Every error names the offending line (IptablesParseError.line, 1-based).
 */
import { IptablesParseError } from './errors.ts';
import { tokenizeLine } from './tokenize.ts';

export { formatWords, quoteWord, tokenize, tokenizeLine } from './tokenize.ts';

export interface Counters {
  readonly packets: number;
  readonly bytes: number;
}

export interface ParsedChain {
  readonly name: string;
  /** `ACCEPT`/`DROP` for built-in chains, `-` for user-defined ones. */
  readonly policy: string;
  readonly counters: Counters;
  readonly line: number;
}

/** The commands iptables-restore accepts inside a table, in their short spelling. */
export type RuleOp = '-A' | '-I' | '-D' | '-R' | '-N' | '-X' | '-F' | '-Z' | '-P';

export interface ParsedRule {
  readonly op: RuleOp;
  readonly chain: string;
  /**
   * The words after the chain name (and after the rule number of `-I n`, `-R n`, `-D n`),
   * tokenized: quotes removed, escapes resolved. For `-P` it is the policy.
   */
  readonly args: string[];
  /** The rule number of `-I CHAIN n ...`, `-R CHAIN n ...` or `-D CHAIN n`. */
  readonly position?: number;
  /** `[packets:bytes]` written before the command (iptables-save -c / restore --counters). */
  readonly counters?: Counters;
  readonly line: number;
}

export interface ParsedTable {
  readonly name: string;
  /** Line of `*name`. */
  readonly line: number;
  /** Line of its COMMIT. */
  readonly commitLine: number;
  /** Chain lines, in input order. */
  readonly chains: ParsedChain[];
  /** Commands, in input order. */
  readonly rules: ParsedRule[];
}

export interface ParsedDump {
  readonly tables: ParsedTable[];
}

/** Built-in chains of each table (those need no `:CHAIN` line before a rule uses them). */
export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

export function isBuiltinChain(table: string, chain: string): boolean {
  return BUILTIN_CHAINS[table]?.includes(chain) ?? false;
}

/** Targets provided by extensions: any other name after `-j`/`-g` must be a chain. */
export const TARGET_EXTENSIONS: ReadonlySet<string> = new Set([
  'ACCEPT',
  'DROP',
  'RETURN',
  'QUEUE',
  'REJECT',
  'DNAT',
  'SNAT',
  'MASQUERADE',
  'REDIRECT',
  'NETMAP',
  'MARK',
  'CONNMARK',
  'LOG',
  'NFLOG',
  'NFQUEUE',
  'NOTRACK',
  'CT',
  'TPROXY',
  'TCPMSS',
  'CLASSIFY',
  'CHECKSUM',
  'TRACE',
  'AUDIT',
  'DSCP',
  'TOS',
  'TTL',
  'HL',
  'SET',
  'SECMARK',
  'CONNSECMARK',
  'IDLETIMER',
]);

const LONG_OPS: Readonly<Record<string, RuleOp>> = {
  '--append': '-A',
  '--insert': '-I',
  '--delete': '-D',
  '--replace': '-R',
  '--new-chain': '-N',
  '--delete-chain': '-X',
  '--flush': '-F',
  '--zero': '-Z',
  '--policy': '-P',
};
const SHORT_OPS = new Set<string>(['-A', '-I', '-D', '-R', '-N', '-X', '-F', '-Z', '-P']);

// `:NAME POLICY [p:b]`; iptables-restore also takes the line without counters.
const CHAIN_LINE = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$/;
const COUNTERS_PREFIX = /^\[(\d+):(\d+)\]\s+/;
const TABLE_LINE = /^\*([A-Za-z0-9_-]+)\s*$/;

/** Parses a whole dump or payload; throws IptablesParseError at the first bad line. */
export function parseDump(text: string): ParsedDump {
  const r = parseDumpPartial(text);
  if (r.error) throw r.error;
  return r.dump;
}

/**
 * Like parseDump, but on an error also returns the tables completed (COMMITted) before it, which
 * is what iptables-restore has applied by then: it commits table by table.
 */
export function parseDumpPartial(text: string): { dump: ParsedDump; error?: IptablesParseError } {
  const tables: ParsedTable[] = [];
  try {
    runParser(text, tables);
    return { dump: { tables } };
  } catch (e) {
    if (e instanceof IptablesParseError) return { dump: { tables }, error: e };
    throw e;
  }
}

interface OpenTable {
  name: string;
  line: number;
  chains: ParsedChain[];
  rules: ParsedRule[];
  declared: Set<string>;
  deleted: Set<string>;
  filled: Set<string>;
}

type State = { kind: 'outside' } | { kind: 'inside'; table: OpenTable };

function runParser(text: string, done: ParsedTable[]): void {
  const lines = text.split('\n');
  // A trailing newline leaves one empty element that is not a line of input.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  let state: State = { kind: 'outside' };

  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!.replace(/\r$/, '');
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;

    switch (state.kind) {
      case 'outside': {
        const m = TABLE_LINE.exec(line);
        if (!m) {
          const what =
            line.startsWith('-') || line.startsWith(':')
              ? 'rule or chain outside a table'
              : 'expected "*table"';
          throw new IptablesParseError(n, `${what}: ${JSON.stringify(line)}`);
        }
        state = {
          kind: 'inside',
          table: {
            name: m[1]!,
            line: n,
            chains: [],
            rules: [],
            declared: new Set(),
            deleted: new Set(),
            filled: new Set(),
          },
        };
        break;
      }
      case 'inside': {
        const t = state.table;
        if (line === 'COMMIT') {
          done.push({ name: t.name, line: t.line, commitLine: n, chains: t.chains, rules: t.rules });
          state = { kind: 'outside' };
        } else if (line.startsWith('*')) {
          throw new IptablesParseError(
            n,
            `table "${t.name}" (line ${t.line}) has no COMMIT before ${JSON.stringify(line)}`,
          );
        } else if (line.startsWith(':')) {
          t.chains.push(parseChainLine(t, line, n));
        } else {
          t.rules.push(parseCommandLine(t, line, n));
        }
        break;
      }
    }
  }
  if (state.kind === 'inside') {
    throw new IptablesParseError(
      lines.length + 1,
      `table "${state.table.name}" (line ${state.table.line}) has no COMMIT`,
    );
  }
}

function parseChainLine(t: OpenTable, line: string, n: number): ParsedChain {
  const m = CHAIN_LINE.exec(line);
  if (!m) throw new IptablesParseError(n, `bad chain line ${JSON.stringify(line)}`);
  const name = m[1]!;
  const policy = m[2]!;
  if (policy !== '-' && !isBuiltinChain(t.name, name)) {
    throw new IptablesParseError(n, `policy ${policy} on user-defined chain "${name}"`);
  }
  t.declared.add(name);
  return { name, policy, counters: { packets: Number(m[3] ?? 0), bytes: Number(m[4] ?? 0) }, line: n };
}

function parseCommandLine(t: OpenTable, line: string, n: number): ParsedRule {
  let rest = line;
  let counters: Counters | undefined;
  const c = COUNTERS_PREFIX.exec(rest);
  if (c) {
    counters = { packets: Number(c[1]), bytes: Number(c[2]) };
    rest = rest.slice(c[0].length);
  }
  const { words, unterminatedQuote } = tokenizeLine(rest);
  if (unterminatedQuote) throw new IptablesParseError(n, `unterminated quote in ${JSON.stringify(line)}`);
  const first = words[0] ?? '';
  const op = SHORT_OPS.has(first) ? (first as RuleOp) : LONG_OPS[first];
  if (!op)
    throw new IptablesParseError(n, `unknown command ${JSON.stringify(first)} in ${JSON.stringify(line)}`);
  const chain = words[1];
  if (chain === undefined || chain === '') throw new IptablesParseError(n, `${op} needs a chain name`);
  let args = words.slice(2);

  // A command may name a chain the input does not declare: under --noflush it acts on the chain
  // as it exists in the kernel (incremental syncs edit KUBE-SERVICES without flushing it by a
  // `:KUBE-SERVICES` line). Whether the chain exists is decided when the input is applied.
  if (op === '-N') t.declared.add(chain);

  let position: number | undefined;
  if ((op === '-I' || op === '-R' || op === '-D') && args.length > 0 && /^\d+$/.test(args[0]!)) {
    position = Number(args[0]);
    args = args.slice(1);
    if (position < 1)
      throw new IptablesParseError(n, `rule number must be at least 1 in ${JSON.stringify(line)}`);
  }
  if (op === '-R' && position === undefined) throw new IptablesParseError(n, '-R needs a rule number');
  if ((op === '-A' || op === '-I' || op === '-R') && args.length === 0) {
    throw new IptablesParseError(n, `${op} ${chain} has no rule`);
  }
  if (op === '-P' && args.length !== 1) throw new IptablesParseError(n, '-P needs exactly one policy');

  if (op === '-X') {
    if (t.filled.has(chain))
      throw new IptablesParseError(n, `chain "${chain}" is deleted after rules were added to it`);
    t.deleted.add(chain);
  } else if (op === '-A' || op === '-I' || op === '-R') {
    if (t.deleted.has(chain))
      throw new IptablesParseError(n, `rule added to chain "${chain}", which this table deletes`);
    t.filled.add(chain);
  }

  return {
    op,
    chain,
    args,
    line: n,
    ...(position !== undefined ? { position } : {}),
    ...(counters ? { counters } : {}),
  };
}

/**
 * Names of the chains declared for `table` in iptables-save output, in order. A plain scan, not
 * a full parse: it runs on every sync (stale-chain detection) over possibly large dumps, and
 * rules it does not need to understand must not make it fail.
 */
export function chainNamesOf(saveText: string, table: string): string[] {
  const names: string[] = [];
  let inside = false;
  for (const raw of saveText.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inside = line.slice(1) === table;
    } else if (line === 'COMMIT') {
      inside = false;
    } else if (inside && line.startsWith(':')) {
      const end = line.search(/\s/);
      names.push(end === -1 ? line.slice(1) : line.slice(1, end));
    }
  }
  return names;
}

/** The table called `name`, or undefined. */
export function findTable(dump: ParsedDump, name: string): ParsedTable | undefined {
  return dump.tables.find((t) => t.name === name);
}

/** The `-A` rules of `chain` in `table`, as word arrays (handy for assertions). */
export function rulesOf(dump: ParsedDump, table: string, chain: string): string[][] {
  return (findTable(dump, table)?.rules ?? [])
    .filter((r) => r.op === '-A' && r.chain === chain)
    .map((r) => r.args);
}

/**
 * The target of a rule's words: the word after `-j`/`--jump` or `-g`/`--goto`. A comment's text
 * is skipped so that a comment reading "-j X" is not taken for a jump.
 */
export function ruleTarget(args: readonly string[]): { target: string; goto: boolean } | undefined {
  for (let i = 0; i < args.length; i++) {
    const w = args[i];
    if (w === '--comment') {
      i++;
    } else if ((w === '-j' || w === '--jump' || w === '-g' || w === '--goto') && i + 1 < args.length) {
      return { target: args[i + 1]!, goto: w === '-g' || w === '--goto' };
    }
  }
  return undefined;
}
