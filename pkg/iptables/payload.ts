/**
 * Building `iptables-restore` input. Rendering writes words into LineBuffers; the payload is the
 * tables' chain lines and rules wrapped in `*table` ... `COMMIT`, in the order upstream writes them.
 */

export type Table = 'filter' | 'nat' | 'mangle' | 'raw';

/** Lines of restore input, words joined by one space (upstream's utiliptables.LineBuffer). */
export class LineBuffer {
  readonly lines: string[] = [];

  /** Writes one line made of `words`; array arguments are flattened, so match helpers compose. */
  write(...words: readonly (string | readonly string[])[]): void {
    this.lines.push(words.flat().join(' '));
  }

  /** Writes an already formatted line. */
  writeLine(line: string): void {
    this.lines.push(line);
  }

  get length(): number {
    return this.lines.length;
  }

  reset(): void {
    this.lines.length = 0;
  }
}

/** `:CHAIN - [0:0]`: declares a chain; under --noflush it also flushes an existing one. */
export function chainLine(chain: string): string {
  return `:${chain} - [0:0]`;
}

/**
 * A comment argument as upstream writes it: bare when it is one word, else in double quotes.
 * Names reaching a comment are validated DNS names, but the payload must stay parseable whatever
 * the input, so characters that could end the quoted word or the line are replaced.
 */
export function quoteComment(text: string): string {
  // Control characters (newline above all) would end the line or the word: they are what we strip.
  const safe = text.replace(/["\\\u0000-\u001f\u007f]/g, '_');
  return /\s/.test(safe) || safe === '' ? `"${safe}"` : safe;
}

/** `-m comment --comment TEXT`. */
export function comment(text: string): string[] {
  return ['-m', 'comment', '--comment', quoteComment(text)];
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
  // Joined piecewise: spreading 100k+ lines into one push() overflows the call stack.
  let out = '';
  for (const t of tables) {
    out += `*${t.table}\n`;
    if (t.chains.length > 0) out += `${t.chains.lines.join('\n')}\n`;
    if (t.rules.length > 0) out += `${t.rules.lines.join('\n')}\n`;
    out += 'COMMIT\n';
  }
  return out;
}
