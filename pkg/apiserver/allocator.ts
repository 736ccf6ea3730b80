/**
 * Allocators for Service cluster IPs (one per service CIDR) and node ports. Both hand out values
 * next-fit from a rolling cursor rather than first-fit: a released value is reused only after the
 * whole range has been walked, so a deleted Service's cluster IP does not come straight back on
 * the next create (stale conntrack entries for it would otherwise hit the new Service). Upstream
 * picks at random for the same reason; next-fit keeps our tests deterministic.
 */
import { type IPFamily, type ParsedCIDR, parseCIDR, parseIP } from '../net/ip.ts';

export class AllocationError extends Error {
  override readonly name = 'AllocationError';
  readonly code: 'OutOfRange' | 'AlreadyAllocated' | 'RangeFull';
  constructor(code: 'OutOfRange' | 'AlreadyAllocated' | 'RangeFull', message: string) {
    super(message);
    this.code = code;
  }
}

export interface IPAllocator {
  readonly cidr: ParsedCIDR;
  readonly family: IPFamily;
  /** True when `ip` is an address this range can hand out. */
  contains(ip: string): boolean;
  allocateNext(): string;
  /** Takes a specific address (canonical text is returned); throws AllocationError. */
  allocate(ip: string): string;
  release(ip: string): void;
  isAllocated(ip: string): boolean;
}

function bytesToBigInt(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function bigIntToText(v: bigint, family: IPFamily): string {
  const len = family === 'IPv4' ? 4 : 16;
  const bytes: number[] = [];
  let rest = v;
  for (let i = 0; i < len; i++) {
    bytes.unshift(Number(rest & 0xffn));
    rest >>= 8n;
  }
  if (family === 'IPv4') return bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return parseIP(words.join(':'))!.text;
}

/**
 * The usable addresses of a CIDR are those after the network address, and for IPv4 before the
 * broadcast address, as upstream's ipallocator.
 */
export function createIPAllocator(cidrText: string): IPAllocator {
  const cidr = parseCIDR(cidrText);
  if (!cidr) throw new AllocationError('OutOfRange', `invalid service CIDR "${cidrText}"`);
  const bits = cidr.family === 'IPv4' ? 32 : 128;
  const base = bytesToBigInt(cidr.network.bytes);
  const size = 1n << BigInt(bits - cidr.prefixLength);
  const first = 1n;
  const last = cidr.family === 'IPv4' ? size - 2n : size - 1n;
  if (last < first) throw new AllocationError('OutOfRange', `service CIDR "${cidrText}" is too small`);
  const used = new Set<string>();
  let cursor = first;

  const offsetOf = (ip: string): bigint | undefined => {
    const p = parseIP(ip);
    if (!p || p.family !== cidr.family) return undefined;
    const off = bytesToBigInt(p.bytes) - base;
    return off >= first && off <= last ? off : undefined;
  };

  return {
    cidr,
    family: cidr.family,
    contains: (ip) => offsetOf(ip) !== undefined,
    isAllocated: (ip) => {
      const p = parseIP(ip);
      return p !== undefined && used.has(p.text);
    },
    allocate(ip) {
      if (offsetOf(ip) === undefined) {
        throw new AllocationError(
          'OutOfRange',
          `the provided IP (${ip}) is not in the valid range ${cidr.text}`,
        );
      }
      const text = parseIP(ip)!.text;
      if (used.has(text))
        throw new AllocationError('AlreadyAllocated', `the provided IP (${ip}) is already allocated`);
      used.add(text);
      return text;
    },
    allocateNext() {
      const count = last - first + 1n;
      if (BigInt(used.size) >= count) throw new AllocationError('RangeFull', `range ${cidr.text} is full`);
      for (;;) {
        const text = bigIntToText(base + cursor, cidr.family);
        cursor = cursor >= last ? first : cursor + 1n;
        if (!used.has(text)) {
          used.add(text);
          return text;
        }
      }
    },
    release(ip) {
      const p = parseIP(ip);
      if (p) used.delete(p.text);
    },
  };
}

export interface PortAllocator {
  readonly range: readonly [number, number];
  contains(port: number): boolean;
  allocateNext(): number;
  allocate(port: number): number;
  release(port: number): void;
  isAllocated(port: number): boolean;
}

export function createPortAllocator(range: readonly [number, number]): PortAllocator {
  const [lo, hi] = range;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
    throw new AllocationError('OutOfRange', `invalid port range ${lo}-${hi}`);
  }
  const used = new Set<number>();
  let cursor = lo;
  const contains = (p: number) => Number.isInteger(p) && p >= lo && p <= hi;
  return {
    range: [lo, hi],
    contains,
    isAllocated: (p) => used.has(p),
    allocate(p) {
      if (!contains(p))
        throw new AllocationError(
          'OutOfRange',
          `provided port is not in the valid range. The range of valid ports is ${lo}-${hi}`,
        );
      if (used.has(p)) throw new AllocationError('AlreadyAllocated', 'provided port is already allocated');
      used.add(p);
      return p;
    },
    allocateNext() {
      if (used.size > hi - lo) throw new AllocationError('RangeFull', `range ${lo}-${hi} is full`);
      for (;;) {
        const p = cursor;
        cursor = cursor >= hi ? lo : cursor + 1;
        if (!used.has(p)) {
          used.add(p);
          return p;
        }
      }
    },
    release(p) {
      used.delete(p);
    },
  };
}
