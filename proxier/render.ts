/**
 * Rendering: a pure, deterministic function from the proxier's state (service ports, endpoints)
 * and node configuration to the filter and nat contents of one `iptables-restore --noflush`
 * payload, laid out as upstream kube-proxy's syncProxyRules writes it. No clock, no process:
 * everything that upstream reads from the system (interface addresses, existing chains, nfacct
 * counters, random-fully support) comes in through the config and options.
 *
 * Upstream visits services in Go map order (random per sync); here they are visited sorted by
 * service port name, then protocol, and the nodeports jump stays last in nat KUBE-SERVICES.
 */
import type { TableContent } from '../pkg/iptables/payload.ts';
import {
  buildRestoreParts,
  chainLine,
  comment,
  LineBuffer,
  newTableContent,
  textOnce,
} from '../pkg/iptables/payload.ts';
import type { IPFamily, ParsedIP } from '../pkg/net/ip.ts';
import { cidrContains, parseCIDR, parseIP } from '../pkg/net/ip.ts';
import {
  isServiceChain,
  KUBE_EXTERNAL_SERVICES,
  KUBE_FIREWALL,
  KUBE_FORWARD,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_POSTROUTING,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
} from './chains.ts';
import type { LocalDetectorConfig } from './localdetect.ts';
import { createLocalDetector } from './localdetect.ts';
import type {
  ServicePortMemo,
  ServicePortText,
  ServiceRenderContext,
  ServiceRenderOutcome,
} from './render-service.ts';
import { renderServicePort } from './render-service.ts';
import {
  masqueradeMark,
  NFACCT_LOCALHOST_NODEPORTS_ACCEPTED,
  writeForwardRules,
  writeKubeletFirewallRule,
  writeNatStaticRules,
} from './render-static.ts';
import type {
  Endpoint,
  EndpointsMap,
  ServiceKey,
  ServicePort,
  ServicePortKey,
  ServicePortMap,
} from './types.ts';
import { serviceKey, servicePortKey, servicePortNameString } from './types.ts';

export type { BuiltinJump } from './render-static.ts';
export {
  masqueradeMark,
  NFACCT_CT_STATE_INVALID_DROPPED,
  NFACCT_LOCALHOST_NODEPORTS_ACCEPTED,
  renderBuiltinJumps,
} from './render-static.ts';

/** Above this many endpoints (all service ports together) rules lose their per-endpoint comments. */
export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;

export interface RenderState {
  readonly services: ServicePortMap;
  readonly endpoints: EndpointsMap;
}

export interface RenderConfig {
  readonly family: IPFamily;
  readonly nodeName: string;
  /**
   * The node's primary IPs (any family). The first one of `family` is upstream's `nodeIP`: a
   * loadBalancerSourceRange containing it also allows the LB VIPs as sources. They are also the
   * addresses `nodePortAddresses: 'primary'` selects.
   */
  readonly nodeIPs: readonly string[];
  /** The Node's labels; `topology.kubernetes.io/zone` drives zone hints. */
  readonly nodeLabels: Readonly<Record<string, string>>;
  /** Bit of the masquerade mark, default 14 (mark 0x00004000). */
  readonly masqueradeBit?: number;
  readonly masqueradeAll: boolean;
  readonly localDetector: LocalDetectorConfig;
  /**
   * CIDRs whose local addresses accept NodePorts (entries of the other family are ignored; none
   * of this family means every local address), or 'primary' for the node IPs only.
   */
  readonly nodePortAddresses: readonly string[] | 'primary';
  /**
   * Addresses on the node's interfaces (what upstream lists with net.InterfaceAddrs). Only read
   * when nodePortAddresses restricts NodePorts to some CIDRs.
   */
  readonly localAddresses?: readonly string[];
  /** --iptables-localhost-nodeports (IPv4 only; turned off when nodePortAddresses exclude 127.0.0.1). */
  readonly localhostNodePorts: boolean;
  /** iptables supports MASQUERADE --random-fully (>= 1.6.2). */
  readonly hasRandomFully: boolean;
  /** nfacct counters that exist (ct_state_invalid_dropped_pkts, localhost_nps_accepted_pkts). */
  readonly nfacctCounters: ReadonlySet<string>;
  /** net.netfilter.nf_conntrack_tcp_be_liberal is non-zero: no INVALID drop rule. */
  readonly tcpBeLiberal: boolean;
}

