/**
 * `kube-proxy-ts trace`: where does a packet go? Over the rules a full sync would write for
 * given objects (`-f`, as `render`), or over a live or saved `iptables-save` dump.
 *
 *   kube-proxy-ts trace --src IP --dst IP --dport N [--protocol tcp|udp|sctp]
 *       [--from pod|outside|node] [--output text|json]
 *       (-f FILE [-f FILE...] [daemon flags] | --kubeconfig FILE [daemon flags] | --iptables-save FILE|-)
 *
 * Without --from, the entry is guessed from the source: a node address or loopback is the node,
 * an address inside --cluster-cidr is a pod, anything else is outside.
 */
import { readFile } from 'node:fs/promises';
import { resolveConfig } from '../../pkg/config/index.ts';
import { cidrContains, type IPFamily, parseCIDR, parseIP } from '../../pkg/net/ip.ts';
import { ruleSetFromText } from '../../proxier/trace/rules.ts';
import { formatTrace, traceToJSON } from '../../proxier/trace/summary.ts';
import { type Entry, type TraceProtocol, tracePacket } from '../../proxier/trace/tracer.ts';
import {
  type CommandIO,
  INPUT_FLAGS,
  loadInput,
  readStdin,
  renderFamily,
  reportError,
  splitFamilies,
  splitOwnFlags,
  UsageError,
} from './render.ts';

const TRACE_FLAGS = [
  ...INPUT_FLAGS,
  { name: 'src', kind: 'string' },
  { name: 'dst', kind: 'string' },
  { name: 'dport', kind: 'string' },
  { name: 'protocol', kind: 'string' },
  { name: 'from', kind: 'string' },
  { name: 'in-interface', kind: 'string' },
  { name: 'out-interface', kind: 'string' },
  { name: 'output', short: 'o', kind: 'string' },
  { name: 'iptables-save', kind: 'string' },
] as const;

const TRACE_HELP = `Usage: kube-proxy-ts trace --src IP --dst IP --dport N [flags] (-f FILE... | --iptables-save FILE|-)

Walks the first packet of a new connection through kube-proxy's rules, in netfilter's order,
and prints each rule it matches and where it ends: DNAT to which endpoints (with the probability
of each), masqueraded or not, accepted, rejected or dropped.

  --src IP, --dst IP     source and destination address
  --dport N              destination port
  --protocol P           tcp (default), udp or sctp
  --from WHERE           pod, outside or node (default: guessed from --src)
  --in-interface NAME    interface the packet arrives on (only for rules with -i)
  --out-interface NAME   interface it leaves by (only for rules with -o)
  -o, --output FORMAT    text (default) or json
  -f, --file FILE        objects to render, as 'kube-proxy-ts render' (repeatable), with the daemon's flags
  --iptables-save FILE   an iptables-save dump ('-' for stdin) of the packet's IP family
  --node-ip IP           an address of the node (repeatable); with --iptables-save, the LOCAL addresses
`;

function single(own: Map<string, string[]>, name: string): string | undefined {
  return own.get(name)?.at(-1);
}

function required(own: Map<string, string[]>, name: string): string {
  const v = single(own, name);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

/** The entry point when --from is not given. */
export function guessEntry(
  src: string,
  localAddresses: readonly string[],
  clusterCIDRs: readonly string[],
): Entry {
  const ip = parseIP(src);
  if (!ip) return 'outside';
  const loopback = ip.family === 'IPv4' ? ip.bytes[0] === 127 : ip.text === '::1';
  if (loopback || localAddresses.some((a) => parseIP(a)?.text === ip.text)) return 'node';
  for (const c of clusterCIDRs) {
    const cidr = parseCIDR(c);
    if (cidr && cidrContains(cidr, ip)) return 'pod';
  }
  return 'outside';
}

/** Runs `trace`; returns the exit code (0 traced, 1 failure, 2 usage). */
export async function traceCommand(argv: string[], io: CommandIO): Promise<number> {
  try {
    if (argv.includes('-h') || argv.includes('--help')) {
      io.stdout.write(TRACE_HELP);
      return 0;
    }
    const { own, rest } = splitOwnFlags(argv, TRACE_FLAGS);
    const src = required(own, 'src');
    const dst = required(own, 'dst');
    const srcIP = parseIP(src);
    if (!srcIP) throw new UsageError(`--src ${src} is not an IP address`);
    const dportText = required(own, 'dport');
    if (!/^\d{1,5}$/.test(dportText)) throw new UsageError(`--dport ${dportText} is not a port number`);
    const protocol = (single(own, 'protocol') ?? 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') {
      throw new UsageError(`--protocol must be tcp, udp or sctp, not "${protocol}"`);
    }
    const from = single(own, 'from');
    if (from !== undefined && from !== 'pod' && from !== 'outside' && from !== 'node') {
      throw new UsageError(`--from must be pod, outside or node, not "${from}"`);
    }
    const output = single(own, 'output') ?? 'text';
    if (output !== 'text' && output !== 'json')
      throw new UsageError(`--output must be text or json, not "${output}"`);
    const family: IPFamily = srcIP.family;

    const savePath = single(own, 'iptables-save');
    let rulesText: string;
    let localAddresses: string[];
    let clusterCIDRs: readonly string[];
    if (savePath !== undefined) {
      if (own.has('file')) throw new UsageError('give -f FILE or --iptables-save, not both');
      const resolved = resolveConfig(rest);
      if ('help' in resolved) throw new UsageError('--help');
      clusterCIDRs = resolved.config.clusterCIDRs;
      const text = savePath === '-' ? await readStdin(io) : await readFile(savePath, 'utf8');
      const sections = splitFamilies(text);
      const section = sections.find((s) => s.family === undefined || s.family === family);
      if (!section) throw new UsageError(`${savePath} has no ${family} tables`);
      rulesText = section.text;
      localAddresses = [];
      for (const raw of own.get('node-ip') ?? []) {
        const ip = parseIP(raw);
        if (!ip) throw new UsageError(`--node-ip ${raw} is not an IP address`);
        localAddresses.push(ip.text);
      }
      if (localAddresses.length === 0) {
        io.stderr.write('note: no --node-ip given; only loopback addresses count as LOCAL\n');
      }
    } else {
      const input = await loadInput(own, rest, io);
      for (const n of input.notes) io.stderr.write(`${n}\n`);
      const tables = await renderFamily(input.objects, input.config, family, input.ctx, input.settings);
      for (const w of tables.warnings) io.stderr.write(`${family}: ${w}\n`);
      rulesText = tables.text;
      localAddresses = [...input.ctx.localAddresses];
      clusterCIDRs = input.config.clusterCIDRs;
    }

    const entry = (from as Entry | undefined) ?? guessEntry(src, localAddresses, clusterCIDRs);
    const inInterface = single(own, 'in-interface');
    const outInterface = single(own, 'out-interface');
    const result = tracePacket(
      ruleSetFromText(rulesText),
      {
        sourceIP: src,
        destIP: dst,
        destPort: Number(dportText),
        protocol: protocol as TraceProtocol,
        entry,
        ...(inInterface !== undefined ? { inInterface } : {}),
        ...(outInterface !== undefined ? { outInterface } : {}),
      },
      { localAddresses },
    );
    io.stdout.write(output === 'json' ? traceToJSON(result) : formatTrace(result));
    return 0;
  } catch (err) {
    return reportError(err, io, 'trace');
  }
}
