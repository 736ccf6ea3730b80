/**
 * The dump's hot path: reads the datagrams of a ctnetlink dump into flows. A 100,000-entry UDP
 * dump is about 19 MB in some 600 datagrams, and reading it used to cost more than the kernel
 * took to write it. The earlier, plain reader is kept in test/support/conntrack-reference-reader.ts
 * as the reference; this one gives the same flows (tests hold both to the same bytes) for less:
 *
 * - one pass over each datagram, with no object per netlink message or per tuple while reading:
 *   what an entry says is kept in numbers (addresses as their value or their offset) until the
 *   entry is known to be wanted;
 * - entries of another family or protocol (kernels before 5.9 ignore CTA_FILTER) are skipped
 *   before any text is made;
 * - an address repeated between the tuples (a reply without SNAT answers to the original source,
 *   one without DNAT comes from the original destination) is decoded once and its string shared.
 */
import { parseIP } from '../../pkg/net/ip.ts';
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
  IPCTNL_MSG_CT_NEW,
  NFGENMSG_LEN,
  NFNL_SUBSYS_CTNETLINK,
  NLA_TYPE_MASK,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_OVERRUN,
} from './constants.ts';
import { ConntrackError } from './errors.ts';
import { protocolName } from './messages.ts';
import type { ConntrackFamily, ConntrackFlow, ConntrackProtocol, DumpFilter, FlowTuple } from './types.ts';

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;

/** How a datagram ended the dump, if it did. */
export type DumpEnd =
  /** NLMSG_DONE: `errno` 0, or the kernel's error for the whole dump (EINTR: interrupted). */
  | { readonly kind: 'done'; readonly errno: number }
  /** NLMSG_ERROR answering the dump request with a non-zero errno. */
  | { readonly kind: 'error'; readonly errno: number }
  /** NLMSG_OVERRUN: the kernel lost messages. */
  | { readonly kind: 'overrun' };

export interface DumpDatagramResult {
  /** A message of this dump carried NLM_F_DUMP_INTR (the table changed during the dump). */
  readonly interrupted: boolean;
  /** Set when this datagram ends the dump; messages after the end are not read. */
  readonly end: DumpEnd | undefined;
}

/** What the dump asked for: entries of other families or protocols are dropped. */
export interface DumpQuery {
  readonly seq: number;
  readonly family: ConntrackFamily;
  readonly protocol: ConntrackProtocol;
  readonly filter?: CompiledDumpFilter | undefined;
}

function u16(buf: Uint8Array, off: number): number {
  return LE ? buf[off]! | (buf[off + 1]! << 8) : (buf[off]! << 8) | buf[off + 1]!;
}