export interface RenderOptions {
  /** Rewrite every per-service chain (else only those of `changedServices`). */
  readonly full: boolean;
  /** Services (namespace/name) whose Service or EndpointSlices changed since the last sync. */
  readonly changedServices?: ReadonlySet<ServiceKey>;
  /**
   * nat chains that exist now (from iptables-save). Chains with a service prefix that the
   * rendered state does not use are flushed and deleted. Leave it out to skip stale-chain
   * deletion (upstream does so in large-cluster mode more often than once per sync period).
   */
  readonly existingNatChains?: ReadonlySet<string>;
  /**
   * Called once per service port, in render order, with that port's top-level rules (written
   * whole by this function on every sync) and the size of its own chains. The incremental renderer builds its cache from it.
   */
  readonly onServicePort?: (rendered: ServicePortRender) => void;
  /**
   * Service port texts kept from earlier renders (the incremental renderer's). Every port's
   * chains are then rendered, written or not, so that the next full render finds them.
   */
  readonly memo?: ServicePortMemo;
}

/** What one service port contributed to a render (see RenderOptions.onServicePort). */
export interface ServicePortRender {
  readonly svc: ServicePort;
  /** Its filter rules (KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL). */
  readonly filterRules: readonly string[];
  /** Its rules in nat KUBE-SERVICES and KUBE-NODEPORTS. */
  readonly natTopRules: readonly string[];
  /** Rules of its own nat chains (EXT, FW, SVC, SVL, SEP), written or skipped. */
  readonly natChainRuleCount: number;
  readonly outcome: ServiceRenderOutcome;
  /** Its endpoints, ready or not (what largeClusterMode counts). */
  readonly endpointCount: number;
}

/** Rule gauges as upstream's sync_proxy_rules_iptables_total / _last (section 3.4). */
export interface RuleCounts {
  /** All rules the table holds after this sync (nat: written + skipped - deleted chains). */
  readonly total: number;
  /** Rules written in this payload. */
  readonly last: number;
}

export interface RenderResult {
  /** The restore payload as parts (RestorePayload): what a sync hands to iptables-restore. */
  readonly payloadParts: readonly string[];
  /** The payload's text, joined from the parts on first use (a sync never needs it). */
  readonly payload: string;
  readonly filter: TableContent;
  readonly nat: TableContent;
  /** Every per-service nat chain the state uses (written or skipped). */
  readonly activeNatChains: Set<string>;
  /** Stale chains this payload deletes (chain line + `-X`), sorted. */
  readonly deletedNatChains: readonly string[];
  /** `-A` lines in the nat table of the payload. */
  readonly natRuleCount: number;
  /** `-A` lines in the filter table of the payload. */
  readonly filterRuleCount: number;
  readonly ruleCounts: { readonly filter: RuleCounts; readonly nat: RuleCounts };
  /** Service ports whose Local policy has endpoints elsewhere but none on this node. */
  readonly noLocalEndpoints: { readonly internal: number; readonly external: number };
  readonly totalEndpoints: number;
  readonly largeClusterMode: boolean;
  /** Things upstream logs while rendering (e.g. loopback nodePortAddresses that are skipped). */
  readonly warnings: readonly string[];
}

/** Endpoints of every service port in the map (ready or not), as upstream counts them. */
export function totalEndpointCount(state: RenderState): number {
  let total = 0;
  for (const key of state.services.keys()) total += state.endpoints.get(key)?.length ?? 0;
  return total;
}

/** Render order of service ports: by upstream's name string, then protocol. */
export function compareServicePorts(a: ServicePort, b: ServicePort): number {
  const na = servicePortNameString(a.name);
  const nb = servicePortNameString(b.name);
  if (na !== nb) return na < nb ? -1 : 1;
  return a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0;
}

/** A service port with its map key and name string (the sort key). */
interface KeyedPort {
  readonly key: ServicePortKey;
  readonly name: string;
  readonly svc: ServicePort;
}

