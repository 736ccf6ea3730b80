/**
 * From iptables text (an `iptables-save` dump, or a restore payload applied to empty tables) to
 * rules the tracer can evaluate. Every rule is compiled once into its matches and its target;
 * what the tracer does not understand is kept as a `problem` on the rule rather than refused up
 * front, because a live dump may hold foreign rules (Docker, CNI plugins) that a given packet
 * never reaches. The tracer throws when it reaches such a rule and its outcome depends on the
 * unknown part (see tracer.ts).
 *
 * The option spellings accepted are those kube-proxy writes and those iptables-save prints back
 * (`-d 10.0.0.1/32`, `--set-xmark 0x4000/0x4000`, `--probability 0.50000000000`, `-m recent
 * --mask 255.255.255.255 --rsource`, ...).
 */
import { formatWords, type ParsedDump, parseDump, TARGET_EXTENSIONS } from '../../pkg/iptables/parse.ts';
import { type IPFamily, type ParsedCIDR, type ParsedIP, parseCIDR, parseIP } from '../../pkg/net/ip.ts';
import { TraceError } from './errors.ts';

export type Verdict = 'ACCEPT' | 'DROP' | 'REJECT';

export type Match =
  | {
      readonly kind: 'address';
      readonly which: 'src' | 'dst';
      readonly negated: boolean;
      readonly cidr: ParsedCIDR;
    }
  | { readonly kind: 'protocol'; readonly negated: boolean; readonly protocol: string }
  | {
      readonly kind: 'port';
      readonly which: 'src' | 'dst';
      readonly negated: boolean;
      readonly from: number;
      readonly to: number;
    }
  | {
      readonly kind: 'addrtype';
      readonly which: 'src' | 'dst';
      readonly negated: boolean;
      readonly types: readonly string[];
    }
  | { readonly kind: 'mark'; readonly negated: boolean; readonly value: number; readonly mask: number }
  | { readonly kind: 'ctstate'; readonly negated: boolean; readonly states: readonly string[] }
  | {
      readonly kind: 'interface';
      readonly which: 'in' | 'out';
      readonly negated: boolean;
      readonly name: string;
    }
  /** `-m statistic --mode random`: the tracer follows both outcomes. */
  | { readonly kind: 'statistic'; readonly probability: number }
  /** `-m recent`: `--rcheck`/`--update` never match (no history), `--set` matches and records. */
  | { readonly kind: 'recent'; readonly op: 'check' | 'set'; readonly name: string };

export type MarkOp = 'or' | 'xor' | 'and' | 'set';

export type Target =
  | { readonly kind: 'jump'; readonly chain: string; readonly goto: boolean }
  | { readonly kind: 'verdict'; readonly verdict: Verdict }
  | { readonly kind: 'return' }
  | { readonly kind: 'dnat'; readonly ip: ParsedIP; readonly port: number | undefined }
  | { readonly kind: 'masquerade' }
  | { readonly kind: 'snat'; readonly to: string }
  /** MARK: mark = (mark AND NOT clear) XOR flip; every MARK option reduces to this form. */
  | { readonly kind: 'mark'; readonly clear: number; readonly flip: number; readonly op: MarkOp }
  /** LOG, NFLOG: no effect on the packet. */
  | { readonly kind: 'log'; readonly name: string };

export interface CompiledRule {
  readonly table: string;
  readonly chain: string;
  /** 1-based position in its chain. */
  readonly position: number;
  /** The rule as `-A CHAIN words...`. */
  readonly text: string;
  /** The comment, if any (`-m comment --comment`). */
  readonly comment: string | undefined;
  readonly matches: readonly Match[];
  readonly target: Target | undefined;
  /** Why the tracer cannot evaluate this rule fully; undefined when it can. */
  readonly problem:
    | { readonly code: 'unsupported-match' | 'unsupported-target'; readonly reason: string }
    | undefined;
}

export interface Chain {
  readonly name: string;
  /** Policy of a built-in chain (`ACCEPT`/`DROP`); undefined for user chains. */
  readonly policy: string | undefined;
  readonly rules: readonly CompiledRule[];
}

export interface RuleTable {
  readonly name: string;
  readonly chains: ReadonlyMap<string, Chain>;
}

/** The tables of one IP family. */
export interface RuleSet {
  readonly tables: ReadonlyMap<string, RuleTable>;
}

const BUILTINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

/** Parses `text` with the shared iptables parser and compiles it. */
export function ruleSetFromText(text: string): RuleSet {
  return ruleSetFromDump(parseDump(text));
}

interface MutableChain {
  name: string;
  policy: string | undefined;
  rules: string[][];
}

/**
 * Applies the dump's commands to empty tables (as `iptables-restore` would, which for an
 * `iptables-save` dump is just the `-A` lines) and compiles the result.
 */