function u32(buf: Uint8Array, off: number): number {
  return LE
    ? (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0
    : ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

function be16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!;
}

function be32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

const align4 = (n: number) => (n + 3) & ~3;

/** How an address was read: absent, an IPv4 value, or the offset of 16 IPv6 bytes. */
const NONE = 0;
const V4 = 4;
const V6 = 6;

// ---------------------------------------------------------------------------------------------
// Address text

const OCTETS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/**
 * IPv4 text from two halves: "a.b." by the high 16 bits and "c.d" by the low ones, each made
 * once and kept. An address is then one concatenation of two existing strings instead of a
 * seven-part template; the tables hold at most 65,536 short strings each. (A Map from address
 * to text cost more than it saved: a big dump has more distinct clients than any sensible bound,
 * and its lookups and evictions outweighed the strings it spared.)
 */
const V4_HIGH: (string | undefined)[] = new Array<string | undefined>(1 << 16).fill(undefined);
const V4_LOW: (string | undefined)[] = new Array<string | undefined>(1 << 16).fill(undefined);

export function ipv4Text(v: number): string {
  const hi = v >>> 16;
  const lo = v & 0xffff;
  let head = V4_HIGH[hi];
  if (head === undefined) {
    head = `${OCTETS[hi >>> 8]}.${OCTETS[hi & 0xff]}.`;
    V4_HIGH[hi] = head;
  }
  let tail = V4_LOW[lo];
  if (tail === undefined) {
    tail = `${OCTETS[lo >>> 8]}.${OCTETS[lo & 0xff]}`;
    V4_LOW[lo] = tail;
  }
  return head + tail;
}

/** IPv6 text by address bytes, bounded in two generations (IPv6 entries are rarer). */
const V6_GENERATION = 1 << 14;
let v6Young = new Map<string, string>();
let v6Old = new Map<string, string>();

/** The 16 bytes of an IPv6 address as a short string, for Map and Set keys. */
function v6Key(buf: Uint8Array, off: number): string {
  let key = '';
  for (let i = 0; i < 16; i += 2) key += String.fromCharCode(be16(buf, off + i));
  return key;
}

function ipv6Text(buf: Uint8Array, off: number): string {
  // Formatting goes through parseIP for the code base's one RFC 5952 form.
  const key = v6Key(buf, off);
  let text = v6Young.get(key);
  if (text !== undefined) return text;
  text = v6Old.get(key);
  if (text === undefined) {
    const words: string[] = [];
    for (let i = 0; i < 16; i += 2) words.push(be16(buf, off + i).toString(16));
    text = parseIP(words.join(':'))!.text;
  }
  if (v6Young.size >= V6_GENERATION) {
    v6Old = v6Young;
    v6Young = new Map();
  }
  v6Young.set(key, text);
  return text;
}

function sameV6(buf: Uint8Array, a: number, b: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Filters on addresses, checked on values before any text is made

/** A set of addresses of one dump, by value (IPv4) or by byte key (IPv6). */
class AddressSet {
  readonly v4 = new Set<number>();
  readonly v6 = new Set<string>();

  has(buf: Uint8Array, kind: number, v: number): boolean {
    if (kind === V4) return this.v4.has(v);
    if (kind === V6) return this.v6.has(v6Key(buf, v));
    return false;
  }
}

/** A DumpFilter in the form the reader checks. */
export interface CompiledDumpFilter {
  readonly originalDestinations: AddressSet | undefined;
  readonly replySources: AddressSet | undefined;
}

function addressSet(texts: Iterable<string> | undefined): AddressSet | undefined {
  if (texts === undefined) return undefined;
  const set = new AddressSet();
  // Text that is not an address can match no entry: it is left out, not an error.
  for (const text of texts) {
    const ip = parseIP(text);
    if (ip?.family === 'IPv4') set.v4.add(be32(ip.bytes, 0));
    else if (ip?.family === 'IPv6') set.v6.add(v6Key(ip.bytes, 0));
  }
  return set;
}

export function compileDumpFilter(filter: DumpFilter | undefined): CompiledDumpFilter | undefined {
  if (filter === undefined) return undefined;
  if (filter.originalDestinations === undefined && filter.replySources === undefined) return undefined;
  return {
    originalDestinations: addressSet(filter.originalDestinations),
    replySources: addressSet(filter.replySources),
  };
}

// ---------------------------------------------------------------------------------------------
// One entry

// What the entry being read says so far. An address is "none", an IPv4 value or the offset of
// 16 IPv6 bytes in the datagram; the last attribute of a kind wins, as in parseFlow.

/** One tuple as read: numbers only, reused from entry to entry. */
class TupleScratch {
  present = false;
  srcKind = NONE;
  src = 0;
  dstKind = NONE;
  dst = 0;
  srcPort = 0;
  dstPort = 0;
  proto = -1;

  reset(): void {
    this.present = true;
    this.srcKind = NONE;
    this.src = 0;
    this.dstKind = NONE;
    this.dst = 0;
    this.srcPort = 0;
    this.dstPort = 0;
    this.proto = -1;
  }
}

const origScratch = new TupleScratch();
const replyScratch = new TupleScratch();

function readTupleIP(buf: Uint8Array, start: number, end: number, t: TupleScratch): void {
  let off = start;
  while (off + 4 <= end) {
    const len = u16(buf, off);
    if (len < 4 || off + len > end) break;
    const type = u16(buf, off + 2) & NLA_TYPE_MASK;
    const data = off + 4;
    if (len >= 8 && type === CTA_IP_V4_SRC) {
      t.srcKind = V4;
      t.src = be32(buf, data);
    } else if (len >= 8 && type === CTA_IP_V4_DST) {
      t.dstKind = V4;
      t.dst = be32(buf, data);
    } else if (len >= 20 && type === CTA_IP_V6_SRC) {
      t.srcKind = V6;
      t.src = data;
    } else if (len >= 20 && type === CTA_IP_V6_DST) {
      t.dstKind = V6;
      t.dst = data;
    }
    off += align4(len);
  }
}

function readTupleProto(buf: Uint8Array, start: number, end: number, t: TupleScratch): void {
  let off = start;
  while (off + 4 <= end) {
    const len = u16(buf, off);
    if (len < 4 || off + len > end) break;
    const type = u16(buf, off + 2) & NLA_TYPE_MASK;
    const data = off + 4;
    if (type === CTA_PROTO_NUM && len >= 5) t.proto = buf[data]!;
    else if (type === CTA_PROTO_SRC_PORT && len >= 6) t.srcPort = be16(buf, data);
    else if (type === CTA_PROTO_DST_PORT && len >= 6) t.dstPort = be16(buf, data);
    off += align4(len);
  }
}

function readTuple(buf: Uint8Array, start: number, end: number, t: TupleScratch): void {
  t.reset();
  let off = start;
  while (off + 4 <= end) {
    const len = u16(buf, off);
    if (len < 4 || off + len > end) break;
    const type = u16(buf, off + 2) & NLA_TYPE_MASK;
    if (type === CTA_TUPLE_IP) readTupleIP(buf, off + 4, off + len, t);
    else if (type === CTA_TUPLE_PROTO) readTupleProto(buf, off + 4, off + len, t);
    off += align4(len);
  }
}

function addressText(buf: Uint8Array, kind: number, v: number): string {
  if (kind === V4) return ipv4Text(v);
  if (kind === V6) return ipv6Text(buf, v);
  return '';
}

/** Whether two read addresses are the same address (so their text can be shared). */
function sameAddress(buf: Uint8Array, kindA: number, a: number, kindB: number, b: number): boolean {
  if (kindA !== kindB || kindA === NONE) return false;
  return kindA === V4 ? a === b : sameV6(buf, a, b);
}

type MutableFlow = { -readonly [K in keyof ConntrackFlow]: ConntrackFlow[K] };

/**
 * Reads the CT_NEW message at `buf[start, end)` (payload, after the netlink header). Returns the
 * flow when it is a modelled entry (UDP/TCP/SCTP with both tuples) of the wanted family and
 * protocol that passes the filter; undefined otherwise, without making any text. `want*`
 * undefined: any.
 */
export function readEntry(
  buf: Uint8Array,
  start: number,
  end: number,
  seq: number,
  wantFamily?: ConntrackFamily,
  wantProtocol?: ConntrackProtocol,
  filter?: CompiledDumpFilter,
): ConntrackFlow | undefined {
  if (end - start < NFGENMSG_LEN) return undefined;
  const af = buf[start]!;
  const family: ConntrackFamily | undefined = af === AF_INET ? 'IPv4' : af === AF_INET6 ? 'IPv6' : undefined;
  if (family === undefined) return undefined;
  const orig = origScratch;
  const reply = replyScratch;
  orig.present = false;
  reply.present = false;
  let status = 0;
  let mark = 0;
  let id = -1;
  let zone = 0;
  let timeout = -1;
  let off = start + NFGENMSG_LEN;
  while (off + 4 <= end) {
    const len = u16(buf, off);
    if (len < 4 || off + len > end) {
      throw new ConntrackError('parse-error', `bad attribute length ${len} in conntrack message seq ${seq}`);
    }
    const type = u16(buf, off + 2) & NLA_TYPE_MASK;
    const data = off + 4;
    const dlen = len - 4;
    switch (type) {
      case CTA_TUPLE_ORIG:
        readTuple(buf, data, off + len, orig);
        break;
      case CTA_TUPLE_REPLY:
        readTuple(buf, data, off + len, reply);
        break;
      case CTA_STATUS:
        if (dlen >= 4) status = be32(buf, data);
        break;
      case CTA_MARK:
        if (dlen >= 4) mark = be32(buf, data);
        break;
      case CTA_ID:
        if (dlen >= 4) id = be32(buf, data);
        break;
      case CTA_TIMEOUT:
        if (dlen >= 4) timeout = be32(buf, data);
        break;
      case CTA_ZONE:
        if (dlen >= 2) zone = be16(buf, data);
        break;
    }
    off += align4(len);
  }
  // Checked after the walk so that a malformed entry fails the dump whatever its family.
  if (wantFamily !== undefined && family !== wantFamily) return undefined;
  if (!orig.present || !reply.present || orig.srcKind === NONE || reply.srcKind === NONE) return undefined;
  const protocol = protocolName(orig.proto);
  if (protocol === undefined || (wantProtocol !== undefined && protocol !== wantProtocol)) return undefined;
  if (filter !== undefined) {
    const dsts = filter.originalDestinations;
    if (dsts !== undefined && !dsts.has(buf, orig.dstKind, orig.dst)) return undefined;
    const srcs = filter.replySources;
    if (srcs !== undefined && !srcs.has(buf, reply.srcKind, reply.src)) return undefined;
  }

  const oSrc = addressText(buf, orig.srcKind, orig.src);
  const oDst = addressText(buf, orig.dstKind, orig.dst);
  const rSrc = sameAddress(buf, reply.srcKind, reply.src, orig.dstKind, orig.dst)
    ? oDst
    : addressText(buf, reply.srcKind, reply.src);
  const rDst = sameAddress(buf, reply.dstKind, reply.dst, orig.srcKind, orig.src)
    ? oSrc
    : addressText(buf, reply.dstKind, reply.dst);
  const original: FlowTuple = { src: oSrc, dst: oDst, srcPort: orig.srcPort, dstPort: orig.dstPort };
  const replyTuple: FlowTuple = { src: rSrc, dst: rDst, srcPort: reply.srcPort, dstPort: reply.dstPort };
  // Whole literals for what dumps hold (id and timeout always, a zone sometimes): properties
  // added after creation would cost every flow a second allocation for their storage. Key order
  // as parseFlow's.
  if (id !== -1 && timeout !== -1) {
    return zone === 0
      ? { family, protocol, original, reply: replyTuple, status, mark, id, timeout }
      : { family, protocol, original, reply: replyTuple, status, mark, id, zone, timeout };
  }
  const flow: MutableFlow = { family, protocol, original, reply: replyTuple, status, mark };
  if (id !== -1) flow.id = id;
  if (zone !== 0) flow.zone = zone;
  if (timeout !== -1) flow.timeout = timeout;
  return flow;
}

// ---------------------------------------------------------------------------------------------
// One datagram

const CONTINUE: DumpDatagramResult = { interrupted: false, end: undefined };
const CONTINUE_INTERRUPTED: DumpDatagramResult = { interrupted: true, end: undefined };

function s32(buf: Uint8Array, off: number): number {
  return u32(buf, off) | 0;
}

/**
 * Reads one received datagram of the dump `q`: appends its wanted entries to `out` and says
 * whether the dump was interrupted or ended. Messages of other requests (another seq) are
 * ignored. A malformed message header or entry attribute throws a ConntrackError('parse-error'):
 * what follows it cannot be framed.
 */
export function readDumpDatagram(buf: Uint8Array, q: DumpQuery, out: ConntrackFlow[]): DumpDatagramResult {
  let interrupted = false;
  let off = 0;
  const n = buf.length;
  while (off + NLMSG_HDRLEN <= n) {
    const len = u32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > n) {
      throw new ConntrackError('parse-error', `bad netlink message length ${len} at offset ${off} of ${n}`);
    }
    const seq = u32(buf, off + 8);
    if (seq === q.seq) {
      const type = u16(buf, off + 4);
      if (u16(buf, off + 6) & NLM_F_DUMP_INTR) interrupted = true;
      const start = off + NLMSG_HDRLEN;
      const end = off + len;
      if (type === CT_NEW) {
        const flow = readEntry(buf, start, end, seq, q.family, q.protocol, q.filter);
        if (flow !== undefined) out.push(flow);
      } else if (type === NLMSG_DONE) {
        return { interrupted, end: { kind: 'done', errno: end - start >= 4 ? 0 - s32(buf, start) : 0 } };
      } else if (type === NLMSG_ERROR) {
        if (end - start < 4) throw new ConntrackError('parse-error', 'short NLMSG_ERROR message');
        const errno = 0 - s32(buf, start);
        if (errno !== 0) return { interrupted, end: { kind: 'error', errno } };
      } else if (type === NLMSG_OVERRUN) {
        return { interrupted, end: { kind: 'overrun' } };
      }
    }
    off += align4(len);
  }
  return interrupted ? CONTINUE_INTERRUPTED : CONTINUE;
}
