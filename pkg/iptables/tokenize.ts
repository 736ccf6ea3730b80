/**
 * Splitting one line of iptables-restore input into words the way iptables itself does
 * (add_param_to_argv in iptables' xshared.c, checked against iptables 1.8.9, legacy and nft):
 *
 * - words are separated by spaces, tabs and the end of the line;
 * - a double quote opens a quoted part anywhere, even in the middle of a word (`x"a b"` is the
 *   one word `xa b`), and the closing quote ends the word at once (`"a b"c` is `a b` then `c`,
 *   `""` is an empty word);
 * - inside quotes a backslash takes the next character literally (`"a\"b\\c"` is `a"b\c`);
 *   outside quotes a backslash is an ordinary character (`a\\b` stays `a\\b`);
 * - single quotes mean nothing;
 * - a quote left open takes the rest of the line, including its newline (iptables reads lines
 *   with fgets), and the word still counts.
 */

export interface TokenizedLine {
  readonly words: string[];
  /** A double quote was still open at the end of the line. */
  readonly unterminatedQuote: boolean;
}

export function tokenizeLine(line: string): TokenizedLine {
  const words: string[] = [];
  let word = '';
  let started = false; // `word` holds a word, possibly empty (`""`)
  let inQuote = false;
  let escaped = false;
  // iptables sees the line with its newline; an open quote swallows it.
  const text = line.endsWith('\n') ? line : `${line}\n`;
  for (const ch of text) {
    if (inQuote) {
      if (escaped) {
        word += ch;
        escaped = false;
      } else if (ch === '\\') {
        escaped = true;
      } else if (ch === '"') {
        inQuote = false;
        words.push(word);
        word = '';
        started = false;
      } else {
        word += ch;
      }
      continue;
    }
    if (ch === '"') {
      inQuote = true;
      started = true;
    } else if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (started) {
        words.push(word);
        word = '';
        started = false;
      }
    } else {
      word += ch;
      started = true;
    }
  }
  if (inQuote) words.push(word);
  return { words, unterminatedQuote: inQuote };
}

/** The words of a line (see tokenizeLine). */
export function tokenize(line: string): string[] {
  return tokenizeLine(line).words;
}

/**
 * One word written so that tokenize() reads it back unchanged: bare when it is a plain word, else
 * in double quotes with `"` and `\` escaped (as iptables-save prints comments). A newline cannot
 * be written inside a line at all, so it is refused.
 */
export function quoteWord(word: string): string {
  if (word.includes('\n'))
    throw new RangeError(`an iptables word cannot contain a newline: ${JSON.stringify(word)}`);
  if (word !== '' && !/[\s"\\]/.test(word)) return word;
  return `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Words joined into rule text (see quoteWord). */
export function formatWords(words: readonly string[]): string {
  return words.map(quoteWord).join(' ');
}
