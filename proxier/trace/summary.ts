/**
 * What a trace amounts to, in the shapes people and tests read: upstream's packet-flow test
 * output (`10.180.0.1:80, 10.180.2.1:80`, `DROP`, `REJECT`, `ACCEPT`, or empty) and masquerade
 * flag, the endpoints with the probability of reaching each, and a readable report.
 */
import type { TracePath, TraceResult } from './tracer.ts';

export interface EndpointShare {
  readonly endpoint: string;
  /** Sum of the probabilities of the paths that reach it. */
  readonly probability: number;
  /** Whether the paths to it are masqueraded. */
  readonly masquerade: boolean;
}

export type OutcomeKind = 'dnat' | 'accept' | 'drop' | 'reject' | 'no-match' | 'mixed';

export interface TraceSummary {
  /**
   * As upstream's packet-flow tests write it: per path `DROP`/`REJECT` when a rule dropped or
   * rejected it, the DNAT endpoint, `ACCEPT` when a rule accepted it un-NATed; nothing when no
   * rule decided. Distinct values in path order, joined with ", ".
   */
  readonly output: string;
  /** Some path is masqueraded (upstream's `masq`). */
  readonly masquerade: boolean;
  readonly kind: OutcomeKind;
  readonly endpoints: readonly EndpointShare[];
}

/** A path's contribution to `output`; '' when no rule decided anything. */
export function pathOutput(p: TracePath): string {
  if (p.verdict !== 'ACCEPT') return p.verdictBy === 'rule' ? p.verdict : `${p.verdict} (policy)`;
  if (p.dnat) return p.dnat.endpoint;
  return p.verdictBy === 'rule' ? 'ACCEPT' : '';
}

function pathKind(p: TracePath): Exclude<OutcomeKind, 'mixed'> {
  if (p.verdict === 'DROP') return 'drop';
  if (p.verdict === 'REJECT') return 'reject';
  if (p.dnat) return 'dnat';
  return p.verdictBy === 'rule' ? 'accept' : 'no-match';
}

export function summarize(result: TraceResult): TraceSummary {
  const outputs: string[] = [];
  const shares = new Map<string, { probability: number; masq: boolean }>();
  for (const p of result.paths) {
    const o = pathOutput(p);
    if (o !== '' && !outputs.includes(o)) outputs.push(o);
    if (p.dnat && p.verdict === 'ACCEPT') {
      const s = shares.get(p.dnat.endpoint) ?? { probability: 0, masq: false };
      s.probability += p.probability;
      s.masq ||= p.masquerade;
      shares.set(p.dnat.endpoint, s);
    }
  }
  const kinds = new Set(result.paths.map(pathKind));
  return {
    output: outputs.join(', '),
    masquerade: result.paths.some((p) => p.masquerade),
    kind: kinds.size === 1 ? [...kinds][0]! : 'mixed',
    endpoints: [...shares].map(([endpoint, s]) => ({
      endpoint,
      probability: s.probability,
      masquerade: s.masq,
    })),
  };
}

function percent(p: number): string {
  return `${(p * 100).toFixed(2)}%`;
}

function outcomeLine(s: TraceSummary): string {
  const masq = s.masquerade ? 'masqueraded' : 'not masqueraded';
  switch (s.kind) {
    case 'dnat':
      return `DNAT to ${s.endpoints.map((e) => `${e.endpoint} (${percent(e.probability)})`).join(', ')}; ${masq}`;
    case 'accept':
      return `ACCEPT (un-NATed); ${masq}`;
    case 'drop':
      return 'DROP';
    case 'reject':
      return 'REJECT';
    case 'no-match':
      return `no kube-proxy rule decided (the built-in chains' policies apply); ${masq}`;
    case 'mixed':
      return `mixed: ${s.output}`;
  }
}

/** A readable report: the outcome, then each path with every rule it matched. */
export function formatTrace(result: TraceResult): string {
  const s = summarize(result);
  const p = result.packet;
  const lines = [
    `packet: ${p.protocol} ${p.sourceIP} -> ${p.destIP}:${p.destPort}, from ${p.entry} (${result.family})`,
    `outcome: ${outcomeLine(s)}`,
  ];
  result.paths.forEach((path, i) => {
    const what = [
      path.dnat ? `DNAT to ${path.dnat.endpoint}` : 'not NATed',
      `${path.verdict}${path.verdictBy === 'policy' ? ' (policy)' : ''}`,
      path.masquerade ? 'masqueraded' : 'not masqueraded',
      path.delivery === 'local' ? 'delivered to the node' : 'routed',
    ].join(', ');
    lines.push(
      '',
      `path ${i + 1} of ${result.paths.length} (probability ${path.probability.toFixed(4)}): ${what}`,
    );
    for (const st of path.steps) {
      const where = st.rule === undefined ? `${st.table} ${st.chain}` : `${st.table} ${st.chain} #${st.rule}`;
      const branch = st.branch ? ` [random branch taken, p=${st.branch.probability}]` : '';
      lines.push(`  ${where}: ${st.text}`, `      => ${st.action}${branch}`);
    }
  });
  return `${lines.join('\n')}\n`;
}

/** The result and its summary as one JSON document. */
export function traceToJSON(result: TraceResult): string {
  return `${JSON.stringify({ ...result, summary: summarize(result) }, null, 2)}\n`;
}
