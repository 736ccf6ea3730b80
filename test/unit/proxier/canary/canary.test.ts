import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { IptablesError } from '../../../../pkg/iptables/errors.ts';
import { createFakeIptables, type FakeIptables } from '../../../../pkg/iptables/fake.ts';
import type { Iptables, Table } from '../../../../pkg/iptables/types.ts';
import { createCanaryMonitor, FLUSH_TIMEOUT_MS } from '../../../../proxier/canary.ts';
import { FakeClock } from '../../../support/fake-clock.ts';

const CANARY = 'KUBE-PROXY-CANARY';
const INTERVAL = 30_000;
const TABLES: readonly Table[] = ['mangle', 'nat', 'filter'];

/** A pino logger that keeps its records, to assert on warnings. */
function recordingLogger() {
  const records: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { logger, messages: (level: number) => records.filter((r) => r.level === level).map((r) => r.msg) };
}

function setup(wrap: (ipt: FakeIptables) => Iptables = (ipt) => ipt) {
  const fake = createFakeIptables();
  const clock = new FakeClock();
  const log = recordingLogger();
  let flushes = 0;
  const monitor = createCanaryMonitor({
    iptables: wrap(fake),
    intervalMs: INTERVAL,
    onFlushed: () => {
      flushes++;
    },
    logger: log.logger,
    clock,
  });
  const canaries = () => TABLES.filter((t) => fake.chainsOf(t).includes(CANARY));
  const remove = async (...tables: Table[]) => {
    for (const t of tables) await fake.deleteChain(t, CANARY);
  };
  return { fake, clock, log, monitor, flushes: () => flushes, canaries, remove };
}

