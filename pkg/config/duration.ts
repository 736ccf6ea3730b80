/**
 * Go duration strings (`time.ParseDuration` / `time.Duration.String`), as upstream's flags and
 * KubeProxyConfiguration files write them: `30s`, `1m0s`, `24h0m0s`, `500ms`, `1.5h`. We keep
 * durations as milliseconds (possibly fractional: `1us` is 0.001 ms); Go keeps nanoseconds.
 */

const NS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  µs: 1e3, // U+00B5 micro sign, what Go prints
  μs: 1e3, // U+03BC Greek mu, also accepted by Go
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.Duration is an int64 of nanoseconds. */
const MAX_NS = 2 ** 63 - 1; // rounds to 2^63 as a double; close enough to tell overflow

/**
 * Parses a Go duration into milliseconds. Returns a reason string when the text is not a
 * duration (Go's rules: a sequence of decimal numbers each with a unit, optional sign, "0" alone
 * needs no unit).
 */
export function parseGoDuration(text: string): { ms: number } | { error: string } {
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return { ms: 0 };
  if (s === '') return { error: `invalid duration "${text}"` };
  let ns = 0;
  while (s !== '') {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s)!;
    const whole = m[1] ?? '';
    const frac = m[2];
    if (whole === '' && (frac === undefined || frac === '')) return { error: `invalid duration "${text}"` };
    s = s.slice(m[0].length);
    const unitMatch = /^[^0-9.]*/.exec(s)!;
    const unit = unitMatch[0];
    if (unit === '') return { error: `missing unit in duration "${text}"` };
    const perUnit = NS_PER_UNIT[unit];
    if (perUnit === undefined) return { error: `unknown unit "${unit}" in duration "${text}"` };
    s = s.slice(unit.length);
    let value = Number(whole || '0') * perUnit;
    if (frac) value += Math.trunc(Number(`0.${frac}`) * perUnit);
    ns += value;
    if (ns > MAX_NS) return { error: `invalid duration "${text}" (out of range)` };
  }
  const ms = ns / 1e6;
  return { ms: negative ? -ms : ms };
}

function withFraction(value: number, digits: number): string {
  const scale = 10 ** digits;
  const whole = Math.floor(value / scale);
  const frac = value % scale;
  if (frac === 0) return String(whole);
  return `${whole}.${String(frac).padStart(digits, '0').replace(/0+$/, '')}`;
}

/** Formats milliseconds as Go's Duration.String() does (`0s`, `500ms`, `1m30s`, `24h0m0s`). */
export function formatGoDuration(ms: number): string {
  const ns = Math.round(ms * 1e6);
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  const u = Math.abs(ns);
  if (u < 1e3) return `${sign}${u}ns`;
  if (u < 1e6) return `${sign}${withFraction(u, 3)}µs`;
  if (u < 1e9) return `${sign}${withFraction(u, 6)}ms`;
  let out = `${withFraction(u % 60e9, 9)}s`;
  const minutes = Math.floor(u / 60e9);
  if (minutes > 0) {
    out = `${minutes % 60}m${out}`;
    const hours = Math.floor(minutes / 60);
    if (hours > 0) out = `${hours}h${out}`;
  }
  return sign + out;
}
