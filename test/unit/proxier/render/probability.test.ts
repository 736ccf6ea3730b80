import { describe, expect, it } from 'vitest';
import { formatFixed10, formatFixed10Exact, probability } from '../../../../proxier/render-probability.ts';

describe('probability (TestComputeProbability)', () => {
  it.each([
    [1, '1.0000000000'],
    [2, '0.5000000000'],
    [3, '0.3333333333'],
    [10, '0.1000000000'],
    [100, '0.0100000000'],
    [1000, '0.0010000000'],
    [10000, '0.0001000000'],
    [100000, '0.0000100000'],
    [100001, '0.0000099999'],
  ])('1/%i is %s', (n, text) => {
    expect(probability(n)).toBe(text);
  });

  it('rounds exact ties to even as Go does (1/2048), unlike toFixed', () => {
    expect(probability(2048)).toBe('0.0004882812');
    expect((1 / 2048).toFixed(10)).toBe('0.0004882813');
  });

  it('strictly increases from 1/100000 to 1/2, so 10 decimals tell all endpoints apart', () => {
    const notIncreasing: number[] = [];
    let prev = Number(probability(100000));
    for (let n = 99999; n >= 2; n--) {
      const p = Number(probability(n));
      if (!(p > prev)) notIncreasing.push(n);
      prev = p;
    }
    expect(notIncreasing).toEqual([]);
  });

  it('the exact path agrees with toFixed everywhere except at exact ties', () => {
    const differ: number[] = [];
    for (let n = 1; n <= 20000; n++) {
      if (formatFixed10Exact(1 / n) !== (1 / n).toFixed(10)) differ.push(n);
    }
    expect(differ).toEqual([2048]);
  });

  it('formats other values half-to-even on the exact binary value', () => {
    expect(formatFixed10(0)).toBe('0.0000000000');
    expect(formatFixed10(2.5)).toBe('2.5000000000');
    // 2^-11 * 3 = 0.00146484375: tie, previous digit 3 is odd, so it rounds up.
    expect(formatFixed10(3 / 2048)).toBe('0.0014648438');
    expect(() => probability(0)).toThrow(RangeError);
  });
});
