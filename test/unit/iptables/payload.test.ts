import { describe, expect, it } from 'vitest';
import { parseDump, rulesOf } from '../../../pkg/iptables/parse.ts';
import {
  buildRestorePayload,
  chainLine,
  comment,
  newTableContent,
  quoteComment,
} from '../../../pkg/iptables/payload.ts';
import { tokenize } from '../../../pkg/iptables/tokenize.ts';

describe('payload comments cannot break out of their rule', () => {
  const hostile = [
    'plain',
    'two words',
    'ends with backslash \\',
    'quote " in the middle',
    '" -j ACCEPT "',
    '\\" -j DROP',
    'new\nline -j DROP\nCOMMIT\n*nat',
    'carriage\rreturn',
    'tab\there',
    '',
    'nul\u0000byte',
  ];

  it.each(hostile)('comment %j stays one word of one line', (text) => {
    const words = ['-A', 'KUBE-SERVICES', ...comment(text), '-j', 'KUBE-SVC-X'];
    const line = words.join(' ');
    expect(line.split('\n')).toHaveLength(1);
    const parsed = tokenize(line);
    // Exactly the eight words we wrote: the comment is one word and the jump is intact.
    expect(parsed).toHaveLength(8);
    expect(parsed.slice(0, 5)).toEqual(['-A', 'KUBE-SERVICES', '-m', 'comment', '--comment']);
    expect(parsed.slice(6)).toEqual(['-j', 'KUBE-SVC-X']);
    // The text may be sanitised, but never into something carrying quotes or line breaks.
    expect(parsed[5]).not.toMatch(/["\\\n\r]/);
  });

  it('keeps ordinary comments as upstream writes them', () => {
    expect(quoteComment('ns1/svc1:p80')).toBe('ns1/svc1:p80');
    expect(quoteComment('ns1/svc1:p80 cluster IP')).toBe('"ns1/svc1:p80 cluster IP"');
  });

  it('builds a payload the parser reads back', () => {
    const nat = newTableContent('nat');
    nat.chains.writeLine(chainLine('KUBE-SERVICES'));
    nat.chains.writeLine(chainLine('KUBE-SVC-X'));
    nat.rules.write(
      '-A',
      'KUBE-SERVICES',
      comment('ns/svc:p cluster IP'),
      '-d',
      '10.96.0.10',
      '-j',
      'KUBE-SVC-X',
    );
    nat.rules.write('-A', 'KUBE-SVC-X', comment('evil " -j DROP'), '-j', 'RETURN');
    const dump = parseDump(buildRestorePayload([nat]));
    expect(rulesOf(dump, 'nat', 'KUBE-SERVICES')).toEqual([
      ['-m', 'comment', '--comment', 'ns/svc:p cluster IP', '-d', '10.96.0.10', '-j', 'KUBE-SVC-X'],
    ]);
    const svc = rulesOf(dump, 'nat', 'KUBE-SVC-X')[0]!;
    expect(svc.slice(-2)).toEqual(['-j', 'RETURN']);
    expect(svc).toHaveLength(6);
  });
});
