import { describe, expect, it } from 'vitest';
import {
  CTA_ZONE,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
  NLM_F_DUMP_FILTERED,
  NLM_F_MULTI,
  NLMSG_DONE,
} from '../../../../conntrack/netlink/constants.ts';
import { ConntrackError } from '../../../../conntrack/netlink/errors.ts';
import {
  buildDeleteRequest,
  buildDumpRequest,
  buildNewRequest,
  ctMessageType,
  forEachMessage,
  parseDoneMessage,
  parseErrorMessage,
  type RawMessage,
} from '../../../../conntrack/netlink/messages.ts';
import type { ConntrackFlow } from '../../../../conntrack/netlink/types.ts';
import { parseFlow } from '../../../support/conntrack-reference-reader.ts';

import { CAPTURED_DONE4, CAPTURED_UDP4, CAPTURED_UDP6 } from './captured.ts';

const hex = (s: string) => Buffer.from(s, 'hex');

function messagesOf(buf: Buffer): RawMessage[] {
  const out: RawMessage[] = [];
  forEachMessage(buf, (m) => out.push(m));
  return out;
}

const udp4: ConntrackFlow = {
  family: 'IPv4',
  protocol: 'UDP',
  original: { src: '10.0.0.1', dst: '10.96.0.10', srcPort: 12345, dstPort: 53 },
  reply: { src: '10.96.0.10', dst: '10.0.0.1', srcPort: 53, dstPort: 12345 },
  status: IPS_SEEN_REPLY | IPS_CONFIRMED,
  mark: 0,
};

describe('parsing captured dump replies', () => {
  it('reads an IPv4 UDP entry: tuples, status, mark, id and timeout (big-endian values)', () => {
    const buf = hex(CAPTURED_UDP4);
    const [m, ...rest] = messagesOf(buf);
    expect(rest).toEqual([]);
    expect(m!.type).toBe(ctMessageType(0));
    expect(m!.flags).toBe(NLM_F_MULTI | NLM_F_DUMP_FILTERED);
    expect(m!.seq).toBe(0x0f056c96);
    expect(parseFlow(buf, m!)).toEqual({ ...udp4, id: 2572586901, timeout: 97 });
  });

  it('reads an IPv6 UDP entry with canonical (RFC 5952) addresses', () => {
    const buf = hex(CAPTURED_UDP6);
    const [m] = messagesOf(buf);
    expect(parseFlow(buf, m!)).toEqual({
      family: 'IPv6',
      protocol: 'UDP',
      original: { src: 'fd00::1', dst: 'fd00:96::a', srcPort: 12345, dstPort: 53 },
      reply: { src: 'fd00:96::a', dst: 'fd00::1', srcPort: 53, dstPort: 12345 },
      status: IPS_CONFIRMED,
      mark: 0,
      id: 2344844348,
      timeout: 96,
    });
  });

  it('reads NLMSG_DONE and frames several messages in one datagram', () => {
    const buf = Buffer.concat([hex(CAPTURED_UDP4), hex(CAPTURED_DONE4)]);
    const ms = messagesOf(buf);
    expect(ms.map((m) => m.type)).toEqual([ctMessageType(0), NLMSG_DONE]);
    expect(parseDoneMessage(buf, ms[1]!)).toBe(0);
  });

  it('refuses a datagram whose message length runs past its end', () => {
    const buf = hex(CAPTURED_UDP4).subarray(0, 100);
    expect(() => messagesOf(buf)).toThrow(ConntrackError);
  });

  it('skips entries it does not model (ICMP has no ports)', () => {
    const buf = Buffer.from(hex(CAPTURED_UDP4));
    // Both CTA_PROTO_NUM bytes (orig and reply tuple) from 17 to 1 (ICMP).
    let n = 0;
    for (let i = buf.indexOf('0500010011', 0, 'hex'); i !== -1; i = buf.indexOf('0500010011', i + 1, 'hex')) {
      buf[i + 4] = 1;
      n++;
    }
    expect(n).toBe(2);
    expect(parseFlow(buf, messagesOf(buf)[0]!)).toBeUndefined();
  });
});

