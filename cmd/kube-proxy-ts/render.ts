/**
 * `kube-proxy-ts render`: the filter and nat tables a full sync would leave on an empty node,
 * for a cluster state read from files or listed once from the API server. It takes the daemon's
 * flags (through the same resolveConfig) and touches nothing: the sync runs against the
 * in-memory iptables.
 *
 *   kube-proxy-ts render -f FILE [-f FILE...] [daemon flags]
 *   kube-proxy-ts render --kubeconfig KUBECONFIG [daemon flags]
 *
 * Own flags: -f/--file (repeatable, `-` for stdin), --ip-family IPv4|IPv6 (only that family),
 * --node-ip IP (repeatable; added to the Node object's addresses), --random-fully=BOOL (whether
 * the node's iptables has MASQUERADE --random-fully; default true), --nfacct=BOOL (whether the
 * nfacct counters exist; default false, as the daemon).
 */
import { ConfigError, type ProxyConfig, resolveConfig } from '../../pkg/config/index.ts';
import { loadKubeConfig } from '../../pkg/k8s/kubeconfig.ts';
import type { Node } from '../../pkg/k8s/schemas.ts';
import { type IPFamily, parseIP } from '../../pkg/net/ip.ts';
import {
  NFACCT_CT_STATE_INVALID_DROPPED,
  NFACCT_LOCALHOST_NODEPORTS_ACCEPTED,
  type RenderConfig,
  renderRules,
} from '../../proxier/render.ts';
import { tablesAfterFullSync } from '../../proxier/trace/full-sync.ts';
import { nodeIPsOf } from './node-info.ts';
import { staticRenderConfigFor } from './render-config.ts';
import {
  type ClusterObjects,
  familiesOf,
  type ReadOutcome,
  readObjectFiles,
  readObjectsFromAPI,
  StateInputError,
  stateFromObjects,
} from './state-from-files.ts';

export interface CommandIO {
  readonly stdout: { write(chunk: string): unknown };
  readonly stderr: { write(chunk: string): unknown };
  /** Read for `-f -` / `--iptables-save -`; defaults to process.stdin. */
  readonly stdin?: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>;
}

/** A command line the command cannot run with (exit code 2). */
export class UsageError extends Error {
  readonly code = 'usage';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OwnFlag {
  readonly name: string;
  readonly short?: string;
  readonly kind: 'string' | 'bool';
}

/**
 * Takes this command's own flags out of argv; the rest goes to resolveConfig. Values are
 * `--name value`, `--name=value`, `-s value`; booleans `--name` or `--name=true|false`.
 */
export function splitOwnFlags(
  argv: readonly string[],
  flags: readonly OwnFlag[],
): { own: Map<string, string[]>; rest: string[] } {
  const own = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^(--?)([^=]+)(?:=(.*))?$/s.exec(arg);
    const flag = m
      ? flags.find((f) => (m[1] === '--' && f.name === m[2]) || (m[1] === '-' && f.short === m[2]))
      : undefined;
    if (!m || !flag) {
      rest.push(arg);
      continue;
    }
    let value = m[3];
    if (value === undefined) {
      if (flag.kind === 'bool') value = 'true';
      else {
        value = argv[i + 1];
        if (value === undefined) throw new UsageError(`flag ${arg} needs a value`);
        i++;
      }
    }
    if (flag.kind === 'bool' && value !== 'true' && value !== 'false') {
      throw new UsageError(`flag --${flag.name} takes true or false, not "${value}"`);
    }
    own.set(flag.name, [...(own.get(flag.name) ?? []), value]);
  }
  return { own, rest };
}

export function lastBool(own: Map<string, string[]>, name: string, dflt: boolean): boolean {
  const v = own.get(name)?.at(-1);
  return v === undefined ? dflt : v === 'true';
}

export async function readStdin(io: CommandIO): Promise<string> {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  for await (const c of io.stdin ?? process.stdin) {
    chunks.push(typeof c === 'string' ? c : decoder.decode(c, { stream: true }));
  }
  return chunks.join('') + decoder.decode();
}

export interface NodeContext {
  readonly nodeName: string;
  readonly node: Node | undefined;
  /** Primary node IPs (one per family), as the daemon detects them, plus --node-ip. */
  readonly nodeIPs: readonly string[];
  /** Addresses treated as the node's own: node IPs and loopback. */
  readonly localAddresses: readonly string[];
}