/** The service ports in render order (compareServicePorts), each name string built once. */
function sortedServicePorts(ports: ServicePortMap): KeyedPort[] {
  const keyed = Array.from(ports, ([key, svc]) => ({ key, name: servicePortNameString(svc.name), svc }));
  return keyed.sort((a, b) => {
    if (a.name !== b.name) return a.name < b.name ? -1 : 1;
    const pa = a.svc.protocol;
    const pb = b.svc.protocol;
    return pa < pb ? -1 : pa > pb ? 1 : 0;
  });
}

/** The endpoints of a port that has none: one shared list, so memoized renders of it match. */
const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

function isLoopback(ip: ParsedIP): boolean {
  return ip.family === 'IPv4' ? ip.bytes[0] === 127 : ip.text === '::1';
}

interface NodePortScope {
  /** No restriction: every local address (`--dst-type LOCAL`). */
  readonly matchAll: boolean;
  /** Addresses to write one nodeports jump each, when not matchAll. */
  readonly addresses: readonly ParsedIP[];
  /** 127.0.0.1 is inside the scope; otherwise localhost NodePorts are off (as NewProxier). */
  readonly containsIPv4Loopback: boolean;
}

/** Upstream's NodePortAddresses for one family, resolved against the node's addresses. */
function nodePortScope(config: RenderConfig): NodePortScope {
  const family = config.family;
  const cidrTexts =
    config.nodePortAddresses === 'primary'
      ? config.nodeIPs.map((ip) => `${ip}/${ip.includes(':') ? 128 : 32}`)
      : config.nodePortAddresses;
  const cidrs = cidrTexts.flatMap((c) => {
    const parsed = parseCIDR(c);
    return parsed && parsed.family === family ? [parsed] : [];
  });
  if (cidrs.length === 0 || cidrs.some((c) => c.prefixLength === 0)) {
    return { matchAll: true, addresses: [], containsIPv4Loopback: family === 'IPv4' };
  }
  const loopback = parseIP('127.0.0.1')!;
  const containsIPv4Loopback = cidrs.some(
    (c) => c.family === 'IPv4' && (c.network.bytes[0] === 127 || cidrContains(c, loopback)),
  );
  const seen = new Set<string>();
  const addresses: ParsedIP[] = [];
  for (const a of config.localAddresses ?? []) {
    const ip = parseIP(a.includes('/') ? a.slice(0, a.indexOf('/')) : a);
    if (!ip || ip.family !== family || seen.has(ip.text)) continue;
    if (cidrs.some((c) => cidrContains(c, ip))) {
      seen.add(ip.text);
      addresses.push(ip);
    }
  }
  return { matchAll: false, addresses, containsIPv4Loopback };
}

const NODEPORTS_COMMENT = 'kubernetes service nodeports; NOTE: this must be the last rule in this chain';

/**
 * The parts of a payload that depend on the config alone, never on a service: top-level chain
 * lines, the static rules before and after the per-service rules, and the context every service
 * port is rendered with. Full and partial renders write them in upstream's layout; the
 * incremental renderer compares `fingerprint` between syncs to know that its cached top-level
 * rules are still what a full render would write.
 */
export interface StaticRender {
  readonly filterChains: readonly string[];
  /** The KUBE-FIREWALL rule (IPv4 with localhost NodePorts), before the service rules. */
  readonly filterHead: readonly string[];
  /** KUBE-FORWARD rules, after the service rules. */
  readonly filterTail: readonly string[];
  readonly natChains: readonly string[];
  /** KUBE-POSTROUTING and KUBE-MARK-MASQ, before the service rules. */
  readonly natHead: readonly string[];
  /** The nodeports jump(s): the last rules of nat KUBE-SERVICES. */
  readonly natTail: readonly string[];
  readonly warnings: readonly string[];
  /** Every service port's context, but for largeClusterMode (which depends on the endpoints). */
  readonly serviceContext: Omit<ServiceRenderContext, 'largeClusterMode'>;
  /** Changes whenever anything above would render differently. */
  readonly fingerprint: string;
}

