/**
 * applyConntrackSysctls on a real kernel, run inside a fresh network namespace (the only place
 * these tests write): per-namespace values are set, nf_conntrack_max (read-only outside the
 * initial namespace) is skipped without failing, and the machine's own values do not move.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConntrackSysctlConfig, SysctlOutcome } from '../../../pkg/sysctl/conntrack.ts';
import { createNetns, deleteNetns, execIn, execInOk, run } from '../../support/netns.ts';

const SCRIPT = fileURLToPath(new URL('./apply-sysctls.script.ts', import.meta.url));
const NF = 'net/netfilter/';
const NAMES = [
  'nf_conntrack_max',
  'nf_conntrack_tcp_timeout_established',
  'nf_conntrack_tcp_timeout_close_wait',
  'nf_conntrack_tcp_be_liberal',
  'nf_conntrack_udp_timeout',
  'nf_conntrack_udp_timeout_stream',
].map((n) => `${NF}${n}`);
const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';
/** This process's network namespace (the machine's own): the script refuses to run in it. */
const OWN_NETNS = readlinkSync('/proc/self/ns/net');

/** Values as this process (the machine's own namespace) sees them: read only, never written. */
function hostValues(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of NAMES) out[n] = readFileSync(`/proc/sys/${n}`, 'utf8').trim();
  out[HASHSIZE] = readFileSync(HASHSIZE, 'utf8').trim();
  return out;
}

async function nsValue(ns: string, name: string): Promise<string> {
  return (await execInOk(ns, ['cat', `/proc/sys/${name}`])).trim();
}

interface ScriptResult {
  readonly outcomes: SysctlOutcome[];
  readonly hashsizeWrites: number[];
}

async function applyIn(ns: string, cfg: ConntrackSysctlConfig, numCPU: number): Promise<ScriptResult> {
  const r = await execIn(ns, [process.execPath, SCRIPT, JSON.stringify(cfg), String(numCPU), OWN_NETNS]);
  // Exit 0: nothing failed hard, whatever the kernel refused.
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as ScriptResult;
}

describe('applyConntrackSysctls in a network namespace', () => {
  let ns = '';
  let hostBefore: Record<string, string> = {};
  beforeAll(async () => {
    hostBefore = hostValues();
    ns = await createNetns('sysctl');
  });
  afterAll(async () => {
    if (ns) await deleteNetns(ns);
  });

  it('sets what the namespace allows, skips nf_conntrack_max, and leaves the machine’s values alone', async () => {
    const hostMax = Number(hostBefore[`${NF}nf_conntrack_max`]);
    // Ask for more than the current limit, so that a write is really attempted.
    const cfg: ConntrackSysctlConfig = {
      maxPerCore: Math.floor(hostMax / 2) + 1000,
      min: 0,
      tcpEstablishedTimeoutMs: 7200_000,
      tcpCloseWaitTimeoutMs: 120_000,
      tcpBeLiberal: true,
      udpTimeoutMs: 45_000,
      udpStreamTimeoutMs: 150_000,
    };
    const desiredMax = (Math.floor(hostMax / 2) + 1000) * 2;
    expect(desiredMax).toBeGreaterThan(hostMax);
    expect(desiredMax).toBeLessThanOrEqual(1_048_576);
    // The namespace starts from the kernel's per-namespace defaults, not from the wanted values.
    expect(await nsValue(ns, `${NF}nf_conntrack_tcp_timeout_established`)).not.toBe('7200');

    const { outcomes, hashsizeWrites } = await applyIn(ns, cfg, 2);
    const byName = Object.fromEntries(outcomes.map((o) => [o.name, o]));
    expect(byName[`${NF}nf_conntrack_max`]).toMatchObject({
      action: 'skipped',
      code: 'permission-denied',
      desired: desiredMax,
      previous: hostMax,
    });
    for (const [name, value] of [
      ['nf_conntrack_tcp_timeout_established', 7200],
      ['nf_conntrack_tcp_timeout_close_wait', 120],
      ['nf_conntrack_tcp_be_liberal', 1],
      ['nf_conntrack_udp_timeout', 45],
      ['nf_conntrack_udp_timeout_stream', 150],
    ] as const) {
      expect(byName[`${NF}${name}`]).toMatchObject({ action: 'set', desired: value });
      expect(await nsValue(ns, `${NF}${name}`)).toBe(String(value));
    }
    // hashsize is only raised when below max/4; the script records instead of writing it.
    const hashsize = Number(hostBefore[HASHSIZE]);
    expect(hashsizeWrites).toEqual(hashsize < Math.floor(desiredMax / 4) ? [Math.floor(desiredMax / 4)] : []);

    expect(hostValues()).toEqual(hostBefore);
  });

  it('a second run rewrites nothing', async () => {
    const cfg: ConntrackSysctlConfig = {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeoutMs: 7200_000,
      tcpCloseWaitTimeoutMs: 120_000,
      tcpBeLiberal: true,
      udpTimeoutMs: 45_000,
      udpStreamTimeoutMs: 150_000,
    };
    const { outcomes } = await applyIn(ns, cfg, 2);
    expect(outcomes).toHaveLength(5);
    expect(outcomes.every((o) => o.action === 'unchanged')).toBe(true);
    expect(hostValues()).toEqual(hostBefore);
  });

  it('the script refuses to run in the machine’s own namespace', async () => {
    const r = await run([process.execPath, SCRIPT, '{}', '1', OWN_NETNS]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
  });
});
