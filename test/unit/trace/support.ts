/**
 * Packet-flow test support, after upstream's runPacketFlowTests: render a state, apply it as a
 * full sync would to empty in-memory tables, trace a packet, and compare upstream's two columns
 * (output, masquerade). A failing row prints every rule the packet matched.
 */
import { expect } from 'vitest';
import type { RenderConfig, RenderState } from '../../../proxier/render.ts';
import { renderRules } from '../../../proxier/render.ts';
import { tablesAfterFullSync } from '../../../proxier/trace/full-sync.ts';
import { type RuleSet, ruleSetFromText } from '../../../proxier/trace/rules.ts';
import { formatTrace, summarize } from '../../../proxier/trace/summary.ts';
import { type Entry, type TraceProtocol, tracePacket } from '../../../proxier/trace/tracer.ts';

/** Upstream's testNodeIPs: every one of them is LOCAL. */
export const TEST_NODE_IPS = ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'];
export const TEST_EXTERNAL_CLIENT = '203.0.113.2';
export const TEST_EXTERNAL_CLIENT_BLOCKED = '203.0.113.130';

export interface FlowRow {
  readonly name: string;
  readonly source: string;
  readonly dest: string;
  readonly port: number;
  readonly protocol?: TraceProtocol;
  /** Where the packet enters; default: node for node IPs and loopback, pod for 10/8 and fd00:10::/64, else outside. */
  readonly entry?: Entry;
  /** Upstream's output column: endpoints `ip:port, ...`, `DROP`, `REJECT`, `ACCEPT`, or ''. */
  readonly output: string;
  readonly masq: boolean;
}

export async function rulesFor(state: RenderState, config: RenderConfig): Promise<RuleSet> {
  const result = renderRules(state, config, { full: true });
  return ruleSetFromText(await tablesAfterFullSync(result, config.family));
}

function defaultEntry(source: string): Entry {
  if (TEST_NODE_IPS.includes(source) || source.startsWith('127.') || source === '::1') return 'node';
  if (source.startsWith('10.') || source.startsWith('fd00:10:')) return 'pod';
  return 'outside';
}

export function runFlow(rules: RuleSet, row: FlowRow): void {
  const result = tracePacket(
    rules,
    {
      sourceIP: row.source,
      destIP: row.dest,
      destPort: row.port,
      protocol: row.protocol ?? 'tcp',
      entry: row.entry ?? defaultEntry(row.source),
    },
    { localAddresses: TEST_NODE_IPS },
  );
  const s = summarize(result);
  expect({ output: s.output, masq: s.masquerade }, `${row.name}\n${formatTrace(result)}`).toEqual({
    output: row.output,
    masq: row.masq,
  });
}