describe('canary monitor', () => {
  it('creates the canary in mangle, nat and filter on start', async () => {
    const s = setup();
    expect(s.canaries()).toEqual([]);
    s.monitor.start();
    await s.clock.advance(0);
    expect(s.canaries()).toEqual(['mangle', 'nat', 'filter']);
    await s.monitor.stop();
  });

  it('stays quiet while the canary is there', async () => {
    const s = setup();
    s.monitor.start();
    await s.clock.advance(INTERVAL * 5);
    expect(s.flushes()).toBe(0);
    expect(s.clock.pending()).toEqual([INTERVAL]);
    await s.monitor.stop();
  });

  it('calls back within one interval after a flush of every table, and re-creates the canaries', async () => {
    const s = setup();
    s.monitor.start();
    await s.clock.advance(INTERVAL + 10);
    await s.remove('mangle', 'nat', 'filter');
    await s.clock.advance(INTERVAL - 11);
    expect(s.flushes()).toBe(0);
    await s.clock.advance(1);
    expect(s.flushes()).toBe(1);
    expect(s.canaries()).toEqual(['mangle', 'nat', 'filter']);
    // And it keeps watching: a second flush is a second callback.
    await s.remove('mangle', 'nat', 'filter');
    await s.clock.advance(INTERVAL);
    expect(s.flushes()).toBe(2);
    await s.monitor.stop();
  });

  it('waits for the nat and filter canaries to go too before calling back', async () => {
    const s = setup();
    s.monitor.start();
    await s.clock.advance(0);
    await s.remove('mangle');
    await s.clock.advance(INTERVAL);
    expect(s.flushes()).toBe(0);
    await s.remove('nat');
    await s.clock.advance(1000);
    expect(s.flushes()).toBe(0);
    await s.remove('filter');
    await s.clock.advance(100);
    expect(s.flushes()).toBe(1);
    expect(s.log.messages(40)).toEqual([]);
    await s.monitor.stop();
  });

  it('gives up waiting after 5 s with a warning, calls back anyway', async () => {
    const s = setup();
    s.monitor.start();
    await s.clock.advance(0);
    await s.remove('mangle');
    await s.clock.advance(INTERVAL);
    await s.clock.advance(FLUSH_TIMEOUT_MS - 100);
    expect(s.flushes()).toBe(0);
    await s.clock.advance(100);
    expect(s.flushes()).toBe(1);
    expect(s.log.messages(40)).toEqual(['inconsistent iptables state detected']);
    expect(s.canaries()).toEqual(['mangle', 'nat', 'filter']);
    await s.monitor.stop();
  });

  it('retries creating the canaries every interval until it works', async () => {
    let failures = 2;
    const s = setup((ipt) => ({
      ...ipt,
      ensureChain: async (table, chain) => {
        if (table === 'nat' && failures > 0) {
          failures--;
          throw new IptablesError('exec-failed', 'iptables -N exited 1');
        }
        return ipt.ensureChain(table, chain);
      },
    }));
    s.monitor.start();
    await s.clock.advance(0);
    expect(s.canaries()).toEqual(['mangle']);
    await s.clock.advance(INTERVAL);
    expect(s.canaries()).toEqual(['mangle']);
    await s.clock.advance(INTERVAL);
    expect(s.canaries()).toEqual(['mangle', 'nat', 'filter']);
    expect(s.log.messages(50)).toEqual([
      'could not set up iptables canary',
      'could not set up iptables canary',
    ]);
    // Not mistaken for a flush.
    expect(s.flushes()).toBe(0);
    await s.monitor.stop();
  });

  it('counts a lock timeout as "present" but any other failure as "gone"', async () => {
    let answer: 'lock' | 'broken' | 'real' = 'lock';
    const s = setup((ipt) => ({
      ...ipt,
      chainExists: async (table, chain) => {
        if (answer === 'lock') throw new IptablesError('lock-timeout', 'xtables lock', { exitCode: 4 });
        if (answer === 'broken' && table === 'mangle') throw new IptablesError('exec-failed', 'exited 2');
        return ipt.chainExists(table, chain);
      },
    }));
    s.monitor.start();
    await s.clock.advance(INTERVAL * 3);
    expect(s.flushes()).toBe(0);
    answer = 'broken';
    await s.remove('nat', 'filter');
    await s.clock.advance(INTERVAL);
    expect(s.flushes()).toBe(1);
    answer = 'real';
    await s.clock.advance(INTERVAL * 2);
    expect(s.flushes()).toBe(1);
    await s.monitor.stop();
  });

  it('stop deletes the canaries, is idempotent and ends all polling', async () => {
    let calls = 0;
    const s = setup((ipt) => ({
      ...ipt,
      chainExists: (table, chain) => {
        calls++;
        return ipt.chainExists(table, chain);
      },
    }));
    s.monitor.start();
    await s.clock.advance(INTERVAL);
    expect(calls).toBe(1);
    const a = s.monitor.stop();
    const b = s.monitor.stop();
    expect(a).toBe(b);
    await a;
    expect(s.canaries()).toEqual([]);
    expect(s.clock.pending()).toEqual([]);
    await s.clock.advance(INTERVAL * 3);
    expect(calls).toBe(1);
    // start() after stop() does not bring it back.
    s.monitor.start();
    await s.clock.advance(INTERVAL);
    expect(s.canaries()).toEqual([]);
  });

  it('stop while waiting for the other tables calls nothing back', async () => {
    const s = setup();
    s.monitor.start();
    await s.clock.advance(0);
    await s.remove('mangle');
    await s.clock.advance(INTERVAL + 200);
    await s.monitor.stop();
    await s.clock.advance(FLUSH_TIMEOUT_MS);
    expect(s.flushes()).toBe(0);
    expect(s.canaries()).toEqual([]);
  });

  it('refuses a non-positive interval', () => {
    const fake = createFakeIptables();
    expect(() =>
      createCanaryMonitor({
        iptables: fake,
        intervalMs: 0,
        onFlushed: () => {},
        logger: pino({ level: 'silent' }),
      }),
    ).toThrow(RangeError);
  });
});
