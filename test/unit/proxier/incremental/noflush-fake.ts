/**
 * The in-memory fake iptables, made to accept what the kernel accepts under `--noflush`: a rule
 * command (`-A`, `-I`, `-D`) for a chain that exists but has no `:CHAIN` line in the payload.
 *
 * pkg/iptables/parse.ts refuses such a command ("undeclared chain"), which is stricter than
 * iptables-restore (legacy and nft 1.8.9 apply `-D KUBE-SERVICES ...` and `-I KUBE-SERVICES 1 ...`
 * to the existing chain, as test/kernel/partial-sync checks). Until the parser learns this, this
 * wrapper gives each such table section a `:CHAIN` line followed by the chain's current rules,
 * taken from the fake itself: under `--noflush` that leaves the chain exactly as it was before
 * the payload's own commands run, which is what the kernel does. A chain that does not exist
 * stays undeclared, so the payload still fails as it would on a kernel.
 */
import { createFakeIptables, type FakeIptables } from '../../../../pkg/iptables/fake.ts';
import { formatWords, isBuiltinChain } from '../../../../pkg/iptables/parse.ts';
import { payloadText } from '../../../../pkg/iptables/payload.ts';
import type { Family, Table } from '../../../../pkg/iptables/types.ts';

const RULE_COMMAND = /^-[ADI] (\S+)/;

/** Declares, with their current rules, the existing chains a section edits without a `:` line. */
function declareEditedChains(fake: FakeIptables, payload: string): string {
  const out: string[] = [];
  const lines = payload.split('\n');
  let i = 0;
  while (i < lines.length) {
    const header = lines[i]!;
    out.push(header);
    i++;
    if (!header.startsWith('*')) continue;
    const table = header.slice(1) as Table;
    const section: string[] = [];
    while (i < lines.length && lines[i] !== 'COMMIT') section.push(lines[i++]!);
    const declared = new Set(section.filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]!));
    const edited = new Set<string>();
    for (const l of section) {
      const m = RULE_COMMAND.exec(l);
      if (m && !declared.has(m[1]!) && !isBuiltinChain(table, m[1]!)) edited.add(m[1]!);
    }
    for (const chain of edited) {
      const rules = fake.rulesOf(table, chain);
      if (rules === undefined) continue;
      out.push(`:${chain} - [0:0]`);
      for (const r of rules) out.push(`-A ${chain} ${formatWords(r)}`);
    }
    out.push(...section);
  }
  return out.join('\n');
}

export function createNoflushFake(family: Family): FakeIptables {
  const fake = createFakeIptables({ family });
  return {
    ...fake,
    restoreAll: (payload, opts) =>
      fake.restoreAll(opts.flush ? payload : declareEditedChains(fake, payloadText(payload)), opts),
  };
}
