/**
 * The filter and nat tables a full sync leaves on an empty node: the jumps from the built-in
 * chains that a full sync ensures (each inserted at the top, so on a clean host they end up in
 * reverse order), then the restore payload applied with `--noflush`. It runs exactly the calls
 * the proxier makes, against the in-memory iptables that the unit tests trust, so nothing on
 * the machine is touched.
 */
import { createFakeIptables } from '../../pkg/iptables/fake.ts';
import type { IPFamily } from '../../pkg/net/ip.ts';
import { type RenderResult, renderBuiltinJumps } from '../render.ts';

/** `iptables-save` text of filter and nat (filter first), as the fake prints them. */
export async function tablesAfterFullSync(render: RenderResult, family: IPFamily): Promise<string> {
  const ipt = createFakeIptables({ family });
  for (const j of renderBuiltinJumps()) {
    await ipt.ensureChain(j.table, j.target);
    await ipt.ensureRule('prepend', j.table, j.chain, j.args);
  }
  await ipt.restoreAll(render.payload, { flush: false, counters: true });
  return `${await ipt.save('filter')}${await ipt.save('nat')}`;
}