export function ruleSetFromDump(dump: ParsedDump): RuleSet {
  const tables = new Map<string, RuleTable>();
  for (const t of dump.tables) {
    if (tables.has(t.name)) {
      throw new TraceError(
        'unsupported-rules',
        `table "${t.name}" appears twice; give the tables of one IP family only`,
      );
    }
    const chains = new Map<string, MutableChain>();
    for (const b of BUILTINS[t.name] ?? []) chains.set(b, { name: b, policy: 'ACCEPT', rules: [] });
    const get = (name: string, line: number): MutableChain => {
      const c = chains.get(name);
      if (!c)
        throw new TraceError(
          'missing-chain',
          `line ${line}: chain "${name}" does not exist in table ${t.name}`,
        );
      return c;
    };
    for (const c of t.chains) {
      const existing = chains.get(c.name);
      if (existing) {
        // Upstream's fake prints built-in chains as `:INPUT - [0:0]`: no policy means ACCEPT.
        if (existing.policy !== undefined) existing.policy = c.policy === '-' ? 'ACCEPT' : c.policy;
        else existing.rules = [];
      } else {
        chains.set(c.name, { name: c.name, policy: undefined, rules: [] });
      }
    }
    for (const r of t.rules) {
      switch (r.op) {
        case '-A':
          get(r.chain, r.line).rules.push(r.args);
          break;
        case '-I': {
          const c = get(r.chain, r.line);
          c.rules.splice((r.position ?? 1) - 1, 0, r.args);
          break;
        }
        case '-N':
          if (!chains.has(r.chain)) chains.set(r.chain, { name: r.chain, policy: undefined, rules: [] });
          break;
        case '-X':
          chains.delete(r.chain);
          break;
        case '-F':
          get(r.chain, r.line).rules = [];
          break;
        case '-P':
          get(r.chain, r.line).policy = r.args[0];
          break;
        default:
          throw new TraceError('unsupported-rules', `line ${r.line}: ${r.op} is not supported by the tracer`);
      }
    }
    const compiled = new Map<string, Chain>();
    for (const c of chains.values()) {
      compiled.set(c.name, {
        name: c.name,
        policy: c.policy,
        rules: c.rules.map((words, i) => compileRule(t.name, c.name, i + 1, words)),
      });
    }
    tables.set(t.name, { name: t.name, chains: compiled });
  }
  return { tables };
}

/** A mark value: hex (`0x4000`) or decimal, 32 bits. */
function parseMarkValue(s: string): number | undefined {
  if (!/^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$/.test(s)) return undefined;
  const v = Number(s);
  return v <= 0xffffffff ? v >>> 0 : undefined;
}

function parseValueMask(s: string): { value: number; mask: number | undefined } | undefined {
  const [v, m, ...rest] = s.split('/');
  if (rest.length > 0 || v === undefined) return undefined;
  const value = parseMarkValue(v);
  const mask = m === undefined ? undefined : parseMarkValue(m);
  if (value === undefined || (m !== undefined && mask === undefined)) return undefined;
  return { value, mask };
}

/** `-s`/`-d` values: an address or a CIDR with a prefix length. */
function parseAddressMatch(s: string): ParsedCIDR | undefined {
  if (s.includes('/')) return parseCIDR(s);
  const ip = parseIP(s);
  if (!ip) return undefined;
  return parseCIDR(`${ip.text}/${ip.family === 'IPv4' ? 32 : 128}`);
}

function parsePortRange(s: string): { from: number; to: number } | undefined {
  const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(s);
  if (!m) return undefined;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from > 65535 || to > 65535 || to < from) return undefined;
  return { from, to };
}

/** `ip`, `ip:port`, `[ipv6]:port` of `--to-destination`. */
function parseNatDestination(s: string): { ip: ParsedIP; port: number | undefined } | undefined {
  let host = s;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2];
  } else if (s.split(':').length === 2) {
    [host, port] = s.split(':') as [string, string];
  }
  const ip = parseIP(host);
  if (!ip) return undefined;
  if (port === undefined) return { ip, port: undefined };
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return undefined;
  return { ip, port: Number(port) };
}

const PROTOCOL_NUMBERS: Readonly<Record<string, string>> = {
  '6': 'tcp',
  '17': 'udp',
  '132': 'sctp',
  '1': 'icmp',
};
const KNOWN_MODULES = new Set([
  'comment',
  'tcp',
  'udp',
  'sctp',
  'addrtype',
  'mark',
  'statistic',
  'recent',
  'conntrack',
  'state',
  'nfacct',
]);
// Targets that only count, log or annotate.
const LOG_TARGETS = new Set(['LOG', 'NFLOG']);

