/**
 * A packet tracer over iptables rules: where does the first packet of a new connection go?
 *
 * It walks the built-in chains in netfilter's order for where the packet enters:
 *
 *   from a pod or from outside:  nat PREROUTING ─┬─ local destination ─▶ filter INPUT
 *                                                └─ otherwise ─▶ filter FORWARD ─▶ nat POSTROUTING
 *   from the node itself:        nat OUTPUT ─▶ filter OUTPUT ─▶ nat POSTROUTING
 *                                (─▶ filter INPUT when the destination is local)
 *
 * Unlike upstream's test tracer (pkg/proxy/iptables/proxier_test.go, `tracePacket`), which runs
 * nat PREROUTING and then four filter chains directly, this one follows the real jumps from the
 * built-in chains, tracks the packet mark (MARK --or-mark/--xor-mark/--set-xmark and `-m mark`),
 * evaluates `--ctstate` for a new connection (NEW, plus DNAT once it was DNATed), and decides
 * masquerading in nat POSTROUTING, as the kernel does. Like upstream's, it treats `-m recent
 * --rcheck` as no match (no history) and follows every `-m statistic` branch, so that every
 * endpoint of a service shows up, each with the probability of reaching it.
 *
 * Node addresses are LOCAL (`-m addrtype`), as are 127.0.0.0/8 and ::1.
 */
import { cidrContains, type IPFamily, type ParsedIP, parseIP } from '../../pkg/net/ip.ts';
import { TraceError } from './errors.ts';
import type { Chain, CompiledRule, Match, RuleSet, Target, Verdict } from './rules.ts';

export type Entry = 'pod' | 'outside' | 'node';
export type TraceProtocol = 'tcp' | 'udp' | 'sctp';

export interface TracePacket {
  readonly sourceIP: string;
  readonly destIP: string;
  readonly destPort: number;
  readonly protocol: TraceProtocol;
  /** Where the packet enters: a pod, a client outside the node, or a process on the node. */
  readonly entry: Entry;
  /** Source port, for rules that match on it (kube-proxy's do not); default 40000. */
  readonly sourcePort?: number;
  /** Interface the packet arrives on (pod and outside entries); needed only by `-i` rules. */
  readonly inInterface?: string;
  /** Interface it leaves by; needed only by `-o` rules. */
  readonly outInterface?: string;
}

export interface NodeInfo {
  /** The node's addresses (any family); loopback addresses are always local. */
  readonly localAddresses: readonly string[];
}

export interface TraceStep {
  readonly table: string;
  readonly chain: string;
  /** 1-based rule number in the chain; undefined for a built-in chain's policy. */
  readonly rule: number | undefined;
  /** The rule as `-A CHAIN ...`, or `policy ACCEPT`. */
  readonly text: string;
  /** What happened: `jump KUBE-SVC-...`, `DNAT to 10.1.2.3:80`, `mark 0x4000`, ... */
  readonly action: string;
  /** Set on the rule where a `-m statistic` branch was taken or not: the branch's probability. */
  readonly branch?: { readonly taken: boolean; readonly probability: number };
}

export interface TracePath {
  /** Probability of this path among all paths of the trace (they add up to 1). */
  readonly probability: number;
  readonly steps: readonly TraceStep[];
  /** The new destination when a DNAT rule applied. */
  readonly dnat:
    | { readonly ip: string; readonly port: number | undefined; readonly endpoint: string }
    | undefined;
  /** A MASQUERADE or SNAT rule applied in nat POSTROUTING. */
  readonly masquerade: boolean;
  /** The packet mark when the path ended. */
  readonly mark: number;
  /** The filter decision: by a rule, or by a built-in chain's policy. */
  readonly verdict: Verdict;
  readonly verdictBy: 'rule' | 'policy';
  /** Delivered to the node itself (INPUT) or routed on (FORWARD/OUTPUT). */
  readonly delivery: 'local' | 'routed';
}

