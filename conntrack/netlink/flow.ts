/** Small pure helpers on flows, shared by the real client, the fake and their tests. */
import type { ConntrackFlow, FlowTuple } from './types.ts';

function tupleText(t: FlowTuple): string {
  const host = (ip: string) => (ip.includes(':') ? `[${ip}]` : ip);
  return `${host(t.src)}:${t.srcPort}->${host(t.dst)}:${t.dstPort}`;
}

/**
 * Identity of a conntrack entry as the kernel sees it for lookups and deletes: family,
 * protocol, zone and the original tuple. Two flows with one key are the same entry.
 */
export function flowKey(flow: Pick<ConntrackFlow, 'family' | 'protocol' | 'original' | 'zone'>): string {
  return `${flow.family}/${flow.protocol}/zone=${flow.zone ?? 0}/${tupleText(flow.original)}`;
}

/** One line for logs and test failures, in the spirit of `conntrack -L`. */
export function formatFlow(flow: ConntrackFlow): string {
  return `${flowKey(flow)} reply ${tupleText(flow.reply)} status=0x${flow.status.toString(16)} mark=${flow.mark}`;
}
