/**
 * Errors of the packet tracer. The tracer fails loudly rather than guess: a rule whose outcome
 * it cannot compute (an unknown match or target, a jump to a missing chain) stops the trace, so a
 * test built on it cannot pass by silently skipping a rule.
 */

export type TraceErrorCode =
  /** A match (`-m X`, or an option) the tracer cannot evaluate, in a rule the packet reached. */
  | 'unsupported-match'
  /** A target (`-j X` or one of its options) the tracer cannot apply. */
  | 'unsupported-target'
  /** A command other than `-A`/`-I`/`-N`/`-X`/`-F`/`-P` in the rules, or two copies of a table. */
  | 'unsupported-rules'
  /** A jump to a chain that does not exist, or a table the trace needs is missing. */
  | 'missing-chain'
  /** Jumps nested deeper than any real ruleset (a loop). */
  | 'chain-loop'
  /** A rule matches on an interface (`-i`/`-o`) and the trace was not told which one. */
  | 'needs-interface'
  /** The packet itself is invalid (bad address, port, protocol, families that differ). */
  | 'bad-packet';

export class TraceError extends Error {
  readonly code: TraceErrorCode;
  /** The rule the tracer stopped at, as `-A CHAIN ...`, when there is one. */
  readonly rule: string | undefined;

  constructor(code: TraceErrorCode, message: string, rule?: string) {
    super(rule === undefined ? message : `${message} (in rule: ${rule})`);
    this.name = 'TraceError';
    this.code = code;
    this.rule = rule;
  }
}
