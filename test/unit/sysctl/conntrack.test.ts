import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../pkg/log/logger.ts';
import {
  applyConntrackSysctls,
  type ConntrackSysctlConfig,
  conntrackMax,
  HASHSIZE_PATH,
} from '../../../pkg/sysctl/conntrack.ts';
import { memoryHashsize, memorySysctl } from './memory.ts';

const NF = 'net/netfilter/';
const DEFAULTS: ConntrackSysctlConfig = {
  maxPerCore: 32768,
  min: 131072,
  tcpEstablishedTimeoutMs: 24 * 3600 * 1000,
  tcpCloseWaitTimeoutMs: 3600 * 1000,
  tcpBeLiberal: false,
  udpTimeoutMs: 0,
  udpStreamTimeoutMs: 0,
};

/** A kernel just booted: its own defaults. */
function kernelDefaults(overrides: Record<string, number> = {}) {
  return memorySysctl({
    [`${NF}nf_conntrack_max`]: 65536,
    [`${NF}nf_conntrack_tcp_timeout_established`]: 432000,
    [`${NF}nf_conntrack_tcp_timeout_close_wait`]: 60,
    [`${NF}nf_conntrack_tcp_be_liberal`]: 0,
    [`${NF}nf_conntrack_udp_timeout`]: 30,
    [`${NF}nf_conntrack_udp_timeout_stream`]: 120,
    ...overrides,
  });
}

function recordingLogger() {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void records.push(JSON.parse(l)) });
  return { logger, records };
}

describe('conntrackMax (upstream getConntrackMax)', () => {
  it.each([
    ['scaled below min → min', 32768, 131072, 2, 131072],
    ['scaled above min → scaled', 32768, 131072, 8, 262144],
    ['maxPerCore 0 → leave alone, min ignored', 0, 131072, 8, 0],
    ['no min', 1000, 0, 3, 3000],
    ['capped at 1Mi', 65536, 0, 32, 1_048_576],
    ['cap applies before min, as upstream', 32768, 2_000_000, 64, 1_048_576],
    ['a CPU count of 0 counts as 1', 32768, 0, 0, 32768],
  ])('%s', (_name, maxPerCore, min, cpus, expected) => {
    expect(conntrackMax({ maxPerCore, min }, cpus)).toBe(expected);
  });
});