export function renderStatic(config: RenderConfig): StaticRender {
  const family = config.family;
  const isIPv6 = family === 'IPv6';
  const mark = masqueradeMark(config.masqueradeBit ?? 14);
  const warnings: string[] = [];
  const scope = nodePortScope(config);
  const localhostNodePorts = config.localhostNodePorts && !isIPv6 && scope.containsIPv4Loopback;
  const detector = createLocalDetector(config.localDetector, family);
  const nodeIPText = config.nodeIPs.find((ip) => parseIP(ip)?.family === family);
  const nodeIP = nodeIPText === undefined ? undefined : parseIP(nodeIPText);

  const filterChains = [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
  ].map(chainLine);
  const natChains = [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ].map(chainLine);
  const natHead = new LineBuffer();
  writeNatStaticRules(natHead, mark, config.hasRandomFully);
  const filterHead = new LineBuffer();
  if (!isIPv6 && localhostNodePorts) {
    filterChains.push(chainLine(KUBE_FIREWALL));
    writeKubeletFirewallRule(filterHead);
  }

  // The nodeports jump goes last: `--dst-type LOCAL` is broad and every specific service-IP rule
  // must be tried first.
  const natTail = new LineBuffer();
  if (scope.matchAll) {
    // Localhost NodePorts never work on IPv6, and on IPv4 only with route_localnet.
    const loopbackExclusion = isIPv6
      ? ['!', '-d', '::1/128']
      : localhostNodePorts
        ? []
        : ['!', '-d', '127.0.0.0/8'];
    natTail.write(
      '-A',
      KUBE_SERVICES,
      comment(NODEPORTS_COMMENT),
      '-m',
      'addrtype',
      '--dst-type',
      'LOCAL',
      loopbackExclusion,
      '-j',
      KUBE_NODEPORTS,
    );
  } else {
    for (const ip of scope.addresses) {
      if (isLoopback(ip)) {
        if (isIPv6) {
          warnings.push(
            `--nodeport-addresses includes localhost (${ip.text}) but localhost NodePorts are not supported on IPv6`,
          );
          continue;
        }
        if (!localhostNodePorts) {
          warnings.push(
            `--nodeport-addresses includes localhost (${ip.text}) but --iptables-localhost-nodeports=false was passed`,
          );
          continue;
        }
      }
      natTail.write('-A', KUBE_SERVICES, comment(NODEPORTS_COMMENT), '-d', ip.text, '-j', KUBE_NODEPORTS);
    }
  }

  const filterTail = new LineBuffer();
  writeForwardRules(filterTail, mark, config.tcpBeLiberal, config.nfacctCounters);

  const serviceContext = {
    nodeName: config.nodeName,
    nodeLabels: config.nodeLabels,
    nodeIP,
    masqueradeAll: config.masqueradeAll,
    localDetector: detector,
    localhostNodePortCounter:
      localhostNodePorts && config.nfacctCounters.has(NFACCT_LOCALHOST_NODEPORTS_ACCEPTED),
  };
  const fingerprint = JSON.stringify([
    family,
    filterChains,
    filterHead.lines,
    filterTail.lines,
    natChains,
    natHead.lines,
    natTail.lines,
    config.nodeName,
    Object.entries(config.nodeLabels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    nodeIP?.text ?? '',
    config.masqueradeAll,
    detector,
    serviceContext.localhostNodePortCounter,
  ]);
  return {
    filterChains,
    filterHead: filterHead.lines,
    filterTail: filterTail.lines,
    natChains,
    natHead: natHead.lines,
    natTail: natTail.lines,
    warnings,
    serviceContext,
    fingerprint,
  };
}

/** What a ServicePortMemo's entries depend on besides the port and its endpoints. */
export function memoContext(statics: StaticRender, largeClusterMode: boolean): string {
  return `${largeClusterMode}\n${statics.fingerprint}`;
}

/**
 * One port's text: from the memo (already set to memoContext of `ctx`), else rendered and kept
 * there. Without a memo the port's own chains are rendered only when `keepChains`.
 */
export function servicePortText(
  svc: ServicePort,
  endpoints: readonly Endpoint[],
  ctx: ServiceRenderContext,
  keepChains: boolean,
  memo: ServicePortMemo | undefined,
): ServicePortText {
  if (memo === undefined) return renderServicePort(svc, endpoints, ctx, keepChains);
  let text = memo.get(svc, endpoints);
  if (text === undefined) {
    text = renderServicePort(svc, endpoints, ctx, true);
    memo.set(svc, endpoints, text);
  }
  return text;
}

/** Endpoints of a port in the state: a port without any gets one shared list (memo hits). */
export function endpointsOf(state: RenderState, svc: ServicePort): readonly Endpoint[] {
  return state.endpoints.get(servicePortKey(svc.name)) ?? NO_ENDPOINTS;
}

/** Renders the whole restore payload for one IP family. Pure and deterministic. */
export function renderRules(state: RenderState, config: RenderConfig, opts: RenderOptions): RenderResult {
  const statics = renderStatic(config);
  const filter = newTableContent('filter');
  const nat = newTableContent('nat');
  for (const l of statics.filterChains) filter.chains.writeLine(l);
  for (const l of statics.natChains) nat.chains.writeLine(l);
  for (const l of statics.natHead) nat.rules.writeLine(l);
  for (const l of statics.filterHead) filter.rules.writeLine(l);

  const totalEndpoints = totalEndpointCount(state);
  const largeClusterMode = totalEndpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD;
  const ctx: ServiceRenderContext = { ...statics.serviceContext, largeClusterMode };

  let skippedRules = 0;
  const activeNatChains = new Set<string>();
  let noLocalInternal = 0;
  let noLocalExternal = 0;
  const observe = opts.onServicePort;
  const memo = opts.memo;
  memo?.useContext(memoContext(statics, largeClusterMode));

  for (const { key, svc } of sortedServicePorts(state.services)) {
    const write =
      opts.full || (opts.changedServices?.has(serviceKey(svc.name.namespace, svc.name.name)) ?? false);
    // The map's own key: equal to servicePortKey(svc.name), and already hashed.
    const endpoints = state.endpoints.get(key) ?? NO_ENDPOINTS;
    // Without a memo, the chains of a port this render skips are only counted.
    const text = servicePortText(svc, endpoints, ctx, write, memo);
    for (const l of text.filterRules) filter.rules.writeLine(l);
    // Top-level nat rules come first in a service port's output, then its own chains' rules.
    for (const l of text.natTopRules) nat.rules.writeLine(l);
    if (write) {
      nat.chains.writeBlock(text.natChains, text.natChainCount);
      nat.rules.writeBlock(text.natRules, text.natRuleCount);
    } else {
      skippedRules += text.natRuleCount;
    }
    for (const c of text.activeChains) activeNatChains.add(c);
    if (text.noLocalInternal) noLocalInternal++;
    if (text.noLocalExternal) noLocalExternal++;
    observe?.({
      svc,
      filterRules: text.filterRules,
      natTopRules: text.natTopRules,
      natChainRuleCount: text.natRuleCount,
      outcome: text,
      endpointCount: endpoints.length,
    });
  }

  // Stale chains: a chain line (which flushes it) and -X. They are unreferenced by now.
  const deletedNatChains = [...(opts.existingNatChains ?? [])]
    .filter((c) => isServiceChain(c) && !activeNatChains.has(c))
    .sort();
  for (const c of deletedNatChains) {
    nat.chains.writeLine(chainLine(c));
    nat.rules.write('-X', c);
  }

  for (const l of statics.natTail) nat.rules.writeLine(l);
  for (const l of statics.filterTail) filter.rules.writeLine(l);

  const deleted = deletedNatChains.length;
  const natWritten = nat.rules.length - deleted;
  const filterWritten = filter.rules.length;
  const payloadParts = buildRestoreParts([filter, nat]);
  const text = textOnce(payloadParts);
  return {
    payloadParts,
    get payload() {
      return text();
    },
    filter,
    nat,
    activeNatChains,
    deletedNatChains,
    natRuleCount: natWritten,
    filterRuleCount: filterWritten,
    ruleCounts: {
      filter: { total: filterWritten, last: filterWritten },
      nat: { total: natWritten + skippedRules, last: natWritten },
    },
    noLocalEndpoints: { internal: noLocalInternal, external: noLocalExternal },
    totalEndpoints,
    largeClusterMode,
    warnings: statics.warnings,
  };
}