export interface TraceResult {
  readonly packet: TracePacket;
  readonly family: IPFamily;
  readonly paths: readonly TracePath[];
}

/** Deeper than any real ruleset: kube-proxy nests at most about 6 chains. */
const MAX_DEPTH = 64;

interface PathState {
  probability: number;
  mark: number;
  dst: ParsedIP;
  dport: number;
  dnat: TracePath['dnat'];
  masquerade: boolean;
  steps: TraceStep[];
}

interface Hook {
  readonly table: string;
  readonly chain: string;
  /** The interfaces the hook sees; null means the hook has none (e.g. -i in OUTPUT). */
  readonly inInterface: string | null | undefined;
  readonly outInterface: string | null | undefined;
}

type ChainEnd =
  | { readonly state: PathState; readonly end: 'return' }
  | { readonly state: PathState; readonly end: 'verdict'; readonly verdict: Verdict | 'NAT' };

interface Context {
  readonly rules: RuleSet;
  readonly src: ParsedIP;
  readonly sport: number;
  readonly protocol: TraceProtocol;
  readonly local: (ip: ParsedIP) => boolean;
  readonly hook: Hook;
}

function clone(s: PathState): PathState {
  return { ...s, steps: [...s.steps] };
}

function isLoopback(ip: ParsedIP): boolean {
  return ip.family === 'IPv4' ? ip.bytes[0] === 127 : ip.text === '::1';
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Validates the packet; throws TraceError 'bad-packet'. */
function checkPacket(p: TracePacket): { src: ParsedIP; dst: ParsedIP } {
  const src = parseIP(p.sourceIP);
  const dst = parseIP(p.destIP);
  if (!src) throw new TraceError('bad-packet', `source "${p.sourceIP}" is not an IP address`);
  if (!dst) throw new TraceError('bad-packet', `destination "${p.destIP}" is not an IP address`);
  if (src.family !== dst.family) {
    throw new TraceError(
      'bad-packet',
      `source ${src.text} and destination ${dst.text} are of different IP families`,
    );
  }
  if (!Number.isInteger(p.destPort) || p.destPort < 1 || p.destPort > 65535) {
    throw new TraceError('bad-packet', `destination port ${p.destPort} is not in 1-65535`);
  }
  if (!['tcp', 'udp', 'sctp'].includes(p.protocol)) {
    throw new TraceError('bad-packet', `protocol "${p.protocol}" is not tcp, udp or sctp`);
  }
  if (!['pod', 'outside', 'node'].includes(p.entry)) {
    throw new TraceError('bad-packet', `entry "${p.entry}" is not pod, outside or node`);
  }
  return { src, dst };
}

/**
 * Traces the first packet of a new connection through `rules` (the tables of the packet's IP
 * family). Throws TraceError when a rule on the way cannot be evaluated.
 */
export function tracePacket(rules: RuleSet, packet: TracePacket, node: NodeInfo): TraceResult {
  const { src, dst } = checkPacket(packet);
  const localTexts = new Set<string>();
  for (const a of node.localAddresses) {
    const ip = parseIP(a.includes('/') ? a.slice(0, a.indexOf('/')) : a);
    if (ip) localTexts.add(ip.text);
  }
  const local = (ip: ParsedIP) => isLoopback(ip) || localTexts.has(ip.text);
  const base = { rules, src, sport: packet.sourcePort ?? 40000, protocol: packet.protocol, local };

  const start: PathState = {
    probability: 1,
    mark: 0,
    dst,
    dport: packet.destPort,
    dnat: undefined,
    masquerade: false,
    steps: [],
  };
  const done: TracePath[] = [];
  const finish = (s: PathState, verdict: Verdict, by: 'rule' | 'policy', delivery: TracePath['delivery']) => {
    done.push({
      probability: s.probability,
      steps: s.steps,
      dnat: s.dnat,
      masquerade: s.masquerade,
      mark: s.mark,
      verdict,
      verdictBy: by,
      delivery,
    });
  };

  const arriving = packet.entry !== 'node';
  const natFirst: Hook = arriving
    ? { table: 'nat', chain: 'PREROUTING', inInterface: packet.inInterface, outInterface: null }
    : { table: 'nat', chain: 'OUTPUT', inInterface: null, outInterface: packet.outInterface };

  for (const s1 of runHook({ ...base, hook: natFirst }, start)) {
    if (s1.verdict !== 'ACCEPT') {
      finish(s1.state, s1.verdict, s1.by, 'routed');
      continue;
    }
    const toLocal = local(s1.state.dst);
    if (arriving && toLocal) {
      const input: Hook = {
        table: 'filter',
        chain: 'INPUT',
        inInterface: packet.inInterface,
        outInterface: null,
      };
      for (const s2 of runHook({ ...base, hook: input }, s1.state))
        finish(s2.state, s2.verdict, s2.by, 'local');
      continue;
    }
    const filterHook: Hook = arriving
      ? {
          table: 'filter',
          chain: 'FORWARD',
          inInterface: packet.inInterface,
          outInterface: packet.outInterface,
        }
      : { table: 'filter', chain: 'OUTPUT', inInterface: null, outInterface: packet.outInterface };
    for (const s2 of runHook({ ...base, hook: filterHook }, s1.state)) {
      if (s2.verdict !== 'ACCEPT') {
        finish(s2.state, s2.verdict, s2.by, 'routed');
        continue;
      }
      const post: Hook = {
        table: 'nat',
        chain: 'POSTROUTING',
        // iptables refuses -i in POSTROUTING: there is no input interface there.
        inInterface: null,
        outInterface: packet.outInterface,
      };
      for (const s3 of runHook({ ...base, hook: post }, s2.state)) {
        if (!arriving && toLocal && s3.verdict === 'ACCEPT') {
          // Locally generated and locally delivered: over loopback into filter INPUT.
          const input: Hook = { table: 'filter', chain: 'INPUT', inInterface: 'lo', outInterface: null };
          for (const s4 of runHook({ ...base, hook: input }, s3.state)) {
            const by = s4.verdict === 'ACCEPT' && s2.by === 'rule' ? 'rule' : s4.by;
            finish(s4.state, s4.verdict, by, 'local');
          }
        } else {
          finish(s3.state, s2.verdict, s2.by, 'routed');
        }
      }
    }
  }
  return { packet, family: src.family, paths: done };
}

interface HookEnd {
  readonly state: PathState;
  readonly verdict: Verdict;
  readonly by: 'rule' | 'policy';
}

/** Runs one built-in chain; a fall-through takes the chain's policy. A missing table passes all. */
function runHook(ctx: Context, state: PathState): HookEnd[] {
  const table = ctx.rules.tables.get(ctx.hook.table);
  const chain = table?.chains.get(ctx.hook.chain);
  if (!chain) return [{ state, verdict: 'ACCEPT', by: 'policy' }];
  return walkChain(ctx, chain, state, 0).map((e): HookEnd => {
    if (e.end === 'verdict') {
      // A NAT target ends the nat table's traversal; the packet goes on.
      return e.verdict === 'NAT'
        ? { state: e.state, verdict: 'ACCEPT', by: 'policy' }
        : { state: e.state, verdict: e.verdict, by: 'rule' };
    }
    const policy = chain.policy ?? 'ACCEPT';
    if (policy !== 'ACCEPT' && policy !== 'DROP') {
      throw new TraceError('unsupported-rules', `policy ${policy} of ${ctx.hook.table} ${chain.name}`);
    }
    // Only a DROP policy is worth a step; ACCEPT is what "nothing matched" means.
    if (policy === 'DROP') {
      e.state.steps.push({
        table: ctx.hook.table,
        chain: chain.name,
        rule: undefined,
        text: `policy ${policy}`,
        action: policy,
      });
    }
    return { state: e.state, verdict: policy, by: 'policy' };
  });
}

function walkChain(ctx: Context, chain: Chain, state: PathState, depth: number): ChainEnd[] {
  if (depth > MAX_DEPTH) {
    throw new TraceError('chain-loop', `jumps nested deeper than ${MAX_DEPTH} at chain ${chain.name}`);
  }
  return walkFrom(ctx, chain, 0, state, depth);
}

function walkFrom(ctx: Context, chain: Chain, start: number, state: PathState, depth: number): ChainEnd[] {
  for (let i = start; i < chain.rules.length; i++) {
    const rule = chain.rules[i]!;
    const p = evaluate(ctx, rule, state);
    if (p === 0) continue;
    if (p < 1) {
      const taken = clone(state);
      taken.probability *= p;
      const skipped = clone(state);
      skipped.probability *= 1 - p;
      return [
        ...apply(ctx, chain, i, rule, taken, depth, { taken: true, probability: p }),
        ...walkFrom(ctx, chain, i + 1, skipped, depth),
      ];
    }
    return apply(ctx, chain, i, rule, state, depth, undefined);
  }
  return [{ state, end: 'return' }];
}

function describe(target: Target | undefined): string {
  if (!target) return 'match (no target)';
  switch (target.kind) {
    case 'jump':
      return `${target.goto ? 'goto' : 'jump'} ${target.chain}`;
    case 'verdict':
      return target.verdict;
    case 'return':
      return 'RETURN';
    case 'dnat':
      return `DNAT to ${natText(target.ip, target.port)}`;
    case 'masquerade':
      return 'MASQUERADE';
    case 'snat':
      return `SNAT to ${target.to}`;
    case 'mark':
      return 'MARK';
    case 'log':
      return target.name;
  }
}

function natText(ip: ParsedIP, port: number | undefined): string {
  if (port === undefined) return ip.text;
  return ip.family === 'IPv6' ? `[${ip.text}]:${port}` : `${ip.text}:${port}`;
}

function apply(
  ctx: Context,
  chain: Chain,
  i: number,
  rule: CompiledRule,
  state: PathState,
  depth: number,
  branch: TraceStep['branch'],
): ChainEnd[] {
  const target = rule.target;
  const step = (action: string) =>
    state.steps.push({
      table: rule.table,
      chain: chain.name,
      rule: rule.position,
      text: rule.text,
      action,
      ...(branch ? { branch } : {}),
    });
  if (!target) {
    step(describe(target));
    return walkFrom(ctx, chain, i + 1, state, depth);
  }
  switch (target.kind) {
    case 'verdict':
      step(target.verdict);
      return [{ state, end: 'verdict', verdict: target.verdict }];
    case 'return':
      step('RETURN');
      return [{ state, end: 'return' }];
    case 'log':
      step(target.name);
      return walkFrom(ctx, chain, i + 1, state, depth);
    case 'mark': {
      const before = state.mark;
      state.mark = ((state.mark & ~target.clear) ^ target.flip) >>> 0;
      step(`MARK ${hex(before)} -> ${hex(state.mark)}`);
      return walkFrom(ctx, chain, i + 1, state, depth);
    }
    case 'dnat': {
      requireNatTable(rule, ['PREROUTING', 'OUTPUT'], ctx.hook);
      if (target.ip.family !== state.dst.family) {
        throw new TraceError('unsupported-target', `DNAT to another IP family`, rule.text);
      }
      const endpoint = natText(target.ip, target.port);
      step(`DNAT to ${endpoint}`);
      state.dst = target.ip;
      if (target.port !== undefined) state.dport = target.port;
      state.dnat = { ip: target.ip.text, port: target.port, endpoint };
      return [{ state, end: 'verdict', verdict: 'NAT' }];
    }
    case 'masquerade':
    case 'snat':
      requireNatTable(rule, ['POSTROUTING', 'INPUT'], ctx.hook);
      step(describe(target));
      state.masquerade = true;
      return [{ state, end: 'verdict', verdict: 'NAT' }];
    case 'jump': {
      const next = ctx.rules.tables.get(rule.table)?.chains.get(target.chain);
      if (!next) {
        throw new TraceError(
          'missing-chain',
          `chain ${target.chain} does not exist in table ${rule.table}`,
          rule.text,
        );
      }
      step(describe(target));
      const out: ChainEnd[] = [];
      for (const e of walkChain(ctx, next, state, depth + 1)) {
        if (e.end === 'verdict') out.push(e);
        // RETURN from a goto'd chain returns from the chain that did the goto.
        else if (target.goto) out.push(e);
        else out.push(...walkFrom(ctx, chain, i + 1, e.state, depth));
      }
      return out;
    }
  }
}

function requireNatTable(rule: CompiledRule, hooks: readonly string[], hook: Hook): void {
  if (rule.table !== 'nat' || !hooks.includes(hook.chain)) {
    throw new TraceError(
      'unsupported-target',
      `${describe(rule.target)} reached from ${hook.table} ${hook.chain}, where the kernel does not allow it`,
      rule.text,
    );
  }
}

/**
 * How much `rule` matches the packet: 0 (no), 1 (yes), or the probability of its `-m statistic`
 * match when everything else matches. Matches the tracer knows are checked first, so that a rule
 * with a problem that fails on them is simply skipped; only a rule whose outcome depends on the
 * unknown part throws.
 */
function evaluate(ctx: Context, rule: CompiledRule, state: PathState): number {
  let probability = 1;
  for (const m of rule.matches) {
    const r = matchOne(ctx, rule, m, state);
    if (r === 0) return 0;
    probability *= r;
  }
  if (rule.problem) throw new TraceError(rule.problem.code, rule.problem.reason, rule.text);
  return probability;
}

function matchOne(ctx: Context, rule: CompiledRule, m: Match, state: PathState): number {
  const yes = (b: boolean, negated: boolean) => (b !== negated ? 1 : 0);
  switch (m.kind) {
    case 'address': {
      const ip = m.which === 'src' ? ctx.src : state.dst;
      if (m.cidr.family !== ip.family) {
        throw new TraceError(
          'bad-packet',
          `rule matches ${m.cidr.family} addresses, the packet is ${ip.family}`,
          rule.text,
        );
      }
      return yes(cidrContains(m.cidr, ip), m.negated);
    }
    case 'protocol':
      return yes(m.protocol === 'all' || m.protocol === ctx.protocol, m.negated);
    case 'port': {
      const port = m.which === 'dst' ? state.dport : ctx.sport;
      return yes(port >= m.from && port <= m.to, m.negated);
    }
    case 'addrtype': {
      const ip = m.which === 'src' ? ctx.src : state.dst;
      return yes(ctx.local(ip), m.negated);
    }
    case 'mark':
      return yes((state.mark & m.mask) >>> 0 === m.value, m.negated);
    case 'ctstate': {
      // The first packet of a connection: NEW, and DNAT once its destination was rewritten.
      const states = new Set(['NEW', ...(state.dnat ? ['DNAT'] : [])]);
      return yes(
        m.states.some((s) => states.has(s)),
        m.negated,
      );
    }
    case 'interface': {
      const have = m.which === 'in' ? ctx.hook.inInterface : ctx.hook.outInterface;
      if (have === null) return yes(false, m.negated);
      if (have === undefined) {
        throw new TraceError(
          'needs-interface',
          `rule matches on the ${m.which === 'in' ? 'input' : 'output'} interface; say which one the packet uses`,
          rule.text,
        );
      }
      const matches = m.name.endsWith('+') ? have.startsWith(m.name.slice(0, -1)) : have === m.name;
      return yes(matches, m.negated);
    }
    case 'statistic':
      return m.probability;
    case 'recent':
      // No connection history: an affinity check never matches, and recording is a no-op.
      return m.op === 'set' ? 1 : 0;
  }
}
