import { describe, expect, it } from 'vitest';
import { IptablesError, RestoreError, restoreErrorLine } from '../../../pkg/iptables/errors.ts';

const PAYLOAD = [
  '*nat',
  ':A - [0:0]',
  ':B - [0:0]',
  '-A A -j B',
  '-A B -j NOPE',
  '-A B -j RETURN',
  'COMMIT',
  '',
].join('\n');

describe('restoreErrorLine', () => {
  it.each([
    [
      "iptables-restore v1.8.9 (legacy): Couldn't load target `NOPE'\n\nError occurred at line: 5\nTry ...",
      5,
    ],
    ['iptables-restore: line 7 failed\n', 7],
    [
      'iptables-nft-restore v1.8.9 (nf_tables): \nline 7: CHAIN_DEL failed (Device or resource busy): chain BAR\n',
      7,
    ],
    ['iptables-restore: COMMIT expected at line 4\n', 4],
    ['something else entirely', undefined],
  ])('%j → %s', (stderr, line) => {
    expect(restoreErrorLine(stderr)).toBe(line);
  });
});

describe('RestoreError', () => {
  it('carries the line, its text, the lines around it and shows the line in its message', () => {
    const e = new RestoreError({
      payload: PAYLOAD,
      stderr: 'Ignoring deprecated --wait-interval option.\nError occurred at line: 5\n',
    });
    expect(e).toBeInstanceOf(IptablesError);
    expect(e.code).toBe('restore-failed');
    expect(e.line).toBe(5);
    expect(e.lineText).toBe('-A B -j NOPE');
    expect(e.context.map((l) => l.line)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(e.message).toContain('line 5: "-A B -j NOPE"');
    expect(e.message).toMatch(/^>\s+5 -A B -j NOPE$/m);
    expect(e.message).not.toContain('Ignoring deprecated');
  });

  it('works when stderr names no line', () => {
    const e = new RestoreError({ payload: PAYLOAD, stderr: 'boom' });
    expect(e.line).toBeUndefined();
    expect(e.context).toEqual([]);
    expect(e.message).toContain('unknown line');
  });
});
