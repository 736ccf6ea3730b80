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

/**
 * A restore payload: its text, or parts whose `\n`-join is the text. Joining is a copy of the
 * whole payload into fresh memory (17 MB at 10,000 Services; on a VM where a new page costs
 * ~24 µs that alone is 100+ ms), so renders hand out their parts, the runner streams them to
 * iptables-restore in chunks, and only what needs the text (tests, error reports, nft's split)
 * joins them.
 */
export type RestorePayload = string | readonly string[];

/** The whole restore input as parts: each table's `*table`, chains, rules and COMMIT, then ''. */
export function buildRestoreParts(tables: readonly TableContent[]): string[] {
  // Pushed one by one because spreading 100k+ blocks into one push() overflows the call stack.
  const parts: string[] = [];
  for (const t of tables) {
    parts.push(`*${t.table}`);
    for (const b of t.chains.blocks) parts.push(b);
    for (const b of t.rules.blocks) parts.push(b);
    parts.push('COMMIT');
  }
  if (parts.length > 0) parts.push('');
  return parts;
}

/** The whole restore input as one string. */
export function buildRestorePayload(tables: readonly TableContent[]): string {
  return payloadText(buildRestoreParts(tables));
}

export function payloadText(payload: RestorePayload): string {
  return typeof payload === 'string' ? payload : payload.join('\n');
}

/** A function returning payloadText(parts), joined on its first call only. */
export function textOnce(parts: readonly string[]): () => string {
  let text: string | undefined;
  return () => {
    if (text === undefined) text = payloadText(parts);
    return text;
  };
}

/** The text's length in UTF-16 units, without making it. */
export function payloadLength(payload: RestorePayload): number {
  if (typeof payload === 'string') return payload.length;
  if (payload.length === 0) return 0;
  let n = payload.length - 1;
  for (const p of payload) n += p.length;
  return n;
}

/** The text's length in UTF-8 bytes, without making it. */
export function payloadByteLength(payload: RestorePayload): number {
  if (typeof payload === 'string') return Buffer.byteLength(payload, 'utf8');
  if (payload.length === 0) return 0;
  let n = payload.length - 1;
  for (const p of payload) n += Buffer.byteLength(p, 'utf8');
  return n;
}

/**
 * The text in pieces of about `chunkChars` (a part is never cut), made one at a time: what a
 * pipe writer wants. Their concatenation is payloadText(payload).
 */
export function* payloadChunks(payload: RestorePayload, chunkChars = CHUNK_CHARS): Generator<string> {
  if (typeof payload !== 'string') yield* joinInChunks(payload, chunkChars);
  else if (payload !== '') yield payload;
}

// Under V8's regular object size (128 KiB): a bigger string lives in large-object space, which
// only a full GC frees, so a stream of them piles up.
const CHUNK_CHARS = 64 * 1024;

/**
 * `[...pieces].join('\n')`, made in chunks of about `chunkChars` as the pieces come (a piece is
 * never cut): the concatenation of the chunks is the join.
 */
export function* joinInChunks(pieces: Iterable<string>, chunkChars = CHUNK_CHARS): Generator<string> {
  let batch: string[] = [];
  let chars = 0;
  for (const piece of pieces) {
    batch.push(piece);
    chars += piece.length + 1;
    if (chars < chunkChars) continue;
    yield batch.join('\n');
    // The separator between this chunk's last piece and the next one leads the next chunk.
    batch = [''];
    chars = 0;
  }
  // chars is 0 only when nothing came after the last chunk (or nothing came at all).
  if (chars > 0) yield batch.join('\n');
}
