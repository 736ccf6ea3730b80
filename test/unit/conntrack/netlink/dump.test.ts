import { describe, expect, it } from 'vitest';
import { CTA_ZONE, NLM_F_DUMP_INTR, NLMSG_OVERRUN } from '../../../../conntrack/netlink/constants.ts';
import {
  compileDumpFilter,
  type DumpDatagramResult,
  type DumpQuery,
  ipv4Text,
  readDumpDatagram,
} from '../../../../conntrack/netlink/dump.ts';
import { ConntrackError } from '../../../../conntrack/netlink/errors.ts';
import { forEachMessage } from '../../../../conntrack/netlink/messages.ts';
import type {
  ConntrackFamily,
  ConntrackFlow,
  ConntrackProtocol,
  DumpFilter,
} from '../../../../conntrack/netlink/types.ts';
import { parseIP } from '../../../../pkg/net/ip.ts';
import { parseFlow } from '../../../support/conntrack-reference-reader.ts';
import { CAPTURED_DONE4, CAPTURED_UDP4, CAPTURED_UDP6 } from './captured.ts';
import { doneMessage, dumpEntry, errorMessage } from './fake-kernel.ts';

const hex = (s: string) => Buffer.from(s, 'hex');
const CAPTURED_SEQ4 = 0x0f056c96;
const CAPTURED_SEQ6 = 0x0c7bb970;

/** What the reference reader (forEachMessage + parseFlow) makes of a datagram for a query. */
function reference(buf: Buffer, q: DumpQuery, filter?: DumpFilter): ConntrackFlow[] {
  const out: ConntrackFlow[] = [];
  const inSet = (set: Iterable<string> | undefined, ip: string) =>
    set === undefined || [...set].some((t) => parseIP(t)?.text === ip);
  forEachMessage(buf, (m) => {
    if (m.seq !== q.seq || m.type !== 0x100) return;
    const f = parseFlow(buf, m);
    if (!f || f.family !== q.family || f.protocol !== q.protocol) return;
    if (!inSet(filter?.originalDestinations, f.original.dst) || !inSet(filter?.replySources, f.reply.src))
      return;
    out.push(f);
  });
  return out;
}

function read(buf: Buffer, q: DumpQuery): { flows: ConntrackFlow[]; result: DumpDatagramResult } {
  const flows: ConntrackFlow[] = [];
  const result = readDumpDatagram(buf, q, flows);
  return { flows, result };
}

