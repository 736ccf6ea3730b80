/**
 * The pure parts of the conntrack e2e helpers (e2e-udp.ts): what they read from `conntrack -L`
 * and the SCTP packets they build and parse. A wrong parser would make the kernel scenarios
 * pass or fail for the wrong reason, so it is pinned here on real output and known vectors.
 */
import { describe, expect, it } from 'vitest';
import {
  crc32c,
  createSocatDumpParser,
  fractionMs,
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

  it('socat timestamps: nine digits of microseconds (socat 1.7) or of nanoseconds', () => {
    expect(fractionMs('000957171')).toBe(957);
    expect(fractionMs('957171123')).toBe(957);
    expect(fractionMs('123456')).toBe(123);
  });

  it("the socat dump parser takes socat's receive time and the packet's port and chunk", () => {
    const got: SctpReceipt[] = [];
    const feed = createSocatDumpParser((r) => got.push(r));
    const hex = (b: Buffer) => ` ${[...b].map((x) => x.toString(16).padStart(2, '0')).join(' ')} `;
    const a = sctpInit(12345, 53, 1);
    const withHeader = Buffer.concat([
      Buffer.from([0x45, 0, 0, 52, 0, 0, 0, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]),
      sctpInit(40000, 53, 2),
    ]);
    const dump = [
      'socat[1] N starting data transfer loop',
      '> 2026/11/25 13:34:49.000213856  length=32 from=0 to=31',
      hex(a),
      '> 2026/11/25 13:34:49.250000123  length=52 from=32 to=83',
      hex(withHeader.subarray(0, 16)),
      hex(withHeader.subarray(16)),
      '',
    ].join('\n');
    feed(dump.slice(0, 70));
    feed(dump.slice(70));
    expect(got).toEqual([
      { t: new Date(2026, 10, 25, 13, 34, 49, 213).getTime(), sport: 12345, chunk: 1 },
      { t: new Date(2026, 10, 25, 13, 34, 49, 250).getTime(), sport: 40000, chunk: 1 },
    ]);
  });
});
