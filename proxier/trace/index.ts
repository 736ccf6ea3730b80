/** The packet tracer: iptables rules in, the fate of one packet out. */
export { TraceError, type TraceErrorCode } from './errors.ts';
export { tablesAfterFullSync } from './full-sync.ts';
export {
  type Chain,
  type CompiledRule,
  compileRule,
  type Match,
  type RuleSet,
  type RuleTable,
  ruleSetFamily,
  ruleSetFromDump,
  ruleSetFromText,
  type Target,
  type Verdict,
} from './rules.ts';
export {
  type EndpointShare,
  formatTrace,
  type OutcomeKind,
  pathOutput,
  summarize,
  type TraceSummary,
  traceToJSON,
} from './summary.ts';
export {
  type Entry,
  type NodeInfo,
  type TracePacket,
  type TracePath,
  type TraceProtocol,
  type TraceResult,
  type TraceStep,
  tracePacket,
} from './tracer.ts';
