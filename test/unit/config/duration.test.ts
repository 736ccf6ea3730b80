import { describe, expect, it } from 'vitest';
import { formatGoDuration, parseGoDuration } from '../../../pkg/config/duration.ts';

describe('parseGoDuration (Go time.ParseDuration)', () => {
  it.each([
    ['30s', 30_000],
    ['1m0s', 60_000],
    ['24h0m0s', 86_400_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['2h22m', 8_520_000],
    ['0', 0],
    ['0s', 0],
    ['-1s', -1000],
    ['+2s', 2000],
    ['1us', 0.001],
    ['1µs', 0.001],
    ['1μs', 0.001],
    ['10ns', 0.00001],
    ['.5s', 500],
    ['1.s', 1000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toEqual({ ms });
  });

  it.each([
    ['', 'invalid duration'],
    ['30', 'missing unit'],
    ['1d', 'unknown unit "d"'],
    ['s', 'invalid duration'],
    ['1m30', 'missing unit'],
    ['.s', 'invalid duration'],
    ['abc', 'invalid duration'],
    ['1 s', 'unknown unit " s"'],
    ['3000000h', 'out of range'],
  ])('%j is refused (%s)', (text, reason) => {
    const r = parseGoDuration(text);
    expect('error' in r && r.error).toContain(reason);
  });
});

describe('formatGoDuration (Go Duration.String)', () => {
  it.each([
    [0, '0s'],
    [500, '500ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [30_000, '30s'],
    [60_000, '1m0s'],
    [90_000, '1m30s'],
    [900_000, '15m0s'],
    [3_600_000, '1h0m0s'],
    [86_400_000, '24h0m0s'],
    [0.001, '1µs'],
    [0.0015, '1.5µs'],
    [0.00001, '10ns'],
    [-2000, '-2s'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it('reads back what it writes', () => {
    for (const ms of [1, 999, 1234.5, 61_001, 7_322_000, 0.123456]) {
      const back = parseGoDuration(formatGoDuration(ms));
      expect(back).toEqual({ ms });
    }
  });
});
