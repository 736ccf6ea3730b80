/**
 * ctnetlink message building and parsing, pure: bytes in, values out. Requests are assembled with
 * the `netlink` package's formatters; replies are read by a walker over offsets instead of its
 * `parseAttributes`, because a dump of 100,000 entries holds about 2.5 million attributes and a
 * Buffer slice per attribute costs more than the rest of the dump together.
 *
 * Byte order: netlink headers, attribute headers and CTA_FILTER flags are in host order; every
 * ctnetlink value (ports, status, mark, timeout, id, zone) is big-endian on the wire.
 */
import { endianness } from 'node:os';
import { formatAttribute, formatMessage, pad } from 'netlink';
import { parseIP } from '../../pkg/net/ip.ts';
import {
  AF_INET,
  AF_INET6,
  CTA_FILTER,
  CTA_FILTER_F_CTA_PROTO_NUM,
  CTA_FILTER_ORIG_FLAGS,
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
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPS_CONFIRMED,
  NFNETLINK_V0,
  NFNL_SUBSYS_CTNETLINK,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
} from './constants.ts';
import { ConntrackError } from './errors.ts';
import type { ConntrackFamily, ConntrackFlow, ConntrackProtocol, FlowTuple } from './types.ts';

const LE = endianness() === 'LE';

export function ctMessageType(msg: number): number {
  return (NFNL_SUBSYS_CTNETLINK << 8) | msg;
}

export function familyNumber(family: ConntrackFamily): number {
  return family === 'IPv4' ? AF_INET : AF_INET6;
}

export function protocolNumber(protocol: ConntrackProtocol): number {
  switch (protocol) {
    case 'UDP':
      return IPPROTO_UDP;
    case 'TCP':
      return IPPROTO_TCP;
    case 'SCTP':
      return IPPROTO_SCTP;
  }
}

export function protocolName(num: number): ConntrackProtocol | undefined {
  if (num === IPPROTO_UDP) return 'UDP';
  if (num === IPPROTO_TCP) return 'TCP';
  if (num === IPPROTO_SCTP) return 'SCTP';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Building requests

type Chunks = Uint8Array[];

function attr(type: number, data: Uint8Array | Chunks, nested = false): Chunks {
  return pad(formatAttribute({ type, data, nested }));
}

function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}

function be16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v, 0);
  return b;
}

function be32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

function hostU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeUInt32LE(v >>> 0, 0);
  else b.writeUInt32BE(v >>> 0, 0);
  return b;
}

function nfgenmsg(family: ConntrackFamily): Buffer {
  // family, version, res_id (big-endian 0)
  return Buffer.from([familyNumber(family), NFNETLINK_V0, 0, 0]);
}

function ipBytes(family: ConntrackFamily, text: string): Uint8Array {
  const ip = parseIP(text);
  if (!ip || ip.family !== family) {
    throw new ConntrackError('parse-error', `${JSON.stringify(text)} is not an ${family} address`);
  }
  return ip.bytes;
}

function tupleAttr(type: number, family: ConntrackFamily, protocol: ConntrackProtocol, t: FlowTuple): Chunks {
  const [srcType, dstType] =
    family === 'IPv4' ? [CTA_IP_V4_SRC, CTA_IP_V4_DST] : [CTA_IP_V6_SRC, CTA_IP_V6_DST];
  const ip = attr(
    CTA_TUPLE_IP,
    [...attr(srcType, ipBytes(family, t.src)), ...attr(dstType, ipBytes(family, t.dst))],
    true,
  );
  const proto = attr(
    CTA_TUPLE_PROTO,
    [
      ...attr(CTA_PROTO_NUM, u8(protocolNumber(protocol))),
      ...attr(CTA_PROTO_SRC_PORT, be16(t.srcPort)),
      ...attr(CTA_PROTO_DST_PORT, be16(t.dstPort)),
    ],
    true,
  );
  return attr(type, [...ip, ...proto], true);
}

function message(type: number, flags: number, seq: number, body: Chunks): Buffer {
  return Buffer.concat(formatMessage({ type, flags, seq, port: 0, data: body }));
}

/**
 * IPCTNL_MSG_CT_GET with NLM_F_DUMP for one family and protocol. The family goes in nfgenmsg
 * (the kernel skips other families); the protocol goes in CTA_TUPLE_ORIG with CTA_FILTER
 * {ORIG_FLAGS: PROTO_NUM}. Kernels before 5.9 ignore CTA_FILTER and dump every protocol, which
 * is why callers filter again.
 */
export function buildDumpRequest(family: ConntrackFamily, protocol: ConntrackProtocol, seq: number): Buffer {
  const proto = attr(CTA_TUPLE_PROTO, attr(CTA_PROTO_NUM, u8(protocolNumber(protocol))), true);
  const body: Chunks = [
    nfgenmsg(family),
    ...attr(CTA_TUPLE_ORIG, proto, true),
    ...attr(CTA_FILTER, attr(CTA_FILTER_ORIG_FLAGS, hostU32(CTA_FILTER_F_CTA_PROTO_NUM)), true),
  ];
  return message(ctMessageType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, seq, body);
}

