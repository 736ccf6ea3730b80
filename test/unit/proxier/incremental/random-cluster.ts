/**
 * A small random cluster that changes step by step (seeded, so a failure can be replayed), and the
 * partial-vs-full equivalence driver shared by the unit test (in-memory fake iptables) and the
 * kernel test (real iptables-restore in network namespaces).
 */

import { parseDump } from '../../../../pkg/iptables/parse.ts';
import type { Iptables } from '../../../../pkg/iptables/types.ts';
import { parseIP } from '../../../../pkg/net/ip.ts';
import type { IncrementalRenderer, RenderMode } from '../../../../proxier/incremental.ts';
import type { RenderConfig, RenderResult, RenderState } from '../../../../proxier/render.ts';
import { renderRules } from '../../../../proxier/render.ts';
import type { Endpoint, IPFamily, Protocol, ServiceKey, ServicePort } from '../../../../proxier/types.ts';
import { serviceKey, servicePortKey } from '../../../../proxier/types.ts';
import { makeEndpoint, makeServicePort } from '../../../golden/support/builders.ts';

/** mulberry32: tiny, fast, and the same sequence for the same seed everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface PortModel {
  port: number;
  protocol: Protocol;
  nodePort: number;
}

interface EndpointModel {
  host: number;
  local: boolean;
  ready: boolean;
  terminating: boolean;
}

type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

interface ServiceModel {
  readonly ns: string;
  readonly name: string;
  readonly index: number;
  type: ServiceType;
  ports: PortModel[];
  externalIPs: string[];
  lbVIPs: string[];
  sourceRanges: string[];
  eTPLocal: boolean;
  iTPLocal: boolean;
  affinity: boolean;
  healthCheckNodePort: number;
  endpoints: EndpointModel[];
}

/** The addresses of Service `i` (`i` below 250) in one family. */
interface Addresses {
  clusterIP(i: number): string;
  externalIP(i: number, n: number): string;
  vip(i: number, n: number): string;
  endpoint(i: number, host: number): string;
  /** A range that does not hold the node IP, and one that does (192.168.0.2 / 2001:db8::1). */
  readonly ranges: readonly [string, string];
}

const IPV4: Addresses = {
  clusterIP: (i) => `172.30.0.${i + 1}`,
  externalIP: (i, n) => `192.168.${99 - n}.${i}`,
  vip: (i, n) => `5.6.${i}.${n + 1}`,
  endpoint: (i, host) => `10.1.${i}.${host}`,
  ranges: ['203.0.113.0/25', '192.168.0.0/24'],
};

/** RFC 5952 text, as the change trackers hand addresses to the renderer. */
function canonical(ip: string): string {
  return parseIP(ip)!.text;
}

const IPV6: Addresses = {
  clusterIP: (i) => canonical(`fd00:30::${(i + 1).toString(16)}`),
  externalIP: (i, n) => canonical(`2001:db8:99:${n}::${i.toString(16)}`),
  vip: (i, n) => canonical(`2001:db8:56:${i.toString(16)}::${n + 1}`),
  endpoint: (i, host) => canonical(`fd00:10::${i.toString(16)}:${host.toString(16)}`),
  ranges: ['2001:db8:113::/64', '2001:db8::/64'],
};

/** The mutable cluster: a list of Services with their endpoints, and a seeded source of changes. */
export class RandomCluster {
  private readonly rand: () => number;
  private readonly services: ServiceModel[] = [];
  private nextIndex = 0;
  private nextNodePort = 30000;
  readonly maxServices: number;
  private readonly ip: Addresses;

