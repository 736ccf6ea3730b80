/**
 * Whole-ruleset comparison helpers, after upstream's proxier_test.go: sortIPTablesRules (order
 * that does not matter is sorted away) and checkIPTablesRuleJumps (every jump has a declared,
 * filled chain; every declared chain is used).
 */

interface ParsedRule {
  readonly chain: string;
  readonly raw: string;
  readonly comment: string | undefined;
}

interface ParsedTable {
  readonly name: string;
  readonly chains: string[];
  readonly rules: ParsedRule[];
  readonly deleted: Set<string>;
}

/** Splits a rule into words; a double-quoted string is one word (quotes removed). */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) words.push(m[1] ?? m[2]!);
  return words;
}

function commentOf(words: readonly string[]): string | undefined {
  const i = words.indexOf('--comment');
  return i === -1 ? undefined : words[i + 1];
}

export function parseDump(text: string): ParsedTable[] {
  const tables: ParsedTable[] = [];
  let current: ParsedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { name: line.slice(1), chains: [], rules: [], deleted: new Set() };
      tables.push(current);
      continue;
    }
    if (!current) throw new Error(`line outside a table: ${line}`);
    if (line === 'COMMIT') {
      current = undefined;
    } else if (line.startsWith(':')) {
      current.chains.push(line.slice(1).split(' ')[0]!);
    } else if (line.startsWith('-A ')) {
      const words = splitWords(line);
      const chain = words[1]!;
      if (!current.chains.includes(chain)) throw new Error(`rule for undeclared chain: ${line}`);
      current.rules.push({ chain, raw: line, comment: commentOf(words) });
    } else if (line.startsWith('-X ')) {
      const chain = line.slice(3).trim();
      if (current.rules.some((r) => r.chain === chain)) throw new Error(`-X of a chain with rules: ${line}`);
      current.deleted.add(chain);
    } else {
      throw new Error(`unexpected line: ${line}`);
    }
  }
  return tables;
}

function compareChains(a: string, b: string): number {
  const rank = (c: string) =>
    c === 'KUBE-NODEPORTS' ? 0 : c === 'KUBE-SERVICES' ? 1 : c.startsWith('KUBE-') ? 2 : 3;
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The comment up to the first space or colon; rules without a comment never move. */
function serviceNameOf(rule: ParsedRule): string | undefined {
  if (rule.comment === undefined) return undefined;
  const i = rule.comment.search(/[ :]/);
  return i === -1 ? rule.comment : rule.comment.slice(0, i);
}

/** Stable sort by service name, as upstream's sort.SliceStable with orderByCommentServiceName. */
function stableSortByService(rules: ParsedRule[], keepLast: (r: ParsedRule) => boolean): ParsedRule[] {
  const less = (a: ParsedRule, b: ParsedRule): boolean => {
    if (keepLast(a)) return false;
    if (keepLast(b)) return true;
    const na = serviceNameOf(a);
    const nb = serviceNameOf(b);
    if (na === undefined || nb === undefined) return false;
    return na < nb;
  };
  const out = [...rules];
  for (let i = 1; i < out.length; i++) {
    for (let j = i; j > 0 && less(out[j]!, out[j - 1]!); j--) {
      const t = out[j]!;
      out[j] = out[j - 1]!;
      out[j - 1] = t;
    }
  }
  return out;
}

/** Upstream's sortIPTablesRules: the text both sides are compared in. */
export function sortIPTablesRules(text: string): string {
  const tables = parseDump(text).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const t of tables) {
    const chains = [...t.chains].sort(compareChains);
    out.push(`*${t.name}`, ...chains.map((c) => `:${c} - [0:0]`));
    for (const c of chains) {
      let rules = t.rules.filter((r) => r.chain === c);
      if (c === 'KUBE-NODEPORTS' || c === 'KUBE-SERVICES') {
        const lastRule = t.name === 'nat' && c === 'KUBE-SERVICES';
        rules = stableSortByService(
          rules,
          (r) => lastRule && (r.comment?.includes('must be the last rule') ?? false),
        );
      }
      out.push(...rules.map((r) => r.raw));
    }
    for (const c of chains) if (t.deleted.has(c)) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

/**
 * Upstream's unit tests inject the mark as `0x4000`; kube-proxy itself prints `%#08x`,
 * `0x00004000`. Maps our spelling to theirs for comparison.
 */
export function testMarkSpelling(payload: string): string {
  return payload.replaceAll('0x00004000', '0x4000');
}

const BUILTIN_TARGETS = new Set(['ACCEPT', 'REJECT', 'DROP', 'MARK', 'RETURN', 'DNAT', 'SNAT', 'MASQUERADE']);
const TOP_LEVEL = new Set([
  'KUBE-SERVICES',
  'KUBE-EXTERNAL-SERVICES',
  'KUBE-NODEPORTS',
  'KUBE-POSTROUTING',
  'KUBE-FORWARD',
  'KUBE-MARK-MASQ',
  'KUBE-PROXY-FIREWALL',
  'KUBE-FIREWALL',
]);

/**
 * Upstream's checkIPTablesRuleJumps: per table, every `-j` target and `-A` chain is declared
 * (and not deleted), every jumped-to chain has rules (KUBE-NODEPORTS excepted), and every
 * declared chain is jumped to (top-level chains excepted). Returns the problems found.
 */
export function checkRuleJumps(text: string): string[] {
  const problems: string[] = [];
  for (const t of parseDump(text)) {
    const created = new Set(t.chains.filter((c) => !t.deleted.has(c)));
    const filled = new Set(t.rules.map((r) => r.chain));
    const jumped = new Set<string>();
    for (const r of t.rules) {
      const words = splitWords(r.raw);
      const j = words.indexOf('-j');
      if (j !== -1 && !BUILTIN_TARGETS.has(words[j + 1]!)) jumped.add(words[j + 1]!);
    }
    for (const c of [...jumped, ...filled]) {
      if (!created.has(c)) problems.push(`${t.name}: chain ${c} is used but was not created`);
    }
    for (const c of jumped) {
      if (!filled.has(c) && c !== 'KUBE-NODEPORTS')
        problems.push(`${t.name}: chain ${c} is jumped to but has no rules`);
    }
    for (const c of created) {
      if (!jumped.has(c) && !TOP_LEVEL.has(c)) problems.push(`${t.name}: chain ${c} is created but not used`);
    }
  }
  return [...new Set(problems)];
}
