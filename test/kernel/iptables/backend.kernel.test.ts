/** Backend detection against real rules, each case in a fresh network namespace. */
import { afterEach, describe, expect, it } from 'vitest';
import { detectBackend } from '../../../pkg/iptables/backend.ts';
import { spawnExec } from '../../../pkg/iptables/exec.ts';
import { createNetns, deleteNetns, inNetns } from '../../support/netns.ts';

/** Runs argv in `ns` and fails the test when it fails. */
async function execInOk(ns: string, argv: readonly string[]): Promise<void> {
  const r = await spawnExec(inNetns(ns, argv));
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
}

describe('detectBackend in a namespace', () => {
  const made: string[] = [];
  afterEach(async () => {
    for (const ns of made.splice(0)) await deleteNetns(ns);
  });
  async function fresh(label: string): Promise<string> {
    const ns = await createNetns(label);
    made.push(ns);
    return ns;
  }

  it('picks nft when kubelet left its hint chain in the nft mangle table', async () => {
    const ns = await fresh('bknft');
    await execInOk(ns, ['iptables-nft', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
    // Even with more legacy rules around, the hint wins.
    for (let i = 0; i < 3; i++) await execInOk(ns, ['iptables-legacy', '-A', 'INPUT', '-j', 'ACCEPT']);
    expect(await detectBackend({ execPrefix: inNetns(ns, []) })).toBe('nft');
  });

  it('picks legacy when kubelet’s canary is in the legacy tables', async () => {
    const ns = await fresh('bkleg');
    await execInOk(ns, ['iptables-legacy', '-t', 'mangle', '-N', 'KUBE-KUBELET-CANARY']);
    await execInOk(ns, ['iptables-nft', '-A', 'INPUT', '-j', 'ACCEPT']);
    expect(await detectBackend({ execPrefix: inNetns(ns, []) })).toBe('legacy');
  });

  it('without kubelet chains, counts rules: legacy only when it has more', async () => {
    const ns = await fresh('bkcnt');
    expect(await detectBackend({ execPrefix: inNetns(ns, []) })).toBe('nft');
    await execInOk(ns, ['iptables-legacy', '-A', 'INPUT', '-j', 'ACCEPT']);
    expect(await detectBackend({ execPrefix: inNetns(ns, []) })).toBe('legacy');
    await execInOk(ns, ['ip6tables-nft', '-A', 'INPUT', '-j', 'ACCEPT']);
    expect(await detectBackend({ execPrefix: inNetns(ns, []) })).toBe('nft');
  });
});
