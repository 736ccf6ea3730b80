/**
 * Building `iptables-restore` input. Rendering writes lines into LineBuffers; the payload is the
 * tables' chain lines and rules wrapped in `*table` ... `COMMIT`, in the order upstream writes them.
 */

export type Table = 'filter' | 'nat' | 'mangle' | 'raw';

/**
 * Lines of restore input (upstream's utiliptables.LineBuffer). Lines are kept as blocks, each one
 * or more lines joined by `\n`, so that a renderer can hand over a service's rules as one string
 * it keeps between syncs: the payload is then one join over blocks, with no copy per line.
 */
export class LineBuffer {
  readonly #blocks: string[] = [];
  #count = 0;

  /** Writes one line made of `words` joined by one space; array arguments are flattened. */
  write(...words: readonly (string | readonly string[])[]): void {
    this.writeLine(words.flat().join(' '));
  }

  /** Writes an already formatted line. */
  writeLine(line: string): void {
    this.#blocks.push(line);
    this.#count++;
  }

  /** Writes `count` formatted lines joined by `\n` (no newline at the end); nothing when 0. */
  writeBlock(text: string, count: number): void {
    if (count === 0) return;
    this.#blocks.push(text);
    this.#count += count;
  }

  /** Writes every line of `other`, after the lines written so far. */
  append(other: LineBuffer): void {
    for (const b of other.blocks) this.#blocks.push(b);
    this.#count += other.length;
  }

  /** The blocks written, in order: what buildRestorePayload joins. */
  get blocks(): readonly string[] {
    return this.#blocks;
  }

  /** Every line, one string each. Splits the blocks on every call: for tests and small tables. */
  get lines(): string[] {
    const out: string[] = [];
    for (const b of this.#blocks) {
      if (b.includes('\n')) for (const l of b.split('\n')) out.push(l);
      else out.push(b);
    }
    return out;
  }

  get length(): number {
    return this.#count;
  }

  reset(): void {
    this.#blocks.length = 0;
    this.#count = 0;
  }
}

/** `:CHAIN - [0:0]`: declares a chain; under --noflush it also flushes an existing one. */
export function chainLine(chain: string): string {
  return `:${chain} - [0:0]`;
}

/** Anything quoteComment must replace or quote for. */
const NEEDS_WORK = /[\s"\\\u0000-\u001f\u007f]/;

/**
 * A comment argument as upstream writes it: bare when it is one word, else in double quotes.
 * Names reaching a comment are validated DNS names, but the payload must stay parseable whatever
 * the input, so characters that could end the quoted word or the line are replaced.
 */
export function quoteComment(text: string): string {
  // Most comments are one plain word (`ns/name:port`): one test, no copy.
  if (!NEEDS_WORK.test(text) && text !== '') return text;
  // Control characters (newline above all) would end the line or the word: they are what we strip.
  const safe = text.replace(/["\\\u0000-\u001f\u007f]/g, '_');
  return /\s/.test(safe) || safe === '' ? `"${safe}"` : safe;
}

/** `-m comment --comment TEXT`. */
export function comment(text: string): string[] {
  return ['-m', 'comment', '--comment', quoteComment(text)];
}

/** `-m comment --comment TEXT` as one string, for rules written as template strings. */
export function commentMatch(text: string): string {
  return `-m comment --comment ${quoteComment(text)}`;
}

export interface TableContent {
  readonly table: Table;
  /** Chain declaration lines (`:NAME - [0:0]`). */
  readonly chains: LineBuffer;
  /** Rule lines (`-A ...`, `-X ...`, ...). */
  readonly rules: LineBuffer;
}

export function newTableContent(table: Table): TableContent {
  return { table, chains: new LineBuffer(), rules: new LineBuffer() };
}

/** The whole restore input: each table's chains, then its rules, then COMMIT. */
export function buildRestorePayload(tables: readonly TableContent[]): string {
  // One join over every block: the payload is allocated once, at its final size. Pushed one by
  // one because spreading 100k+ blocks into one push() overflows the call stack.
  const parts: string[] = [];
  for (const t of tables) {
    parts.push(`*${t.table}`);
    for (const b of t.chains.blocks) parts.push(b);
    for (const b of t.rules.blocks) parts.push(b);
    parts.push('COMMIT');
  }
  parts.push('');
  return parts.join('\n');
}