describe('building requests', () => {
  it('dump: CT_GET with REQUEST|DUMP, family in nfgenmsg, protocol filter in CTA_TUPLE_ORIG + CTA_FILTER', () => {
    const req = buildDumpRequest('IPv4', 'UDP', 0x01020304);
    expect(req.toString('hex')).toBe(
      [
        '30000000', // length 48
        '0101', // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
        '0103', // NLM_F_REQUEST | NLM_F_DUMP
        '04030201', // seq
        '00000000', // port
        '02000000', // nfgenmsg: AF_INET, v0, res_id 0
        '10000180', // CTA_TUPLE_ORIG, nested
        '0c000280', // CTA_TUPLE_PROTO, nested
        '0500010011000000', // CTA_PROTO_NUM = 17, padded
        '0c001980', // CTA_FILTER, nested
        '0800010008000000', // CTA_FILTER_ORIG_FLAGS = CTA_FILTER_F_CTA_PROTO_NUM (host order)
      ].join(''),
    );
    const v6 = buildDumpRequest('IPv6', 'SCTP', 1);
    expect(v6[16]).toBe(10);
    expect(v6.subarray(28, 36).toString('hex')).toBe('0500010084000000');
  });

  it('delete: CT_DELETE with REQUEST|ACK and the original tuple laid out as the kernel dumps it', () => {
    const req = buildDeleteRequest(udp4, 7);
    const capturedOrigTuple = hex(CAPTURED_UDP4)
      .subarray(20, 20 + 0x34)
      .toString('hex');
    expect(req.toString('hex')).toBe(`48000000020105000700000000000000` + `02000000${capturedOrigTuple}`);
  });

  it('delete: appends CTA_ZONE (big-endian) for a non-default zone only', () => {
    const plain = buildDeleteRequest({ ...udp4, zone: 0 }, 7);
    expect(plain.length).toBe(72);
    const zoned = buildDeleteRequest({ ...udp4, zone: 7 }, 7);
    expect(zoned.length).toBe(80);
    expect(zoned.subarray(72).toString('hex')).toBe(
      `0600${CTA_ZONE.toString(16).padStart(2, '0')}0000070000`,
    );
  });

  it('new: round-trips through the dump parser, NAT reply tuple, mark and zone included', () => {
    const req = buildNewRequest(
      {
        family: 'IPv6',
        protocol: 'SCTP',
        original: { src: 'fd00:0:0::1', dst: 'FD00:96::A', srcPort: 40000, dstPort: 9 },
        reply: { src: 'fd00:244::5', dst: 'fd00::1', srcPort: 9090, dstPort: 40000 },
        timeout: 120,
        status: IPS_SEEN_REPLY,
        mark: 0xdeadbeef,
        zone: 3,
      },
      9,
    );
    const [m] = messagesOf(req);
    expect(m!.flags).toBe(0x1 | 0x4 | 0x400 | 0x200);
    expect(parseFlow(req, m!)).toEqual({
      family: 'IPv6',
      protocol: 'SCTP',
      original: { src: 'fd00::1', dst: 'fd00:96::a', srcPort: 40000, dstPort: 9 },
      reply: { src: 'fd00:244::5', dst: 'fd00::1', srcPort: 9090, dstPort: 40000 },
      status: IPS_SEEN_REPLY | IPS_CONFIRMED,
      mark: 0xdeadbeef,
      zone: 3,
      timeout: 120,
    });
  });

  it('refuses an address of the wrong family with a parse-error', () => {
    const bad = { ...udp4, original: { ...udp4.original, dst: 'fd00::1' } };
    expect(() => buildDeleteRequest(bad, 1)).toThrow(expect.objectContaining({ code: 'parse-error' }));
  });
});

describe('NLMSG_ERROR', () => {
  it('gives the positive errno and the seq of the echoed request', () => {
    const req = buildDeleteRequest(udp4, 0x11223344);
    const err = Buffer.alloc(16 + 4 + 16);
    err.writeUInt32LE(err.length, 0);
    err.writeUInt16LE(2, 4);
    err.writeUInt32LE(0x11223344, 8);
    err.writeInt32LE(-2, 16);
    req.copy(err, 20, 0, 16);
    const [m] = messagesOf(err);
    expect(parseErrorMessage(err, m!)).toEqual({ errno: 2, seq: 0x11223344 });
  });
});
