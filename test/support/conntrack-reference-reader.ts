/**
 * The reference reader of conntrack dump entries, for tests: a plain attribute walk that builds a
 * flow from every entry, which the daemon's one-pass reader (conntrack/netlink/dump.ts) must agree
 * with on captured and generated datagrams. It was the client's reader before dump.ts and is kept
 * here, out of the product, as the oracle.
 */
import { endianness } from 'node:os';
import {
  AF_INET,
  AF_INET6,
  CTA_ID,
  CTA_IP_V4_DST,
  CTA_IP_V4_SRC,
  CTA_IP_V6_DST,
  CTA_IP_V6_SRC,
  CTA_MARK,
  CTA_PROTO_DST_PORT,
  CTA_PROTO_NUM,
  CTA_PROTO_SRC_PORT,
  CTA_STATUS,
  CTA_TIMEOUT,
  CTA_TUPLE_IP,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  CTA_TUPLE_REPLY,
  CTA_ZONE,
  NFGENMSG_LEN,
  NLA_TYPE_MASK,
} from '../../conntrack/netlink/constants.ts';
import { ConntrackError } from '../../conntrack/netlink/errors.ts';
import { protocolName, type RawMessage } from '../../conntrack/netlink/messages.ts';
import type { ConntrackFamily, ConntrackFlow } from '../../conntrack/netlink/types.ts';
import { parseIP } from '../../pkg/net/ip.ts';

const LE = endianness() === 'LE';

function readU16(buf: Buffer, off: number): number {
  return LE ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
}

function readBE16(buf: Buffer, off: number): number {
  return buf.readUInt16BE(off);
}

function readBE32(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off);
}

const align4 = (n: number) => (n + 3) & ~3;

/** Decimal text of each byte value, so IPv4 text is built without number formatting. */
const OCTETS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/**
 * IPv4 text by address value. Service IPs, endpoints and clients repeat across the entries of a
 * dump; reusing their strings saves most of a big dump's allocations, and with them most of its
 * garbage-collection time. Bounded: cleared when full.
 */
const ipv4Cache = new Map<number, string>();
const IPV4_CACHE_MAX = 1 << 16;

function ipv4Text(buf: Buffer, off: number): string {
  const v = readBE32(buf, off);
  let text = ipv4Cache.get(v);
  if (text === undefined) {
    text = `${OCTETS[buf[off]!]}.${OCTETS[buf[off + 1]!]}.${OCTETS[buf[off + 2]!]}.${OCTETS[buf[off + 3]!]}`;
    if (ipv4Cache.size >= IPV4_CACHE_MAX) ipv4Cache.clear();
    ipv4Cache.set(v, text);
  }
  return text;
}

function ipv6Text(buf: Buffer, off: number): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(readBE16(buf, off + i).toString(16));
  // parseIP applies the RFC 5952 compression the rest of the code base uses.
  return parseIP(words.join(':'))!.text;
}

interface MutableTuple {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
}

/** CTA_PROTO_NUM of the tuple read last (kept apart so tuples keep the public shape). */
let lastProto = -1;

function parseTupleIP(buf: Buffer, start: number, end: number, t: MutableTuple): void {
  let off = start;
  while (off + 4 <= end) {
    const len = readU16(buf, off);
    if (len < 4 || off + len > end) break;
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    const data = off + 4;
    if (len >= 8 && type === CTA_IP_V4_SRC) t.src = ipv4Text(buf, data);
    else if (len >= 8 && type === CTA_IP_V4_DST) t.dst = ipv4Text(buf, data);
    else if (len >= 20 && type === CTA_IP_V6_SRC) t.src = ipv6Text(buf, data);
    else if (len >= 20 && type === CTA_IP_V6_DST) t.dst = ipv6Text(buf, data);
    off += align4(len);
  }
}

function parseTupleProto(buf: Buffer, start: number, end: number, t: MutableTuple): void {
  let off = start;
  while (off + 4 <= end) {
    const len = readU16(buf, off);
    if (len < 4 || off + len > end) break;
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    const data = off + 4;
    if (type === CTA_PROTO_NUM && len >= 5) lastProto = buf[data]!;
    else if (type === CTA_PROTO_SRC_PORT && len >= 6) t.srcPort = readBE16(buf, data);
    else if (type === CTA_PROTO_DST_PORT && len >= 6) t.dstPort = readBE16(buf, data);
    off += align4(len);
  }
}

function parseTuple(buf: Buffer, start: number, end: number): MutableTuple {
  const t: MutableTuple = { src: '', dst: '', srcPort: 0, dstPort: 0 };
  lastProto = -1;
  let off = start;
  while (off + 4 <= end) {
    const len = readU16(buf, off);
    if (len < 4 || off + len > end) break;
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    if (type === CTA_TUPLE_IP) parseTupleIP(buf, off + 4, off + len, t);
    else if (type === CTA_TUPLE_PROTO) parseTupleProto(buf, off + 4, off + len, t);
    off += align4(len);
  }
  return t;
}

/**
 * Reads one IPCTNL_MSG_CT_NEW message (the kernel's dump entries use that type) into a flow.
 * Returns undefined for entries this client does not model: other families, protocols other
 * than UDP/TCP/SCTP (ICMP has no ports), or entries missing a tuple.
 */
export function parseFlow(buf: Buffer, m: RawMessage): ConntrackFlow | undefined {
  if (m.end - m.start < NFGENMSG_LEN) return undefined;
  const af = buf[m.start]!;
  const family: ConntrackFamily | undefined = af === AF_INET ? 'IPv4' : af === AF_INET6 ? 'IPv6' : undefined;
  if (!family) return undefined;
  let orig: MutableTuple | undefined;
  let reply: MutableTuple | undefined;
  let proto = -1;
  let status = 0;
  let mark = 0;
  let id: number | undefined;
  let zone: number | undefined;
  let timeout: number | undefined;
  let off = m.start + NFGENMSG_LEN;
  while (off + 4 <= m.end) {
    const len = readU16(buf, off);
    if (len < 4 || off + len > m.end) {
      throw new ConntrackError(
        'parse-error',
        `bad attribute length ${len} in conntrack message seq ${m.seq}`,
      );
    }
    const type = readU16(buf, off + 2) & NLA_TYPE_MASK;
    const data = off + 4;
    const dlen = len - 4;
    switch (type) {
      case CTA_TUPLE_ORIG:
        orig = parseTuple(buf, data, off + len);
        proto = lastProto;
        break;
      case CTA_TUPLE_REPLY:
        reply = parseTuple(buf, data, off + len);
        break;
      case CTA_STATUS:
        if (dlen >= 4) status = readBE32(buf, data);
        break;
      case CTA_MARK:
        if (dlen >= 4) mark = readBE32(buf, data);
        break;
      case CTA_ID:
        if (dlen >= 4) id = readBE32(buf, data);
        break;
      case CTA_TIMEOUT:
        if (dlen >= 4) timeout = readBE32(buf, data);
        break;
      case CTA_ZONE:
        if (dlen >= 2) zone = readBE16(buf, data);
        break;
    }
    off += align4(len);
  }
  if (!orig || !reply || !orig.src || !reply.src) return undefined;
  const protocol = protocolName(proto);
  if (!protocol) return undefined;
  const flow: { -readonly [K in keyof ConntrackFlow]: ConntrackFlow[K] } = {
    family,
    protocol,
    original: orig,
    reply,
    status,
    mark,
  };
  if (id !== undefined) flow.id = id;
  if (zone !== undefined && zone !== 0) flow.zone = zone;
  if (timeout !== undefined) flow.timeout = timeout;
  return flow;
}