/**
 * IPCTNL_MSG_CT_DELETE for one entry, found by its original tuple in its zone (the kernel looks
 * the tuple up in the hash, so both directions' entries go with it). Asks for an ack.
 */
export function buildDeleteRequest(flow: ConntrackFlow, seq: number): Buffer {
  const body: Chunks = [
    nfgenmsg(flow.family),
    ...tupleAttr(CTA_TUPLE_ORIG, flow.family, flow.protocol, flow.original),
  ];
  if (flow.zone !== undefined && flow.zone !== 0) body.push(...attr(CTA_ZONE, be16(flow.zone)));
  return message(ctMessageType(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, seq, body);
}

/** An entry to create (benchmarks and kernel tests); `timeout` in seconds. */
export interface NewConntrackFlow {
  readonly family: ConntrackFamily;
  readonly protocol: ConntrackProtocol;
  readonly original: FlowTuple;
  /** Defaults to the inverse of `original` (no NAT). */
  readonly reply?: FlowTuple;
  readonly timeout: number;
  /** IPS_* bits to set, e.g. IPS_SEEN_REPLY (IPS_CONFIRMED is added). */
  readonly status?: number;
  readonly mark?: number;
  readonly zone?: number;
}

export function invertTuple(t: FlowTuple): FlowTuple {
  return { src: t.dst, dst: t.src, srcPort: t.dstPort, dstPort: t.srcPort };
}

/** IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL: fails with EEXIST rather than update. */
export function buildNewRequest(flow: NewConntrackFlow, seq: number): Buffer {
  const reply = flow.reply ?? invertTuple(flow.original);
  const body: Chunks = [
    nfgenmsg(flow.family),
    ...tupleAttr(CTA_TUPLE_ORIG, flow.family, flow.protocol, flow.original),
    ...tupleAttr(CTA_TUPLE_REPLY, flow.family, flow.protocol, reply),
    ...attr(CTA_TIMEOUT, be32(flow.timeout)),
  ];
  // The kernel marks a new entry IPS_CONFIRMED before applying CTA_STATUS and refuses (EBUSY) a
  // status that would clear that bit, so it is always sent along.
  if (flow.status !== undefined) body.push(...attr(CTA_STATUS, be32(flow.status | IPS_CONFIRMED)));
  if (flow.mark !== undefined) body.push(...attr(CTA_MARK, be32(flow.mark)));
  if (flow.zone !== undefined && flow.zone !== 0) body.push(...attr(CTA_ZONE, be16(flow.zone)));
  const flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  return message(ctMessageType(IPCTNL_MSG_CT_NEW), flags, seq, body);
}

// ---------------------------------------------------------------------------------------------
// Reading replies

/** One netlink message inside a received datagram; the payload is `buf[start, end)`. */
export interface RawMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly start: number;
  readonly end: number;
}

// Host-order reads by hand: the hot loop below calls these millions of times per big dump and
// plain indexing avoids Buffer's per-call range checks (callers check bounds themselves).
function readU16(buf: Buffer, off: number): number {
  return LE ? buf[off]! | (buf[off + 1]! << 8) : (buf[off]! << 8) | buf[off + 1]!;
}

function readU32(buf: Buffer, off: number): number {
  return LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}

function readS32(buf: Buffer, off: number): number {
  return LE ? buf.readInt32LE(off) : buf.readInt32BE(off);
}

const align4 = (n: number) => (n + 3) & ~3;

/**
 * Calls `fn` for each netlink message of a datagram. A truncated or malformed header ends the
 * walk with a ConntrackError: the rest of the datagram cannot be framed.
 */
export function forEachMessage(buf: Buffer, fn: (m: RawMessage) => void): void {
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = readU32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new ConntrackError(
        'parse-error',
        `bad netlink message length ${len} at offset ${off} of ${buf.length}`,
      );
    }
    fn({
      type: readU16(buf, off + 4),
      flags: readU16(buf, off + 6),
      seq: readU32(buf, off + 8),
      start: off + NLMSG_HDRLEN,
      end: off + len,
    });
    off += align4(len);
  }
}

/** The NLMSG_ERROR payload: a positive errno (0 for an ack) and the seq of the request. */
export function parseErrorMessage(buf: Buffer, m: RawMessage): { errno: number; seq: number } {
  if (m.end - m.start < 4) throw new ConntrackError('parse-error', 'short NLMSG_ERROR message');
  const errno = 0 - readS32(buf, m.start);
  // The echoed request header follows the error code; its seq equals the outer one for
  // requests from this socket, but read it when present to be exact.
  const seq = m.end - m.start >= 4 + NLMSG_HDRLEN ? readU32(buf, m.start + 4 + 8) : m.seq;
  return { errno, seq };
}

/** NLMSG_DONE carries an int: 0, or a negative errno when the dump itself failed. */
export function parseDoneMessage(buf: Buffer, m: RawMessage): number {
  return m.end - m.start >= 4 ? 0 - readS32(buf, m.start) : 0;
}
