import { describe, expect, it } from 'vitest';
import { formatWords, quoteWord, tokenize, tokenizeLine } from '../../../pkg/iptables/tokenize.ts';

// Each case was checked against iptables-legacy-restore 1.8.9 (restore, then iptables-save).
describe('tokenize: iptables quoting rules', () => {
  it.each([
    ['plain words, repeated blanks', '-A  X\t-j   ACCEPT', ['-A', 'X', '-j', 'ACCEPT']],
    ['quoted word with a space', '--comment "a b" -j X', ['--comment', 'a b', '-j', 'X']],
    ['escapes inside quotes', String.raw`--comment "a\"b\\c"`, ['--comment', 'a"b\\c']],
    ['backslash outside quotes is literal', String.raw`--comment a\\b`, ['--comment', 'a\\\\b']],
    ['quote opening mid-word joins', '--comment x"a b"y', ['--comment', 'xa b', 'y']],
    ['closing quote ends the word', '--comment "a b"c', ['--comment', 'a b', 'c']],
    ['adjacent quoted parts are two words', '"a"" b"', ['a', ' b']],
    ['empty quotes are an empty word', '--comment "" -j X', ['--comment', '', '-j', 'X']],
    ['single quotes mean nothing', "--comment 'a b'", ['--comment', "'a", "b'"]],
    ['escape of an ordinary character', String.raw`"\x\""`, ['x"']],
    ['tab inside quotes kept', '"tab\tx"', ['tab\tx']],
  ])('%s', (_name, line, words) => {
    expect(tokenize(line)).toEqual(words);
  });

  it('an open quote takes the rest of the line and its newline', () => {
    const r = tokenizeLine('--comment "a b -j ACCEPT');
    expect(r.unterminatedQuote).toBe(true);
    expect(r.words).toEqual(['--comment', 'a b -j ACCEPT\n']);
  });

  it('a line with its newline tokenizes like one without', () => {
    expect(tokenize('-A X -j Y\n')).toEqual(tokenize('-A X -j Y'));
  });
});

describe('quoteWord / formatWords', () => {
  it('leaves plain words bare and quotes the rest', () => {
    expect(quoteWord('ns1/svc1:p80')).toBe('ns1/svc1:p80');
    expect(quoteWord('a b')).toBe('"a b"');
    expect(quoteWord('')).toBe('""');
    expect(quoteWord('a"b')).toBe(String.raw`"a\"b"`);
    expect(quoteWord('a\\b')).toBe(String.raw`"a\\b"`);
  });

  it.each([
    [['-m', 'comment', '--comment', 'ns/svc:p cluster IP', '-j', 'KUBE-SVC-X']],
    [['--comment', 'quote " and backslash \\ and \\"', '-j', 'ACCEPT']],
    [['--comment', '', '-j', 'ACCEPT']],
    [['--comment', '\t tabs \t', '-j', 'ACCEPT']],
  ])('round-trips %j', (words) => {
    expect(tokenize(formatWords(words))).toEqual(words);
  });

  it('refuses a newline, which no line can hold', () => {
    expect(() => quoteWord('a\nb')).toThrow(RangeError);
  });
});
