/**
 * IP address parsing as Kubernetes does it. Upstream parses API addresses "sloppily"
 * (netutils.ParseIPSloppy): IPv4 octets with leading zeros are read as decimal, so
 * `10.180.00.001` is `10.180.0.1`. Chain names hash the canonical form, so every address that
 * comes from the API goes through `parseIP` before it is used.
 */

export type IPFamily = 'IPv4' | 'IPv6';

export interface ParsedIP {
  readonly family: IPFamily;
  /** Canonical text: dotted decimal, or RFC 5952 (lower case, longest zero run compressed). */
  readonly text: string;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

export interface ParsedCIDR {
  readonly family: IPFamily;
  /** Canonical `address/prefix` with the host bits cleared, as Go's net.IPNet.String(). */
  readonly text: string;
  readonly network: ParsedIP;
  readonly prefixLength: number;
}

function parseIPv4Bytes(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

function parseIPv6Bytes(s: string): Uint8Array | undefined {
  if (s.length < 2 || s.includes('%')) return undefined;
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl !== -1) {
    if (s.indexOf('::', dbl + 1) !== -1) return undefined;
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const words: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4Bytes(piece);
        if (!v4) return undefined;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
      words.push(Number.parseInt(piece, 16));
    }
    return words;
  };
  const h = groups(head);
  const t = groups(tail);
  if (!h || !t) return undefined;
  let words: number[];
  if (dbl === -1) {
    if (h.length !== 8) return undefined;
    words = h;
  } else {
    const missing = 8 - h.length - t.length;
    if (missing < 1) return undefined;
    words = [...h, ...new Array<number>(missing).fill(0), ...t];
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

function formatIPv6(b: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952: compress the longest run of two or more zero words, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

function fromBytes(bytes: Uint8Array): ParsedIP {
  if (bytes.length === 4) return { family: 'IPv4', text: bytes.join('.'), bytes };
  return { family: 'IPv6', text: formatIPv6(bytes), bytes };
}

/** Parses an IPv4 or IPv6 address (sloppily, as upstream); undefined when it is not one. */
export function parseIP(s: string): ParsedIP | undefined {
  const trimmed = s.trim();
  if (trimmed.includes(':')) {
    const b = parseIPv6Bytes(trimmed);
    return b ? fromBytes(b) : undefined;
  }
  const b = parseIPv4Bytes(trimmed);
  return b ? fromBytes(b) : undefined;
}

/** Parses `address/prefix`; the host bits are cleared as Go's net.ParseCIDR does. */
export function parseCIDR(s: string): ParsedCIDR | undefined {
  const trimmed = s.trim();
  const slash = trimmed.indexOf('/');
  if (slash === -1) return undefined;
  const ip = parseIP(trimmed.slice(0, slash));
  const prefixText = trimmed.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const prefixLength = Number(prefixText);
  const bits = ip.bytes.length * 8;
  if (prefixLength > bits) return undefined;
  const masked = new Uint8Array(ip.bytes);
  for (let bit = prefixLength; bit < bits; bit++) {
    masked[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  const network = fromBytes(masked);
  return { family: ip.family, text: `${network.text}/${prefixLength}`, network, prefixLength };
}

/** True when `ip` lies inside `cidr` (both of one family). */
export function cidrContains(cidr: ParsedCIDR, ip: ParsedIP): boolean {
  if (cidr.family !== ip.family) return false;
  for (let bit = 0; bit < cidr.prefixLength; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((cidr.network.bytes[bit >> 3]! & mask) !== (ip.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/** `ip:port`, with IPv6 in brackets, as Go's net.JoinHostPort. */
export function joinHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function ipFamilyOf(ip: string): IPFamily {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}