/** A small deterministic generator, so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

function randomAddress(next: () => number, family: ConntrackFamily): string {
  if (family === 'IPv4') {
    const v = next();
    // Edge values now and then: 0.0.0.0 and 255.255.255.255.
    const w = v % 50 === 0 ? 0 : v % 50 === 1 ? 0xffffffff : v;
    return [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255].join('.');
  }
  const words = Array.from({ length: 8 }, () => {
    const r = next();
    // Many zero words, so RFC 5952 compression is exercised in all its positions.
    return r % 3 === 0 ? 0 : r & 0xffff;
  });
  return parseIP(words.map((w) => w.toString(16)).join(':'))!.text;
}

function randomFlow(next: () => number): ConntrackFlow {
  const family: ConntrackFamily = next() % 3 === 0 ? 'IPv6' : 'IPv4';
  const protocols: ConntrackProtocol[] = ['UDP', 'TCP', 'SCTP'];
  const protocol = protocols[next() % 3]!;
  const original = {
    src: randomAddress(next, family),
    dst: randomAddress(next, family),
    srcPort: next() & 0xffff,
    dstPort: next() & 0xffff,
  };
  // Half DNATed (another reply source), some SNATed too, the rest the plain inverse.
  const dnat = next() % 2 === 0;
  const snat = next() % 5 === 0;
  const reply = {
    src: dnat ? randomAddress(next, family) : original.dst,
    dst: snat ? randomAddress(next, family) : original.src,
    srcPort: dnat ? next() & 0xffff : original.dstPort,
    dstPort: original.srcPort,
  };
  const flow: { -readonly [K in keyof ConntrackFlow]: ConntrackFlow[K] } = {
    family,
    protocol,
    original,
    reply,
    status: (next() & 0xff) | 8,
    mark: next(),
    timeout: next() % 1000,
  };
  if (next() % 4 === 0) flow.zone = 1 + (next() % 0xfffe);
  return flow;
}

describe('readDumpDatagram on captured kernel bytes', () => {
  it('reads the IPv4 UDP entry and the end of the dump as parseFlow does', () => {
    const buf = Buffer.concat([hex(CAPTURED_UDP4), hex(CAPTURED_DONE4)]);
    const q: DumpQuery = { seq: CAPTURED_SEQ4, family: 'IPv4', protocol: 'UDP' };
    const { flows, result } = read(buf, q);
    expect(flows).toEqual(reference(buf, q));
    expect(flows).toEqual([
      {
        family: 'IPv4',
        protocol: 'UDP',
        original: { src: '10.0.0.1', dst: '10.96.0.10', srcPort: 12345, dstPort: 53 },
        reply: { src: '10.96.0.10', dst: '10.0.0.1', srcPort: 53, dstPort: 12345 },
        status: 0xa,
        mark: 0,
        id: 2572586901,
        timeout: 97,
      },
    ]);
    expect(result).toEqual({ interrupted: false, end: { kind: 'done', errno: 0 } });
  });

  it('reads the IPv6 UDP entry with RFC 5952 text as parseFlow does', () => {
    const buf = hex(CAPTURED_UDP6);
    const q: DumpQuery = { seq: CAPTURED_SEQ6, family: 'IPv6', protocol: 'UDP' };
    const { flows, result } = read(buf, q);
    expect(flows).toEqual(reference(buf, q));
    expect(flows.map((f) => [f.original.src, f.original.dst])).toEqual([['fd00::1', 'fd00:96::a']]);
    expect(result).toEqual({ interrupted: false, end: undefined });
  });

  it('drops entries of another family, protocol or dump (seq)', () => {
    const buf = Buffer.concat([hex(CAPTURED_UDP4), hex(CAPTURED_UDP6)]);
    expect(read(buf, { seq: CAPTURED_SEQ4, family: 'IPv4', protocol: 'TCP' }).flows).toEqual([]);
    expect(read(buf, { seq: CAPTURED_SEQ4, family: 'IPv6', protocol: 'UDP' }).flows).toEqual([]);
    expect(read(buf, { seq: CAPTURED_SEQ4 + 1, family: 'IPv4', protocol: 'UDP' }).flows).toEqual([]);
    expect(read(buf, { seq: CAPTURED_SEQ6, family: 'IPv6', protocol: 'UDP' }).flows).toHaveLength(1);
  });
});

describe('readDumpDatagram agrees with parseFlow', () => {
  it('on 3,000 generated entries: both families, all protocols, NAT, zones, edge addresses', () => {
    const next = rng(42);
    const flows = Array.from({ length: 3000 }, () => randomFlow(next));
    const seq = 77;
    // Datagrams of up to 40 entries, as the kernel packs them.
    const datagrams: Buffer[] = [];
    for (let i = 0; i < flows.length; i += 40)
      datagrams.push(Buffer.concat(flows.slice(i, i + 40).map((f) => dumpEntry(f, seq))));
    for (const family of ['IPv4', 'IPv6'] as const) {
      for (const protocol of ['UDP', 'TCP', 'SCTP'] as const) {
        const q: DumpQuery = { seq, family, protocol };
        const got: ConntrackFlow[] = [];
        const want: ConntrackFlow[] = [];
        for (const d of datagrams) {
          readDumpDatagram(d, q, got);
          want.push(...reference(d, q));
        }
        expect(got.length).toBeGreaterThan(100);
        expect(got).toEqual(want);
        // And what went in came out (the builder writes what a dump entry holds).
        const { timeout: _t, ...first } = flows.find((f) => f.family === family && f.protocol === protocol)!;
        expect(got[0]).toMatchObject(first);
      }
    }
  });

  it('keeps the last attribute of a kind and skips entries missing a tuple or source', () => {
    const base: ConntrackFlow = {
      family: 'IPv4',
      protocol: 'UDP',
      original: { src: '10.0.0.1', dst: '10.96.0.10', srcPort: 1000, dstPort: 53 },
      reply: { src: '10.244.1.2', dst: '10.0.0.1', srcPort: 5353, dstPort: 1000 },
      status: 8,
      mark: 1,
    };
    const entry = dumpEntry(base, 5);
    // Append a second CTA_ZONE (big-endian 9) to the message: the last one wins.
    const zone = Buffer.from([6, 0, CTA_ZONE, 0, 0, 9, 0, 0]);
    const twoZones = Buffer.concat([entry, Buffer.from([6, 0, CTA_ZONE, 0, 0, 3, 0, 0]), zone]);
    twoZones.writeUInt32LE(twoZones.length, 0);
    // Cut the reply tuple out: no flow.
    const noReply = Buffer.from(entry);
    const replyAt = noReply.indexOf(Buffer.from([0x34, 0, 2, 0x80]));
    noReply.writeUInt16LE(0x7fff & 99, replyAt + 2); // an attribute type nobody reads
    const q: DumpQuery = { seq: 5, family: 'IPv4', protocol: 'UDP' };
    for (const buf of [twoZones, noReply]) expect(read(buf, q).flows).toEqual(reference(buf, q));
    expect(read(twoZones, q).flows[0]!.zone).toBe(9);
    expect(read(noReply, q).flows).toEqual([]);
  });
});

describe('readDumpDatagram control messages', () => {
  const q: DumpQuery = { seq: 9, family: 'IPv4', protocol: 'UDP' };
  const entry = (flags = 0) =>
    dumpEntry(
      {
        family: 'IPv4',
        protocol: 'UDP',
        original: { src: '10.0.0.1', dst: '10.96.0.10', srcPort: 1, dstPort: 53 },
        reply: { src: '10.96.0.10', dst: '10.0.0.1', srcPort: 53, dstPort: 1 },
        status: 8,
        mark: 0,
      },
      9,
      flags,
    );

  it('reports NLM_F_DUMP_INTR, NLMSG_DONE with an errno, NLMSG_ERROR and NLMSG_OVERRUN', () => {
    expect(read(entry(NLM_F_DUMP_INTR), q).result).toEqual({ interrupted: true, end: undefined });
    expect(read(Buffer.concat([entry(), doneMessage(9, 4)]), q).result).toEqual({
      interrupted: false,
      end: { kind: 'done', errno: 4 },
    });
    const request = entry();
    expect(read(errorMessage(request, 1), q).result.end).toEqual({ kind: 'error', errno: 1 });
    // An ack (errno 0) ends nothing.
    expect(read(errorMessage(request, 0), q).result.end).toBeUndefined();
    const overrun = Buffer.alloc(16);
    overrun.writeUInt32LE(16, 0);
    overrun.writeUInt16LE(NLMSG_OVERRUN, 4);
    overrun.writeUInt32LE(9, 8);
    expect(read(overrun, q).result.end).toEqual({ kind: 'overrun' });
  });

  it('ignores control messages of another request', () => {
    expect(read(Buffer.concat([doneMessage(8, 0)]), q).result.end).toBeUndefined();
  });

  it('stops at the end of the dump', () => {
    const { flows, result } = read(Buffer.concat([entry(), doneMessage(9), entry()]), q);
    expect(flows).toHaveLength(1);
    expect(result.end).toEqual({ kind: 'done', errno: 0 });
  });

  it('throws a parse-error on a bad message or attribute length, as the reference does', () => {
    const cut = hex(CAPTURED_UDP4).subarray(0, 100);
    expect(() => read(cut, q)).toThrow(ConntrackError);
    const badAttr = Buffer.from(hex(CAPTURED_UDP4));
    badAttr.writeUInt16LE(0xfff0, 20); // CTA_TUPLE_ORIG's length runs past the message
    const seqQ: DumpQuery = { ...q, seq: CAPTURED_SEQ4 };
    expect(() => read(badAttr, seqQ)).toThrow(expect.objectContaining({ code: 'parse-error' }));
    expect(() => reference(badAttr, seqQ)).toThrow(expect.objectContaining({ code: 'parse-error' }));
  });
});

describe('dump filters', () => {
  const next = rng(7);
  const flows = Array.from({ length: 600 }, () => randomFlow(next));
  const seq = 3;
  const buf = Buffer.concat(flows.map((f) => dumpEntry(f, seq)));

  it('keeps the entries whose original destination and reply source are in the sets', () => {
    for (const family of ['IPv4', 'IPv6'] as const) {
      const mine = flows.filter((f) => f.family === family && f.protocol === 'UDP');
      const filter: DumpFilter = {
        originalDestinations: mine.slice(0, 30).map((f) => f.original.dst),
        replySources: new Set(mine.slice(10, 40).map((f) => f.reply.src)),
      };
      const q: DumpQuery = { seq, family, protocol: 'UDP', filter: compileDumpFilter(filter) };
      const got = read(buf, q).flows;
      expect(got.length).toBeGreaterThanOrEqual(20);
      expect(got).toEqual(reference(buf, { seq, family, protocol: 'UDP' }, filter));
    }
  });

  it('compares addresses by value: non-canonical text matches, junk and the other family match nothing', () => {
    const v6: ConntrackFlow = {
      family: 'IPv6',
      protocol: 'UDP',
      original: { src: 'fd00::1', dst: 'fd00:96::a', srcPort: 1000, dstPort: 53 },
      reply: { src: 'fd00:244::5', dst: 'fd00::1', srcPort: 5353, dstPort: 1000 },
      status: 8,
      mark: 0,
    };
    const one = dumpEntry(v6, seq);
    const q = (filter: DumpFilter): DumpQuery => ({
      seq,
      family: 'IPv6',
      protocol: 'UDP',
      filter: compileDumpFilter(filter),
    });
    expect(read(one, q({ originalDestinations: ['FD00:0096:0:0::A'] })).flows).toHaveLength(1);
    expect(read(one, q({ replySources: ['fd00:244:0::5'] })).flows).toHaveLength(1);
    expect(read(one, q({ originalDestinations: ['not an IP', '10.0.0.1', 'fd00::a'] })).flows).toEqual([]);
    expect(read(one, q({ replySources: [] })).flows).toEqual([]);
  });

  it('is no filter when it names no set', () => {
    expect(compileDumpFilter(undefined)).toBeUndefined();
    expect(compileDumpFilter({})).toBeUndefined();
  });
});

describe('ipv4Text', () => {
  it('matches the canonical text of any value', () => {
    const next = rng(1);
    for (const v of [0, 1, 255, 256, 0x0a000001, 0x7fffffff, 0x80000000, 0xffffffff]) {
      expect(ipv4Text(v)).toBe([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.'));
    }
    for (let i = 0; i < 5000; i++) {
      const v = next();
      expect(ipv4Text(v)).toBe(
        parseIP([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.'))!.text,
      );
    }
  });
});