class Unsupported extends Error {
  readonly code: 'unsupported-match' | 'unsupported-target';
  constructor(code: 'unsupported-match' | 'unsupported-target', message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * Compiles one rule's words. Options not understood make the rule's `problem`; the matches that
 * were understood are still kept, so a rule that fails on them is known not to match.
 */
export function compileRule(
  table: string,
  chain: string,
  position: number,
  words: readonly string[],
): CompiledRule {
  const matches: Match[] = [];
  let comment: string | undefined;
  let problem: CompiledRule['problem'];
  const note = (code: 'unsupported-match' | 'unsupported-target', reason: string) => {
    problem ??= { code, reason };
  };

  let targetName: string | undefined;
  let goto = false;
  const targetOpts = new Map<string, string | true>();
  let recentOp: 'check' | 'set' | undefined;
  let recentName = 'DEFAULT';
  let statisticMode: string | undefined;
  let probability: number | undefined;

  let negate = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '!') {
      negate = true;
      continue;
    }
    const negated = negate;
    negate = false;
    const value = (): string => {
      const v = words[i + 1];
      if (v === undefined) throw new Unsupported('unsupported-match', `option ${w} has no value`);
      i++;
      return v;
    };
    try {
      if (targetName !== undefined) {
        // Everything after the target name belongs to the target.
        if (w.startsWith('--')) {
          const next = words[i + 1];
          if (next !== undefined && !next.startsWith('--')) targetOpts.set(w, value());
          else targetOpts.set(w, true);
          continue;
        }
        throw new Unsupported('unsupported-target', `unexpected word "${w}" after the target`);
      }
      switch (w) {
        case '-s':
        case '--source':
        case '--src':
        case '-d':
        case '--destination':
        case '--dst': {
          const v = value();
          const cidr = parseAddressMatch(v);
          if (!cidr) throw new Unsupported('unsupported-match', `cannot read address "${v}"`);
          const which = w === '-s' || w === '--source' || w === '--src' ? 'src' : 'dst';
          matches.push({ kind: 'address', which, negated, cidr });
          break;
        }
        case '-p':
        case '--protocol': {
          const v = value().toLowerCase();
          matches.push({ kind: 'protocol', negated, protocol: PROTOCOL_NUMBERS[v] ?? v });
          break;
        }
        case '-i':
        case '--in-interface':
        case '-o':
        case '--out-interface': {
          const which = w === '-i' || w === '--in-interface' ? 'in' : 'out';
          matches.push({ kind: 'interface', which, negated, name: value() });
          break;
        }
        case '-m':
        case '--match': {
          const mod = value();
          if (!KNOWN_MODULES.has(mod))
            throw new Unsupported('unsupported-match', `match "-m ${mod}" is not supported`);
          break;
        }
        case '--comment':
          comment = value();
          break;
        case '--nfacct-name':
          value(); // counts only
          break;
        case '--dport':
        case '--destination-port':
        case '--sport':
        case '--source-port': {
          const v = value();
          const range = parsePortRange(v);
          if (!range) throw new Unsupported('unsupported-match', `cannot read port "${v}"`);
          const which = w === '--dport' || w === '--destination-port' ? 'dst' : 'src';
          matches.push({ kind: 'port', which, negated, ...range });
          break;
        }
        case '--src-type':
        case '--dst-type': {
          const types = value().split(',');
          for (const t of types) {
            if (t !== 'LOCAL')
              throw new Unsupported('unsupported-match', `addrtype ${t} is not supported (only LOCAL)`);
          }
          matches.push({ kind: 'addrtype', which: w === '--src-type' ? 'src' : 'dst', negated, types });
          break;
        }
        case '--mark': {
          const v = value();
          const vm = parseValueMask(v);
          if (!vm) throw new Unsupported('unsupported-match', `cannot read mark "${v}"`);
          matches.push({ kind: 'mark', negated, value: vm.value, mask: vm.mask ?? 0xffffffff });
          break;
        }
        case '--ctstate':
        case '--state':
          matches.push({ kind: 'ctstate', negated, states: value().split(',') });
          break;
        case '--mode':
          statisticMode = value();
          break;
        case '--probability': {
          const v = value();
          probability = Number(v);
          if (!Number.isFinite(probability) || probability < 0 || probability > 1) {
            throw new Unsupported('unsupported-match', `bad probability "${v}"`);
          }
          break;
        }
        case '--rcheck':
        case '--update':
          recentOp = 'check';
          break;
        case '--set':
          recentOp = 'set';
          break;
        case '--name':
          recentName = value();
          break;
        case '--seconds':
        case '--mask':
          value();
          break;
        case '--reap':
        case '--rsource':
          break;
        case '-j':
        case '--jump':
        case '-g':
        case '--goto':
          targetName = value();
          goto = w === '-g' || w === '--goto';
          break;
        default:
          throw new Unsupported('unsupported-match', `option "${w}" is not supported`);
      }
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
      note(e.code, e.message);
      // Skip the rest of the rule's words only for the target; for a match keep reading so
      // that the understood matches still count.
      if (e.code === 'unsupported-target') break;
    }
  }

