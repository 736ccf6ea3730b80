import { describe, expect, it } from 'vitest';
import { parseDump, rulesOf } from '../../../pkg/iptables/parse.ts';
import {
  buildRestoreParts,
  buildRestorePayload,
  chainLine,
  comment,
  joinInChunks,
  LineBuffer,
  newTableContent,
  payloadByteLength,
  payloadChunks,
  payloadLength,
  payloadText,
  quoteComment,
  textOnce,
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

describe('LineBuffer blocks', () => {
  it('counts and splits blocks of several lines like the lines written one by one', () => {
    const one = new LineBuffer();
    const blocks = new LineBuffer();
    for (const l of ['-A A -j B', '-A B -j C', '-A C -j D', '-X E']) one.writeLine(l);
    blocks.writeLine('-A A -j B');
    blocks.writeBlock('-A B -j C\n-A C -j D', 2);
    blocks.writeBlock('', 0);
    blocks.write('-X', ['E']);
    expect(blocks.length).toBe(4);
    expect(blocks.lines).toEqual(one.lines);
    const table = (rules: LineBuffer) => ({ table: 'nat' as const, chains: new LineBuffer(), rules });
    expect(buildRestorePayload([table(blocks)])).toBe(buildRestorePayload([table(one)]));
    expect(buildRestorePayload([table(blocks)])).toBe(
      '*nat\n-A A -j B\n-A B -j C\n-A C -j D\n-X E\nCOMMIT\n',
    );
  });

  it('appends another buffer after its own lines, and resets to empty', () => {
    const a = new LineBuffer();
    const b = new LineBuffer();
    a.writeLine(':A - [0:0]');
    b.writeBlock(':B - [0:0]\n:C - [0:0]', 2);
    a.append(b);
    expect(a.length).toBe(3);
    expect(a.lines).toEqual([':A - [0:0]', ':B - [0:0]', ':C - [0:0]']);
    a.reset();
    expect(a.length).toBe(0);
    expect(a.lines).toEqual([]);
    expect(b.length).toBe(2);
  });

  it('writes an empty table as its header and COMMIT only, and no tables as nothing', () => {
    expect(buildRestorePayload([newTableContent('filter')])).toBe('*filter\nCOMMIT\n');
    expect(buildRestorePayload([])).toBe('');
  });
});

describe('restore payloads as parts', () => {
  const tables = (): ReturnType<typeof newTableContent>[] => {
    const filter = newTableContent('filter');
    filter.chains.writeLine(':KUBE-FORWARD - [0:0]');
    const nat = newTableContent('nat');
    nat.chains.writeBlock(':KUBE-SVC-A - [0:0]\n:KUBE-SEP-B - [0:0]', 2);
    for (let i = 0; i < 500; i++)
      nat.rules.writeLine(`-A KUBE-SVC-A -m comment --comment "ns/sérvice-${i}" -j KUBE-SEP-B`);
    return [filter, nat];
  };

  it('joins to buildRestorePayload, and measures the text without making it', () => {
    const parts = buildRestoreParts(tables());
    const text = buildRestorePayload(tables());
    expect(payloadText(parts)).toBe(text);
    expect(payloadLength(parts)).toBe(text.length);
    expect(payloadByteLength(parts)).toBe(Buffer.byteLength(text));
    expect(payloadByteLength(parts)).toBeGreaterThan(text.length); // the é is two bytes
    expect(payloadLength([])).toBe(0);
    expect(payloadText(buildRestoreParts([]))).toBe('');
  });

  it('streams chunks that concatenate to the text, none much over the chunk size', () => {
    const parts = buildRestoreParts(tables());
    const text = payloadText(parts);
    for (const size of [1, 100, 4096, 1 << 20]) {
      const chunks = [...payloadChunks(parts, size)];
      expect(chunks.join('')).toBe(text);
      for (const c of chunks.slice(0, -1)) expect(c.length).toBeLessThan(size + 80);
    }
    expect([...payloadChunks(parts, 4096)].length).toBeGreaterThan(5);
    expect([...payloadChunks('*nat\nCOMMIT\n')]).toEqual(['*nat\nCOMMIT\n']);
    expect([...payloadChunks('')]).toEqual([]);
    expect([...payloadChunks([])]).toEqual([]);
  });

  it('joins pieces in chunks whose concatenation is the join, also at chunk boundaries', () => {
    for (const pieces of [
      [],
      [''],
      ['a'],
      ['a', ''],
      ['ab', 'cd', ''],
      ['ab', '', 'cd'],
      ['x'.repeat(10), 'y', ''],
    ]) {
      for (const size of [1, 2, 3, 4, 100]) {
        expect([...joinInChunks(pieces, size)].join(''), `${JSON.stringify(pieces)} / ${size}`).toBe(
          pieces.join('\n'),
        );
      }
    }
    expect([...joinInChunks(['ab', 'cd', 'ef'], 3)]).toEqual(['ab', '\ncd', '\nef']);
  });

  it('joins once, on first use', () => {
    const parts = buildRestoreParts(tables());
    const text = textOnce(parts);
    const first = text();
    expect(first).toBe(payloadText(parts));
    expect(text()).toBe(first);
  });
});