export interface RenderSettings {
  readonly randomFully: boolean;
  readonly nfacct: boolean;
}

/** The render configuration the daemon would use on this node. */
export function renderConfigFor(
  config: ProxyConfig,
  family: IPFamily,
  ctx: NodeContext,
  settings: RenderSettings,
): RenderConfig {
  return {
    ...staticRenderConfigFor(
      config,
      family,
      { name: ctx.nodeName, object: ctx.node, ips: ctx.nodeIPs },
      {
        tcpBeLiberal: config.conntrack.tcpBeLiberal,
        nfacctCounters: new Set(
          settings.nfacct ? [NFACCT_CT_STATE_INVALID_DROPPED, NFACCT_LOCALHOST_NODEPORTS_ACCEPTED] : [],
        ),
      },
    ),
    family,
    nodeLabels: ctx.node?.metadata.labels ?? {},
    localAddresses: ctx.localAddresses,
    hasRandomFully: settings.randomFully,
  };
}

/**
 * This node: named by --hostname-override, or, without it, the only Node in the input. Its
 * addresses are the node IPs; --node-ip adds more.
 */
export function nodeContextFor(
  config: ProxyConfig,
  objects: ClusterObjects,
  extraNodeIPs: readonly string[],
): { ctx: NodeContext; notes: string[] } {
  const notes: string[] = [];
  let nodeName = config.hostnameOverride;
  if (!config.hostnameOverridden && objects.nodes.length === 1) {
    nodeName = objects.nodes[0]!.metadata.name;
    notes.push(`node name ${nodeName} (the only Node in the input; --hostname-override picks another)`);
  }
  const node = objects.nodes.find((n) => n.metadata.name === nodeName);
  if (!node && objects.nodes.length > 0) notes.push(`no Node named ${nodeName} in the input`);
  const ips: string[] = [];
  for (const raw of [...extraNodeIPs, ...nodeIPsOf(node, config.bindAddress)]) {
    const ip = parseIP(raw);
    if (!ip) throw new UsageError(`--node-ip ${raw} is not an IP address`);
    if (!ips.includes(ip.text)) ips.push(ip.text);
  }
  const localAddresses = [...ips, '127.0.0.1', '::1'];
  return { ctx: { nodeName, node, nodeIPs: ips, localAddresses }, notes };
}

export interface FamilyTables {
  readonly family: IPFamily;
  /** iptables-save text of filter then nat. */
  readonly text: string;
  readonly warnings: readonly string[];
}

/** Renders one family and applies it, as a full sync would, to empty in-memory tables. */
export async function renderFamily(
  objects: ClusterObjects,
  config: ProxyConfig,
  family: IPFamily,
  ctx: NodeContext,
  settings: RenderSettings,
): Promise<FamilyTables> {
  const state = stateFromObjects(objects, family, ctx.nodeName);
  const result = renderRules(state, renderConfigFor(config, family, ctx, settings), { full: true });
  return { family, text: await tablesAfterFullSync(result, family), warnings: result.warnings };
}

/** The marker line before each family's tables in render output (trace reads it back). */
export function familyHeader(family: IPFamily): string {
  return `# kube-proxy-ts render: ${family}`;
}

/** Splits render output back into families; text without markers is one unnamed section. */
export function splitFamilies(text: string): { family: IPFamily | undefined; text: string }[] {
  const re = /^# kube-proxy-ts render: (IPv4|IPv6)$/gm;
  const marks = [...text.matchAll(re)];
  if (marks.length === 0) return [{ family: undefined, text }];
  return marks.map((m, i) => ({
    family: m[1] as IPFamily,
    text: text.slice(m.index + m[0].length, marks[i + 1]?.index ?? text.length),
  }));
}

export const INPUT_FLAGS: readonly OwnFlag[] = [
  { name: 'file', short: 'f', kind: 'string' },
  { name: 'node-ip', kind: 'string' },
  { name: 'random-fully', kind: 'bool' },
  { name: 'nfacct', kind: 'bool' },
];

export interface LoadedInput {
  readonly config: ProxyConfig;
  readonly objects: ClusterObjects;
  readonly ctx: NodeContext;
  readonly settings: RenderSettings;
  readonly notes: readonly string[];
}