describe('applyConntrackSysctls', () => {
  it('sets the defaults on a fresh kernel, values in seconds', async () => {
    const sys = kernelDefaults();
    const hash = memoryHashsize(16384);
    const out = await applyConntrackSysctls(DEFAULTS, {
      numCPU: 8,
      sysctl: sys,
      hashsize: hash,
      logger: silentLogger(),
    });
    expect(sys.writes).toEqual([
      [`${NF}nf_conntrack_max`, '262144'],
      [`${NF}nf_conntrack_tcp_timeout_established`, '86400'],
      [`${NF}nf_conntrack_tcp_timeout_close_wait`, '3600'],
    ]);
    expect(hash.writes).toEqual([65536]);
    expect(out.map((o) => [o.name, o.action, o.previous, o.desired])).toEqual([
      [`${NF}nf_conntrack_max`, 'set', 65536, 262144],
      [HASHSIZE_PATH, 'set', 16384, 65536],
      [`${NF}nf_conntrack_tcp_timeout_established`, 'set', 432000, 86400],
      [`${NF}nf_conntrack_tcp_timeout_close_wait`, 'set', 60, 3600],
    ]);
  });

  it('rewrites nothing that is already right, and never lowers nf_conntrack_max', async () => {
    const sys = kernelDefaults({
      [`${NF}nf_conntrack_max`]: 2_000_000,
      [`${NF}nf_conntrack_tcp_timeout_established`]: 86400,
      [`${NF}nf_conntrack_tcp_timeout_close_wait`]: 3600,
    });
    const hash = memoryHashsize(524288);
    const out = await applyConntrackSysctls(DEFAULTS, {
      numCPU: 8,
      sysctl: sys,
      hashsize: hash,
      logger: silentLogger(),
    });
    expect(sys.writes).toEqual([]);
    expect(hash.writes).toEqual([]);
    expect(out.every((o) => o.action === 'unchanged')).toBe(true);
    expect(sys.values.get(`${NF}nf_conntrack_max`)).toBe('2000000');
  });

  it('sets be_liberal and the UDP timeouts only when configured', async () => {
    const sys = kernelDefaults({ [`${NF}nf_conntrack_tcp_be_liberal`]: 1 });
    await applyConntrackSysctls(
      { ...DEFAULTS, maxPerCore: 0, tcpEstablishedTimeoutMs: 0, tcpCloseWaitTimeoutMs: 0 },
      { numCPU: 4, sysctl: sys, hashsize: memoryHashsize(1), logger: silentLogger() },
    );
    // false never resets an admin's be_liberal=1.
    expect(sys.writes).toEqual([]);
    const sys2 = kernelDefaults();
    await applyConntrackSysctls(
      {
        ...DEFAULTS,
        maxPerCore: 0,
        tcpEstablishedTimeoutMs: 0,
        tcpCloseWaitTimeoutMs: 0,
        tcpBeLiberal: true,
        udpTimeoutMs: 60_000,
        udpStreamTimeoutMs: 180_500,
      },
      { numCPU: 4, sysctl: sys2, hashsize: memoryHashsize(1), logger: silentLogger() },
    );
    expect(sys2.writes).toEqual([
      [`${NF}nf_conntrack_tcp_be_liberal`, '1'],
      [`${NF}nf_conntrack_udp_timeout`, '60'],
      [`${NF}nf_conntrack_udp_timeout_stream`, '180'],
    ]);
  });

  it('leaves a sub-second timeout alone instead of writing 0', async () => {
    const sys = kernelDefaults();
    await applyConntrackSysctls(
      { ...DEFAULTS, maxPerCore: 0, tcpEstablishedTimeoutMs: 999, tcpCloseWaitTimeoutMs: 0 },
      { numCPU: 1, sysctl: sys, hashsize: memoryHashsize(1), logger: silentLogger() },
    );
    expect(sys.writes).toEqual([]);
  });

  it('skips what it may not write (a non-initial namespace), logs it by name, and goes on', async () => {
    const sys = kernelDefaults();
    sys.failWrites.set(`${NF}nf_conntrack_max`, 'EACCES');
    const hash = memoryHashsize(16384, 'EOPNOTSUPP');
    const { logger, records } = recordingLogger();
    const out = await applyConntrackSysctls(DEFAULTS, { numCPU: 8, sysctl: sys, hashsize: hash, logger });
    expect(out.map((o) => [o.name, o.action, o.code])).toEqual([
      [`${NF}nf_conntrack_max`, 'skipped', 'permission-denied'],
      [HASHSIZE_PATH, 'skipped', 'not-supported'],
      [`${NF}nf_conntrack_tcp_timeout_established`, 'set', undefined],
      [`${NF}nf_conntrack_tcp_timeout_close_wait`, 'set', undefined],
    ]);
    const warnings = records.filter((r) => r.level === 40);
    expect(warnings.map((r) => r.msg)).toEqual([
      `cannot set ${NF}nf_conntrack_max; skipped`,
      `cannot set ${HASHSIZE_PATH}; skipped`,
    ]);
    expect(warnings[0]).toMatchObject({
      sysctl: `${NF}nf_conntrack_max`,
      value: 262144,
      code: 'permission-denied',
    });
  });

  it('never throws, even when /proc/sys is read-only and unreadable values abound', async () => {
    const sys = memorySysctl({});
    for (const n of [
      'nf_conntrack_max',
      'nf_conntrack_tcp_timeout_established',
      'nf_conntrack_tcp_timeout_close_wait',
      'nf_conntrack_tcp_be_liberal',
      'nf_conntrack_udp_timeout',
      'nf_conntrack_udp_timeout_stream',
    ])
      sys.failWrites.set(`${NF}${n}`, 'EROFS');
    const hash = {
      read: async () => {
        throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      },
      write: async () => {},
    };
    const out = await applyConntrackSysctls(
      { ...DEFAULTS, tcpBeLiberal: true, udpTimeoutMs: 1000, udpStreamTimeoutMs: 1000 },
      { numCPU: 2, sysctl: sys, hashsize: hash, logger: silentLogger() },
    );
    expect(out).toHaveLength(7);
    expect(out.every((o) => o.action === 'skipped')).toBe(true);
    expect(out.find((o) => o.name === HASHSIZE_PATH)?.code).toBe('not-found');
    expect(out.filter((o) => o.code === 'read-only')).toHaveLength(6);
    expect(sys.writes).toEqual([]);
  });
});
