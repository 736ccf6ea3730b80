/**
 * The pure parts of the conntrack e2e helpers (e2e-udp.ts): what they read from `conntrack -L`
 * and the SCTP packets they build and parse. A wrong parser would make the kernel scenarios
 * pass or fail for the wrong reason, so it is pinned here on real output and known vectors.
 */
import { describe, expect, it } from 'vitest';
import {
  crc32c,
  createSctpParser,
  isUnNATed,
  parseConntrackLine,
  type SctpReceipt,
  sctpInit,
} from '../../support/e2e-udp.ts';

describe('parseConntrackLine', () => {
  it('reads the original and reply tuples and the id of a DNATed UDP entry', () => {
    const e = parseConntrackLine(
      'udp      17 29 src=10.244.1.2 dst=10.96.0.10 sport=12345 dport=53 src=10.244.2.2 dst=10.244.1.2 sport=8080 dport=12345 mark=0 use=1 id=607424048',
    );
    expect(e).toMatchObject({
      proto: 'udp',
      src: '10.244.1.2',
      dst: '10.96.0.10',
      sport: 12345,
      dport: 53,
      replySrc: '10.244.2.2',
      replyDst: '10.244.1.2',
      replySport: 8080,
      replyDport: 12345,
      id: '607424048',
    });
    expect(isUnNATed(e!)).toBe(false);
  });

  it('recognises an un-NATed entry (the blackhole) through the [UNREPLIED] flag', () => {
    const e = parseConntrackLine(
      'udp      17 29 src=192.168.100.2 dst=203.0.113.10 sport=12346 dport=53 [UNREPLIED] src=203.0.113.10 dst=192.168.100.2 sport=53 dport=12346 mark=0 use=1 id=1',
    );
    expect(e?.replySrc).toBe('203.0.113.10');
    expect(isUnNATed(e!)).toBe(true);
  });

  it('reads SCTP entries, whose state comes before the tuples', () => {
    const e = parseConntrackLine(
      'sctp     132 2 COOKIE_WAIT src=10.244.1.2 dst=10.96.103.6 sport=12345 dport=53 [UNREPLIED] src=10.244.2.2 dst=10.244.1.2 sport=8080 dport=12345 mark=0 use=1 id=9',
    );
    expect(e).toMatchObject({ proto: 'sctp', dst: '10.96.103.6', replySrc: '10.244.2.2', replySport: 8080 });
  });

  it('ignores the summary line and blank lines', () => {
    expect(
      parseConntrackLine('conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.'),
    ).toBeUndefined();
    expect(parseConntrackLine('')).toBeUndefined();
  });
});

describe('SCTP packets', () => {
  it('crc32c matches the Castagnoli check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('an INIT carries the ports, tag 0, one INIT chunk and a checksum over the packet', () => {
    const p = sctpInit(12345, 53, 0x1badb002);
    expect(p.length).toBe(32);
    expect(p.readUInt16BE(0)).toBe(12345);
    expect(p.readUInt16BE(2)).toBe(53);
    expect(p.readUInt32BE(4)).toBe(0);
    expect(p[12]).toBe(1);
    expect(p.readUInt16BE(14)).toBe(20);
    const zeroed = Buffer.from(p);
    zeroed.writeUInt32LE(0, 8);
    expect(p.readUInt32LE(8)).toBe(crc32c(zeroed));
  });

  it('the parser splits packets however the reads cut them, with or without an IPv4 header', () => {
    const got: SctpReceipt[] = [];
    const feed = createSctpParser((r) => got.push(r));
    const a = sctpInit(12345, 53, 1);
    const b = sctpInit(40000, 53, 2);
    const header = Buffer.alloc(20);
    header[0] = 0x45;
    header.writeUInt16BE(20 + b.length, 2);
    header[9] = 132;
    const stream = Buffer.concat([a, header, b, a]);
    feed(stream.subarray(0, 10));
    feed(stream.subarray(10, 50));
    feed(stream.subarray(50));
    expect(got.map((r) => [r.sport, r.chunk])).toEqual([
      [12345, 1],
      [40000, 1],
      [12345, 1],
    ]);
  });
});
