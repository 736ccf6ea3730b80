/**
 * `--probability` strings for the balancing rules. Endpoint i of n (0-based) is chosen with
 * probability 1/(n-i), printed as Go's `%0.10f`. Go rounds the exact binary value of the double
 * half-to-even; JavaScript's toFixed rounds exact ties up, which differs at n = 2048 (Go prints
 * 0.0004882812). So the value is formatted here from its exact binary expansion.
 */

const SCALE = 10n ** 10n;

/** `x` (finite, >= 0) with 10 decimals, rounded half-to-even on its exact binary value. */
export function formatFixed10(x: number): string {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`cannot format ${x}`);
  // toFixed picks the nearest 10-decimal value exactly; only exact ties need the slow path.
  const scaledApprox = x * 1e10;
  if (Math.abs(scaledApprox - Math.floor(scaledApprox) - 0.5) > 1e-3) return x.toFixed(10);
  return formatFixed10Exact(x);
}

/** The exact path of formatFixed10, exported for tests. */
export function formatFixed10Exact(x: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biasedExp = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp: number;
  if (biasedExp === 0) {
    exp = -1074; // subnormal (or zero)
  } else {
    mantissa |= 1n << 52n;
    exp = biasedExp - 1075;
  }
  // x = mantissa * 2^exp; we want round(x * 10^10).
  let scaled: bigint;
  if (exp >= 0) {
    scaled = mantissa * SCALE * (1n << BigInt(exp));
  } else {
    const den = 1n << BigInt(-exp);
    const num = mantissa * SCALE;
    scaled = num / den;
    const twiceRem = (num % den) * 2n;
    if (twiceRem > den || (twiceRem === den && scaled % 2n === 1n)) scaled += 1n;
  }
  const digits = scaled.toString().padStart(11, '0');
  return `${digits.slice(0, -10)}.${digits.slice(-10)}`;
}

const cache: string[] = ['<bad value>'];

/** The probability string for choosing one of `n` remaining endpoints: 1/n. Cached. */
export function probability(n: number): string {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`bad endpoint count ${n}`);
  for (let i = cache.length; i <= n; i++) cache.push(formatFixed10(1 / i));
  return cache[n]!;
}