  constructor(seed: number, maxServices: number, family: IPFamily = 'IPv4') {
    this.rand = seededRandom(seed);
    this.maxServices = maxServices;
    this.ip = family === 'IPv4' ? IPV4 : IPV6;
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  private chance(p: number): boolean {
    return this.rand() < p;
  }

  private newPort(type: ServiceType): PortModel {
    return {
      port: 80 + this.int(20),
      protocol: this.chance(0.7) ? 'TCP' : 'UDP',
      nodePort: type === 'ClusterIP' ? 0 : this.nextNodePort++,
    };
  }

  /** Adds a Service with random features; returns its key. */
  addService(): ServiceKey {
    const index = this.nextIndex++;
    const type: ServiceType = this.pick(['ClusterIP', 'ClusterIP', 'NodePort', 'LoadBalancer']);
    const s: ServiceModel = {
      ns: `ns${index % 3}`,
      name: `svc${index}`,
      index,
      type,
      ports: [],
      externalIPs: this.chance(0.2) ? [this.ip.externalIP(index % 250, 0)] : [],
      lbVIPs: type === 'LoadBalancer' ? [this.ip.vip(index % 250, 0)] : [],
      sourceRanges: type === 'LoadBalancer' && this.chance(0.4) ? [this.ip.ranges[0]] : [],
      eTPLocal: this.chance(0.3),
      iTPLocal: this.chance(0.15),
      affinity: this.chance(0.2),
      healthCheckNodePort: 32000 + index,
      endpoints: [],
    };
    s.ports.push(this.newPort(type));
    if (this.chance(0.3)) s.ports.push({ ...this.newPort(type), port: 443 + this.int(5) });
    const n = this.int(4);
    for (let i = 0; i < n; i++) this.addEndpointTo(s);
    this.services.push(s);
    return serviceKey(s.ns, s.name);
  }

  /** Removes a Service (by key) if it exists. */
  deleteService(key: ServiceKey): void {
    const i = this.services.findIndex((s) => serviceKey(s.ns, s.name) === key);
    if (i >= 0) this.services.splice(i, 1);
  }

  private addEndpointTo(s: ServiceModel): void {
    const used = new Set(s.endpoints.map((e) => e.host));
    let host = 1 + this.int(200);
    while (used.has(host)) host = 1 + ((host + 1) % 200);
    s.endpoints.push({ host, local: this.chance(0.4), ready: true, terminating: false });
  }

  private dedupePorts(s: ServiceModel): void {
    // Two ports with the same number and protocol are one port to the API server.
    const seen = new Set<string>();
    s.ports = s.ports.filter((p) => {
      const k = `${p.port}/${p.protocol}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /**
   * Applies one random change and returns its description and the Service it touched (the key a
   * change tracker would report).
   */
  mutate(): { what: string; key: ServiceKey } {
    if (this.services.length === 0 || (this.services.length < this.maxServices && this.chance(0.08))) {
      const key = this.addService();
      return { what: `add service ${key}`, key };
    }
    const s = this.pick(this.services);
    const key = serviceKey(s.ns, s.name);
    const r = this.int(20);
    switch (r) {
      case 0: {
        this.services.splice(this.services.indexOf(s), 1);
        return { what: `delete service ${key}`, key };
      }
      case 1:
      case 2:
      case 3:
        this.addEndpointTo(s);
        return { what: `add endpoint to ${key}`, key };
      case 4:
      case 5:
        if (s.endpoints.length > 0) s.endpoints.splice(this.int(s.endpoints.length), 1);
        return { what: `remove endpoint of ${key}`, key };
      case 6:
        s.endpoints = [];
        return { what: `endpoints of ${key} to zero`, key };
      case 7: {
        if (s.endpoints.length === 0) this.addEndpointTo(s);
        const e = this.pick(s.endpoints);
        e.local = !e.local;
        return { what: `toggle endpoint locality in ${key}`, key };
      }
      case 8: {
        if (s.endpoints.length === 0) this.addEndpointTo(s);
        const e = this.pick(s.endpoints);
        if (e.ready) {
          e.ready = false;
          e.terminating = this.chance(0.7);
        } else {
          e.ready = true;
          e.terminating = false;
        }
        return { what: `toggle endpoint readiness in ${key}`, key };
      }
      case 9: {
        const p = this.pick(s.ports);
        p.port = 80 + this.int(20);
        this.dedupePorts(s);
        return { what: `change port of ${key}`, key };
      }
      case 10:
        if (s.ports.length > 1 && this.chance(0.5)) s.ports.pop();
        else {
          s.ports.push(this.newPort(s.type));
          this.dedupePorts(s);
        }
        return { what: `add or remove a port of ${key}`, key };
      case 11:
        s.eTPLocal = !s.eTPLocal;
        return { what: `toggle eTP of ${key}`, key };
      case 12:
        s.iTPLocal = !s.iTPLocal;
        return { what: `toggle iTP of ${key}`, key };
      case 13:
        s.externalIPs =
          s.externalIPs.length > 0
            ? []
            : [this.ip.externalIP(s.index % 250, 0), this.ip.externalIP(s.index % 250, 1)].slice(
                0,
                1 + this.int(2),
              );
        return { what: `change external IPs of ${key}`, key };
      case 14:
        if (s.type === 'LoadBalancer') {
          s.lbVIPs =
            s.lbVIPs.length > 0
              ? []
              : [this.ip.vip(s.index % 250, 0), this.ip.vip(s.index % 250, 1)].slice(0, 1 + this.int(2));
        } else {
          this.setType(s, 'LoadBalancer');
          s.lbVIPs = [this.ip.vip(s.index % 250, 0)];
        }
        return { what: `change LB IPs of ${key}`, key };
      case 15:
        s.sourceRanges =
          s.sourceRanges.length > 0 ? [] : this.chance(0.5) ? [this.ip.ranges[0]] : [...this.ip.ranges];
        return { what: `change source ranges of ${key}`, key };
      case 16: {
        const next: ServiceType = this.pick(['ClusterIP', 'NodePort', 'LoadBalancer']);
        this.setType(s, next);
        return { what: `type of ${key} to ${next}`, key };
      }
      case 17:
        s.affinity = !s.affinity;
        return { what: `toggle session affinity of ${key}`, key };
      case 18: {
        // Endpoints go to zero and come back within one sync: nothing to rewrite at the top.
        const n = s.endpoints.length;
        s.endpoints = [];
        for (let i = 0; i < Math.max(1, n); i++) this.addEndpointTo(s);
        return { what: `replace all endpoints of ${key}`, key };
      }
      default:
        // An update that changes nothing the proxier renders (e.g. a label).
        return { what: `no-op update of ${key}`, key };
    }
  }

  private setType(s: ServiceModel, type: ServiceType): void {
    s.type = type;
    for (const p of s.ports) {
      if (type === 'ClusterIP') p.nodePort = 0;
      else if (p.nodePort === 0) p.nodePort = this.nextNodePort++;
    }
    if (type !== 'LoadBalancer') s.lbVIPs = [];
  }

  /** The proxier's maps for the cluster as it is now. */
  state(): RenderState {
    const services = new Map<string, ServicePort>();
    const endpoints = new Map<string, readonly Endpoint[]>();
    for (const s of this.services) {
      const externallyAccessible = s.type !== 'ClusterIP' || s.externalIPs.length > 0;
      for (const p of s.ports) {
        const sp = makeServicePort({
          ns: s.ns,
          name: s.name,
          portName: `p${p.port}${p.protocol === 'UDP' ? 'u' : ''}`,
          protocol: p.protocol,
          clusterIP: this.ip.clusterIP(s.index % 250),
          port: p.port,
          nodePort: p.nodePort,
          externalIPs: s.externalIPs,
          loadBalancerVIPs: s.type === 'LoadBalancer' ? s.lbVIPs : [],
          loadBalancerSourceRanges: s.type === 'LoadBalancer' ? s.sourceRanges : [],
          healthCheckNodePort: s.type === 'LoadBalancer' && s.eTPLocal ? s.healthCheckNodePort : 0,
          externalPolicyLocal: externallyAccessible && s.eTPLocal,
          internalPolicyLocal: s.iTPLocal,
          sessionAffinity: s.affinity ? { type: 'ClientIP', timeoutSeconds: 10800 } : { type: 'None' },
        });
        const key = servicePortKey(sp.name);
        services.set(key, sp);
        const eps = s.endpoints
          .map((e) =>
            makeEndpoint(this.ip.endpoint(s.index % 250, e.host), p.port + 8000, {
              local: e.local,
              ready: e.ready,
              serving: e.ready || e.terminating,
              terminating: e.terminating,
            }),
          )
          .sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
        if (eps.length > 0) endpoints.set(key, eps);
      }
    }
    return { services, endpoints };
  }
}

// ---- normalising dumps ----

const TOP_LEVEL: Readonly<Record<string, readonly string[]>> = {
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS'],
  filter: ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL'],
};
const NODEPORTS_JUMP = 'kubernetes service nodeports';

/** The Service (`ns/name`) a top-level rule belongs to, from its comment. */
function serviceOfRule(args: readonly string[]): string {
  const i = args.indexOf('--comment');
  const text = i >= 0 ? (args[i + 1] ?? '') : '';
  const m = /^([^/\s]+\/[^:\s]+)/.exec(text);
  return m ? m[1]! : '';
}

/**
 * A canonical text of the nat and filter tables of an iptables-save (or the fake's save) output:
 * chains by name, counters and policies left out. In the top-level chains rules of different
 * Services may come in any order, so they are grouped by Service (order inside a Service kept);
 * the nodeports jumps must be the last rules of nat KUBE-SERVICES, else a marker line says so.
 */
export function normalizeTables(saveText: string): string {
  const out: string[] = [];
  const dump = parseDump(saveText);
  for (const name of ['filter', 'nat']) {
    const table = dump.tables.find((t) => t.name === name);
    out.push(`*${name}`);
    if (!table) continue;
    const chains = table.chains.map((c) => c.name).sort();
    for (const chain of chains) {
      out.push(`:${chain}`);
      let rules = table.rules.filter((r) => r.op === '-A' && r.chain === chain).map((r) => r.args);
      if (TOP_LEVEL[name]?.includes(chain)) {
        const isJump = (a: readonly string[]) => a.some((w) => w.startsWith(NODEPORTS_JUMP));
        const firstJump = rules.findIndex(isJump);
        if (firstJump >= 0 && rules.slice(firstJump).some((a) => !isJump(a))) {
          out.push('!! a rule follows the nodeports jump');
        }
        const jumps = rules.filter(isJump);
        const rest = rules.filter((a) => !isJump(a));
        const keyed = rest.map((a) => ({ a, k: serviceOfRule(a) }));
        keyed.sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0));
        rules = [...keyed.map((x) => x.a), ...jumps];
      }
      for (const r of rules) out.push(`-A ${chain} ${r.join(' ')}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** Rule lines per table (what ruleCounts.total claims). */
export function countRules(saveText: string): { filter: number; nat: number } {
  const dump = parseDump(saveText);
  const n = (name: string) =>
    dump.tables.find((t) => t.name === name)?.rules.filter((r) => r.op === '-A').length ?? 0;
  return { filter: n('filter'), nat: n('nat') };
}

// ---- the equivalence driver ----

const NOFLUSH = { flush: false, counters: true } as const;

export interface FreshTables {
  readonly ipt: Iptables;
  dispose(): Promise<void>;
}

export interface EquivalenceOptions {
  readonly seed: number;
  readonly steps: number;
  /** Compare with a full render every this many syncs (and after the last). */
  readonly checkEvery: number;
  readonly maxServices: number;
  readonly config: RenderConfig;
  readonly renderer: IncrementalRenderer;
  /** Tables the partial syncs go to (empty at start). */
  readonly partial: Iptables;
  /** Empty tables for one full render. */
  fresh(): Promise<FreshTables>;
}

export interface EquivalenceReport {
  readonly syncs: number;
  readonly checks: number;
  readonly modes: Record<RenderMode, number>;
  /** Syncs whose payload did not mention a top-level chain. */
  readonly untouchedTopLevel: number;
  /** Top-level edits applied: `-D` lines per table, and `-I`/`-A` lines of top-level chains. */
  readonly edits: { readonly filterDeletes: number; readonly natDeletes: number; readonly inserts: number };
  /** undefined when every comparison matched. */
  readonly failure?: string;
}

const TOP_CHAIN_INSERT = /^-[AI] (KUBE-SERVICES|KUBE-EXTERNAL-SERVICES|KUBE-NODEPORTS|KUBE-PROXY-FIREWALL) /;
const TOP_CHAIN_MENTION =
  /^(:|-[ADI] )(KUBE-SERVICES|KUBE-EXTERNAL-SERVICES|KUBE-NODEPORTS|KUBE-PROXY-FIREWALL)\b/m;

/** One iptables-save for both tables (normalizeTables reads only filter and nat). */
function saveBoth(ipt: Iptables): Promise<string> {
  return ipt.saveAll();
}

/**
 * One full sync, then `steps` partial syncs of 1-3 random changes each through the incremental
 * renderer, applied with `iptables-restore --noflush`; every `checkEvery` syncs the partial
 * tables must equal a full render of the same state applied to fresh tables, and the rule
 * gauges must equal the rules in the table.
 */
export async function runEquivalence(o: EquivalenceOptions): Promise<EquivalenceReport> {
  const cluster = new RandomCluster(o.seed, o.maxServices, o.config.family);
  const rand = seededRandom(o.seed ^ 0x5bd1e995);
  for (let i = 0; i < Math.ceil(o.maxServices * 0.75); i++) cluster.addService();
  const modes: Record<RenderMode, number> = { full: 0, rewrite: 0, incremental: 0 };
  const history: string[] = [];
  let checks = 0;
  let untouchedTopLevel = 0;
  const edits = { filterDeletes: 0, natDeletes: 0, inserts: 0 };
  const countEdits = (r: RenderResult): void => {
    edits.filterDeletes += r.filter.rules.lines.filter((l) => l.startsWith('-D ')).length;
    edits.natDeletes += r.nat.rules.lines.filter((l) => l.startsWith('-D ')).length;
    for (const t of [r.filter, r.nat])
      edits.inserts += t.rules.lines.filter((l) => TOP_CHAIN_INSERT.test(l)).length;
  };

  const fail = (step: number, why: string): EquivalenceReport => ({
    syncs: step,
    checks,
    modes,
    untouchedTopLevel,
    edits,
    failure: `seed ${o.seed}, sync ${step}: ${why}\nlast changes:\n  ${history.slice(-12).join('\n  ')}`,
  });

  const apply = async (r: RenderResult): Promise<void> => {
    if (r.payload !== '') await o.partial.restoreAll(r.payload, NOFLUSH);
    o.renderer.commit();
  };

  const first = o.renderer.render(cluster.state(), o.config, { full: true, existingNatChains: new Set() });
  modes[first.mode]++;
  await apply(first);

  for (let step = 1; step <= o.steps; step++) {
    const changed = new Set<ServiceKey>();
    const n = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < n; i++) {
      const m = cluster.mutate();
      changed.add(m.key);
      history.push(`${step}: ${m.what}`);
    }
    const state = cluster.state();
    const r = o.renderer.render(state, o.config, { full: false, changedServices: changed });
    modes[r.mode]++;
    if (!TOP_CHAIN_MENTION.test(r.payload)) untouchedTopLevel++;
    if (r.mode === 'incremental') countEdits(r);
    try {
      await apply(r);
    } catch (e) {
      return fail(step, `restore failed: ${String(e)}\npayload:\n${r.payload}`);
    }
    if (step % o.checkEvery !== 0 && step !== o.steps) continue;

    checks++;
    const got = await saveBoth(o.partial);
    const counts = countRules(got);
    if (counts.filter !== r.ruleCounts.filter.total || counts.nat !== r.ruleCounts.nat.total) {
      return fail(
        step,
        `rule gauges filter ${r.ruleCounts.filter.total} nat ${r.ruleCounts.nat.total}, tables hold filter ${counts.filter} nat ${counts.nat}`,
      );
    }
    const fresh = await o.fresh();
    try {
      const full = renderRules(state, o.config, { full: true });
      await fresh.ipt.restoreAll(full.payload, NOFLUSH);
      const want = normalizeTables(await saveBoth(fresh.ipt));
      const have = normalizeTables(got);
      if (want !== have) return fail(step, `tables differ\n${lineDiff(want, have)}`);
    } finally {
      await fresh.dispose();
    }
  }
  return { syncs: o.steps, checks, modes, untouchedTopLevel, edits };
}

/** Lines only in `want` (-) or only in `have` (+), as a multiset difference. */
export function lineDiff(want: string, have: string): string {
  const count = new Map<string, number>();
  for (const l of want.split('\n')) count.set(l, (count.get(l) ?? 0) + 1);
  const extra: string[] = [];
  for (const l of have.split('\n')) {
    const n = count.get(l) ?? 0;
    if (n > 0) count.set(l, n - 1);
    else extra.push(`+ ${l}`);
  }
  const missing = [...count].flatMap(([l, n]) => Array.from({ length: n }, () => `- ${l}`));
  if (missing.length + extra.length > 0) return [...missing, ...extra].join('\n');
  const w = want.split('\n');
  const h = have.split('\n');
  const at = w.findIndex((l, i) => l !== h[i]);
  const chain = w
    .slice(0, at + 1)
    .reverse()
    .find((l) => l.startsWith(':'));
  return `same lines, different order in ${chain ?? '?'} from:\n  want ${w[at]}\n  have ${h[at]}`;
}