/**
 * The shared front of render and trace: the daemon flags through resolveConfig, the objects
 * from files or from the API server, and this node.
 */
export async function loadInput(
  own: Map<string, string[]>,
  rest: readonly string[],
  io: CommandIO,
): Promise<LoadedInput> {
  const resolved = resolveConfig(rest);
  if ('help' in resolved) throw new UsageError('--help');
  const config = resolved.config;
  const files = own.get('file') ?? [];
  if (files.length > 0 && config.kubeconfig !== undefined) {
    throw new UsageError('give -f FILE or --kubeconfig, not both');
  }
  let read: ReadOutcome;
  if (files.length > 0) {
    let stdin: Promise<string> | undefined;
    read = await readObjectFiles(files, async (p) => {
      if (p !== '-') return (await import('node:fs/promises')).readFile(p, 'utf8');
      stdin ??= readStdin(io);
      return stdin;
    });
  } else if (config.kubeconfig !== undefined || config.master !== undefined) {
    const kc = loadKubeConfig({ kubeconfig: config.kubeconfig, master: config.master });
    read = await readObjectsFromAPI(kc, config.hostnameOverride, AbortSignal.timeout(60_000));
  } else {
    throw new UsageError('give -f FILE (repeatable) or --kubeconfig');
  }
  const { ctx, notes } = nodeContextFor(config, read.objects, own.get('node-ip') ?? []);
  return {
    config,
    objects: read.objects,
    ctx,
    settings: { randomFully: lastBool(own, 'random-fully', true), nfacct: lastBool(own, 'nfacct', false) },
    notes: [...resolved.warnings, ...read.notes, ...notes],
  };
}

const RENDER_HELP = `Usage: kube-proxy-ts render (-f FILE [-f FILE...] | --kubeconfig FILE) [flags]

Prints, in iptables-save format, the filter and nat tables that a full sync would leave on an
empty node for the given Services, EndpointSlices and Node (YAML or JSON, List kinds accepted;
'-' reads stdin). Touches nothing. Takes the daemon's flags (--hostname-override, --cluster-cidr,
--masquerade-all, --nodeport-addresses, --detect-local-mode, --iptables-masquerade-bit, ...).

  -f, --file FILE        objects to read (repeatable)
  --ip-family FAMILY     IPv4 or IPv6: print that family only
  --node-ip IP           an address of the node, besides the Node object's (repeatable)
  --random-fully BOOL    iptables has MASQUERADE --random-fully (default true)
  --nfacct BOOL          the nfacct counters exist (default false)
`;

/** Runs `render`; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function renderCommand(argv: string[], io: CommandIO): Promise<number> {
  try {
    if (argv.includes('-h') || argv.includes('--help')) {
      io.stdout.write(RENDER_HELP);
      return 0;
    }
    const { own, rest } = splitOwnFlags(argv, [...INPUT_FLAGS, { name: 'ip-family', kind: 'string' }]);
    const only = own.get('ip-family')?.at(-1);
    if (only !== undefined && only !== 'IPv4' && only !== 'IPv6') {
      throw new UsageError(`--ip-family must be IPv4 or IPv6, not "${only}"`);
    }
    const input = await loadInput(own, rest, io);
    for (const n of input.notes) io.stderr.write(`${n}\n`);
    let families = familiesOf(input.objects);
    if (families.length === 0) families = ['IPv4'];
    if (only !== undefined) families = [only];
    for (const family of families) {
      const t = await renderFamily(input.objects, input.config, family, input.ctx, input.settings);
      for (const w of t.warnings) io.stderr.write(`${family}: ${w}\n`);
      io.stdout.write(`${familyHeader(family)}\n${t.text}`);
    }
    return 0;
  } catch (err) {
    return reportError(err, io, 'render');
  }
}

export function reportError(err: unknown, io: CommandIO, command: string): number {
  if (err instanceof UsageError || err instanceof ConfigError) {
    io.stderr.write(`kube-proxy-ts ${command}: ${err.message}\n(see kube-proxy-ts ${command} --help)\n`);
    return 2;
  }
  if (err instanceof StateInputError) {
    io.stderr.write(`kube-proxy-ts ${command}: ${err.message}\n`);
    return 1;
  }
  io.stderr.write(`kube-proxy-ts ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}