  if (statisticMode !== undefined || probability !== undefined) {
    if (statisticMode !== 'random' || probability === undefined) {
      note('unsupported-match', `statistic mode "${statisticMode ?? ''}" is not supported (only random)`);
    } else {
      matches.push({ kind: 'statistic', probability });
    }
  }
  if (recentOp !== undefined) matches.push({ kind: 'recent', op: recentOp, name: recentName });

  let target: Target | undefined;
  if (targetName !== undefined) {
    try {
      target = compileTarget(targetName, goto, targetOpts);
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
      note(e.code, e.message);
    }
  }
  return {
    table,
    chain,
    position,
    text: `-A ${chain} ${formatWords(words)}`,
    comment,
    matches,
    target,
    problem,
  };
}

function compileTarget(name: string, goto: boolean, opts: ReadonlyMap<string, string | true>): Target {
  const str = (k: string): string | undefined => {
    const v = opts.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const only = (allowed: readonly string[]) => {
    for (const k of opts.keys()) {
      if (!allowed.includes(k))
        throw new Unsupported('unsupported-target', `${name} option ${k} is not supported`);
    }
  };
  switch (name) {
    case 'ACCEPT':
    case 'DROP':
      only([]);
      return { kind: 'verdict', verdict: name };
    case 'REJECT':
      only(['--reject-with']);
      return { kind: 'verdict', verdict: 'REJECT' };
    case 'RETURN':
      only([]);
      return { kind: 'return' };
    case 'DNAT': {
      only(['--to-destination', '--random', '--persistent']);
      const to = str('--to-destination');
      const parsed = to === undefined ? undefined : parseNatDestination(to);
      if (!parsed)
        throw new Unsupported('unsupported-target', `DNAT --to-destination "${to ?? ''}" is not supported`);
      return { kind: 'dnat', ...parsed };
    }
    case 'MASQUERADE':
      only(['--random-fully', '--random', '--to-ports']);
      return { kind: 'masquerade' };
    case 'SNAT': {
      only(['--to-source', '--random-fully', '--random', '--persistent']);
      const to = str('--to-source');
      if (to === undefined) throw new Unsupported('unsupported-target', 'SNAT without --to-source');
      return { kind: 'snat', to };
    }
    case 'MARK':
      return compileMarkTarget(opts);
    default:
      if (LOG_TARGETS.has(name)) return { kind: 'log', name };
      // Every other extension target (the cases above never get here); a user chain named like
      // an extension is not supported either.
      if (TARGET_EXTENSIONS.has(name)) {
        throw new Unsupported('unsupported-target', `target ${name} is not supported`);
      }
      if (opts.size > 0) throw new Unsupported('unsupported-target', `options after a jump to chain ${name}`);
      return { kind: 'jump', chain: name, goto };
  }
}

/** MARK's options, reduced to `(mark & ~clear) ^ flip` as the kernel's xt_MARK does. */
function compileMarkTarget(opts: ReadonlyMap<string, string | true>): Target {
  if (opts.size !== 1) throw new Unsupported('unsupported-target', 'MARK needs exactly one option');
  const [opt, raw] = [...opts][0]!;
  const vm = typeof raw === 'string' ? parseValueMask(raw) : undefined;
  if (!vm) throw new Unsupported('unsupported-target', `cannot read MARK ${opt} value`);
  const { value, mask } = vm;
  switch (opt) {
    case '--set-xmark':
      return { kind: 'mark', op: 'set', clear: mask ?? 0xffffffff, flip: value };
    case '--set-mark': {
      const m = mask ?? 0xffffffff;
      return { kind: 'mark', op: 'set', clear: m, flip: (value & m) >>> 0 };
    }
    case '--or-mark':
      if (mask !== undefined) break;
      return { kind: 'mark', op: 'or', clear: value, flip: value };
    case '--xor-mark':
      if (mask !== undefined) break;
      return { kind: 'mark', op: 'xor', clear: 0, flip: value };
    case '--and-mark':
      if (mask !== undefined) break;
      return { kind: 'mark', op: 'and', clear: ~value >>> 0, flip: 0 };
  }
  throw new Unsupported('unsupported-target', `MARK ${opt} ${String(raw)} is not supported`);
}

/** The family of the addresses a rule set matches on, if any rule names one. */
export function ruleSetFamily(rs: RuleSet): IPFamily | undefined {
  for (const t of rs.tables.values()) {
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        for (const m of r.matches) if (m.kind === 'address') return m.cidr.family;
        if (r.target?.kind === 'dnat') return r.target.ip.family;
      }
    }
  }
  return undefined;
}
