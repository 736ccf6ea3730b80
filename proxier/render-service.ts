/**
 * The rules of one service port, in upstream's order (writeServiceToEndpointRules and the body of
 * syncProxyRules' service loop): first the top-level rules (nat KUBE-SERVICES / KUBE-NODEPORTS
 * jumps, filter REJECT/DROP/ACCEPT), which full and upstream-style partial syncs rewrite whole and
 * incremental syncs edit rule by rule (incremental.ts), then the per-service chains (EXT, FW, SVC,
 * SVL, SEP), which a partial sync writes only for changed services.
 */
import { commentMatch } from '../pkg/iptables/payload.ts';
import type { ParsedIP } from '../pkg/net/ip.ts';
import { cidrContains, parseCIDR } from '../pkg/net/ip.ts';
import {
  endpointChainNameOf,
  KUBE_EXTERNAL_SERVICES,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
  servicePortChainNames,
} from './chains.ts';
import type { LocalTrafficDetector } from './localdetect.ts';
import { probability } from './render-probability.ts';
import { NFACCT_LOCALHOST_NODEPORTS_ACCEPTED } from './render-static.ts';
import {
  categorizeEndpoints,
  externallyAccessible,
  externalPolicyLocal,
  usesClusterEndpoints,
  usesLocalEndpoints,
} from './topology.ts';
import type { Endpoint, ServicePort } from './types.ts';
import { servicePortNameString } from './types.ts';

export interface ServiceRenderContext {
  readonly nodeName: string;
  readonly nodeLabels: Readonly<Record<string, string>>;
  /** Upstream's proxier.nodeIP: decides the extra "LB IP as source" allow rules. */
  readonly nodeIP: ParsedIP | undefined;
  readonly masqueradeAll: boolean;
  readonly localDetector: LocalTrafficDetector;
  /** IPv4, localhost NodePorts in effect, and the nfacct counter exists. */
  readonly localhostNodePortCounter: boolean;
  /** More than 1000 endpoints: drop per-endpoint comments. */
  readonly largeClusterMode: boolean;
}

export interface ServiceRenderOutcome {
  /** Every nat chain this port should have, whether its text was written or skipped. */
  readonly activeChains: readonly string[];
  /** iTP=Local with endpoints elsewhere but none here (cluster IP traffic dropped). */
  readonly noLocalInternal: boolean;
  /** eTP=Local with endpoints elsewhere but none here (external traffic dropped). */
  readonly noLocalExternal: boolean;
}

/**
 * Everything one service port contributes to a payload. Top-level rules are single lines (the
 * incremental renderer edits them one by one); the port's own chains are blocks of lines joined
 * by `\n`, written into the payload as they are.
 */
export interface ServicePortText extends ServiceRenderOutcome {
  /** Its rules in filter KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL. */
  readonly filterRules: readonly string[];
  /** Its rules in nat KUBE-SERVICES and KUBE-NODEPORTS. */
  readonly natTopRules: readonly string[];
  /** Declarations of its own nat chains; empty when not kept. */
  readonly natChains: string;
  readonly natChainCount: number;
  /** Rules of its own nat chains; empty when not kept. */
  readonly natRules: string;
  readonly natRuleCount: number;
}

/** Where the pieces of lines that are only counted go. */
const DISCARDED: string[] = [];

/**
 * Lines of one block, kept as the pieces of its text and joined once: per endpoint lines are
 * pushed piece by piece, because a template string of ten parts is ten intermediate strings,
 * garbage that at 100k endpoints costs more than the join. When not kept (a partial sync's
 * unchanged services) lines are only counted.
 */
class Block {
  readonly #pieces: string[] = [];
  readonly #keep: boolean;
  count = 0;

  constructor(keep: boolean) {
    this.#keep = keep;
  }

  /** Starts a line; push its pieces onto the array returned. */
  line(): string[] {
    if (!this.#keep) {
      this.count++;
      DISCARDED.length = 0;
      return DISCARDED;
    }
    if (this.count++ > 0) this.#pieces.push('\n');
    return this.#pieces;
  }

  add(line: string): void {
    this.line().push(line);
  }

  text(): string {
    return this.#pieces.join('');
  }
}

/** Match words appended to a rule: a space before each, nothing when there are none. */
function words(ws: readonly string[]): string {
  return ws.length === 0 ? '' : ` ${ws.join(' ')}`;
}

/**
 * Renders every rule of one service port. With `keepChains` false the port's own chains are only
 * counted, as upstream does for the services a partial sync leaves alone.
 */
export function renderServicePort(
  svc: ServicePort,
  allEndpoints: readonly Endpoint[],
  ctx: ServiceRenderContext,
  keepChains = true,
): ServicePortText {
  const protocol = svc.protocol.toLowerCase();
  const proto = `-m ${protocol} -p ${protocol}`;
  const name = servicePortNameString(svc.name);
  const chains = servicePortChainNames(svc.name);
  const port = String(svc.port);
  const { clusterEndpoints, localEndpoints, allReachableEndpoints, hasAnyEndpoints } = categorizeEndpoints(
    allEndpoints,
    svc,
    ctx.nodeName,
    ctx.nodeLabels,
  );
  const hasEndpoints = hasAnyEndpoints;
  // One KUBE-SEP name per reachable endpoint, shared by the SVC/SVL rules and the SEP chain.
  const hashInput = name + protocol;
  const sepNames = allReachableEndpoints.map((ep) => endpointChainNameOf(hashInput, ep.endpoint));
  /** The SEP names of `list`, a subset of the reachable endpoints, usually in their order. */
  const sepNamesOf = (list: readonly Endpoint[]): readonly string[] => {
    if (list === allReachableEndpoints) return sepNames;
    const out: string[] = [];
    let from = 0;
    for (const ep of list) {
      const at = allReachableEndpoints.indexOf(ep, from);
      // Not found after the last match: out of order; the name only depends on the address.
      if (at < 0) {
        out.push(endpointChainNameOf(hashInput, ep.endpoint));
      } else {
        out.push(sepNames[at]!);
        from = at + 1;
      }
    }
    return out;
  };
  const extLocal = externalPolicyLocal(svc);

  const usesClusterPolicyChain = clusterEndpoints.length > 0 && usesClusterEndpoints(svc);
  const usesLocalPolicyChain = localEndpoints.length > 0 && usesLocalEndpoints(svc);

  let internalChain = chains.svc;
  let hasInternalEndpoints = hasEndpoints;
  if (svc.internalPolicyLocal) {
    internalChain = chains.svl;
    if (localEndpoints.length === 0) hasInternalEndpoints = false;
  }
  let externalPolicyChain = chains.svc;
  let hasExternalEndpoints = hasEndpoints;
  if (extLocal) {
    externalPolicyChain = chains.svl;
    if (localEndpoints.length === 0) hasExternalEndpoints = false;
  }
  // Based on hasEndpoints, not hasExternalEndpoints: the short-circuit rules for pod and host
  // traffic are needed even when no endpoint takes external traffic.
  const usesExternalChain = hasEndpoints && externallyAccessible(svc);
  const usesFWChain =
    hasEndpoints && svc.loadBalancerVIPs.length > 0 && svc.loadBalancerSourceRanges.length > 0;
  const loadBalancerChain = usesFWChain ? chains.fw : chains.ext;

  let internalFilterTarget = '';
  let internalFilterComment = '';
  let externalFilterTarget = '';
  let externalFilterComment = '';
  let noLocalInternal = false;
  let noLocalExternal = false;
  if (!hasEndpoints) {
    // No nat chains at all; the filter table rejects traffic to every IP of the service.
    internalFilterTarget = 'REJECT';
    internalFilterComment = `${name} has no endpoints`;
    externalFilterTarget = 'REJECT';
    externalFilterComment = internalFilterComment;
  } else {
    if (!hasInternalEndpoints) {
      internalFilterTarget = 'DROP';
      internalFilterComment = `${name} has no local endpoints`;
      noLocalInternal = true;
    }
    if (!hasExternalEndpoints) {
      externalFilterTarget = 'DROP';
      externalFilterComment = `${name} has no local endpoints`;
      noLocalExternal = true;
    }
  }

  const filterRules: string[] = [];
  const natTopRules: string[] = [];
  // The shape of every top-level rule that matches one of the service's addresses and its port.
  const destRule = (chain: string, text: string, ip: string, target: string): string =>
    `-A ${chain} ${commentMatch(text)} ${proto} -d ${ip} --dport ${port} -j ${target}`;

  // Cluster IP.
  if (hasInternalEndpoints) {
    natTopRules.push(destRule(KUBE_SERVICES, `${name} cluster IP`, svc.clusterIP, internalChain));
  } else {
    filterRules.push(destRule(KUBE_SERVICES, internalFilterComment, svc.clusterIP, internalFilterTarget));
  }

  // External IPs.
  for (const ip of svc.externalIPs) {
    if (hasEndpoints) {
      natTopRules.push(destRule(KUBE_SERVICES, `${name} external IP`, ip, chains.ext));
    }
    if (!hasExternalEndpoints) {
      filterRules.push(destRule(KUBE_EXTERNAL_SERVICES, externalFilterComment, ip, externalFilterTarget));
    }
  }

  // Load-balancer VIPs.
  for (const ip of svc.loadBalancerVIPs) {
    if (hasEndpoints) {
      natTopRules.push(destRule(KUBE_SERVICES, `${name} loadbalancer IP`, ip, loadBalancerChain));
    }
    if (usesFWChain) {
      // A packet still addressed to the VIP in filter was not DNATed by KUBE-FW: drop it.
      filterRules.push(
        destRule(KUBE_PROXY_FIREWALL, `${name} traffic not accepted by ${chains.fw}`, ip, 'DROP'),
      );
    }
  }
  if (!hasExternalEndpoints) {
    for (const ip of svc.loadBalancerVIPs) {
      filterRules.push(destRule(KUBE_EXTERNAL_SERVICES, externalFilterComment, ip, externalFilterTarget));
    }
  }

  // NodePort. loadBalancerSourceRanges do not apply to it, as upstream.
  if (svc.nodePort !== 0) {
    const nodePort = String(svc.nodePort);
    if (hasEndpoints) {
      const nameComment = commentMatch(name);
      if (ctx.localhostNodePortCounter) {
        // Only counts localhost NodePort traffic; the next rule takes the same jump.
        natTopRules.push(
          `-A ${KUBE_NODEPORTS} ${nameComment} ${proto} -d 127.0.0.0/8 --dport ${nodePort} -m nfacct --nfacct-name ${NFACCT_LOCALHOST_NODEPORTS_ACCEPTED} -j ${chains.ext}`,
        );
      }
      natTopRules.push(`-A ${KUBE_NODEPORTS} ${nameComment} ${proto} --dport ${nodePort} -j ${chains.ext}`);
    }
    if (!hasExternalEndpoints) {
      filterRules.push(
        `-A ${KUBE_EXTERNAL_SERVICES} ${commentMatch(externalFilterComment)} -m addrtype --dst-type LOCAL ${proto} --dport ${nodePort} -j ${externalFilterTarget}`,
      );
    }
  }

  // Health-check node port: accepted whether or not this node has local endpoints.
  if (svc.healthCheckNodePort !== 0) {
    filterRules.push(
      `-A ${KUBE_NODEPORTS} ${commentMatch(`${name} health check node port`)} -m tcp -p tcp --dport ${svc.healthCheckNodePort} -j ACCEPT`,
    );
  }

  // From here on, per-service chains (only counted on partial syncs for unchanged services).
  const natChains = new Block(keepChains);
  const natRules = new Block(keepChains);
  const activeChains: string[] = [];
  const declare = (chain: string): void => {
    natChains.line().push(':', chain, ' - [0:0]');
    activeChains.push(chain);
  };

  if (hasInternalEndpoints) {
    const clusterIPMatch = `${commentMatch(`${name} cluster IP`)} ${proto} -d ${svc.clusterIP} --dport ${port}`;
    if (ctx.masqueradeAll) {
      natRules.add(`-A ${internalChain} ${clusterIPMatch} -j ${KUBE_MARK_MASQ}`);
    } else if (ctx.localDetector.implemented) {
      // Off-cluster traffic to a cluster IP (e.g. a static route to any node) may bounce to
      // another node, so it is masqueraded.
      natRules.add(
        `-A ${internalChain} ${clusterIPMatch}${words(ctx.localDetector.ifNotLocal)} -j ${KUBE_MARK_MASQ}`,
      );
    }
  }

  if (usesExternalChain) {
    declare(chains.ext);
    if (!extLocal) {
      // Endpoints may be on other nodes: masquerade so replies come back through this node.
      natRules.add(
        `-A ${chains.ext} ${commentMatch(`masquerade traffic for ${name} external destinations`)} -j ${KUBE_MARK_MASQ}`,
      );
    } else {
      if (ctx.localDetector.implemented) {
        // Pod traffic to an external destination behaves as if it went out to the load
        // balancer and came back: no traffic policy applies.
        natRules.add(
          `-A ${chains.ext} ${commentMatch(`pod traffic for ${name} external destinations`)}${words(ctx.localDetector.ifLocal)} -j ${chains.svc}`,
        );
      }
      // Host-network traffic would keep the VIP (a local address) as source: masquerade it and
      // send it to the cluster-wide chain.
      natRules.add(
        `-A ${chains.ext} ${commentMatch(`masquerade LOCAL traffic for ${name} external destinations`)} -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}`,
      );
      natRules.add(
        `-A ${chains.ext} ${commentMatch(`route LOCAL traffic for ${name} external destinations`)} -m addrtype --src-type LOCAL -j ${chains.svc}`,
      );
    }
    if (hasExternalEndpoints) natRules.add(`-A ${chains.ext} -j ${externalPolicyChain}`);
  }

  if (usesFWChain) {
    declare(chains.fw);
    const allow = commentMatch(`${name} loadbalancer IP`);
    let allowFromNode = false;
    for (const cidr of svc.loadBalancerSourceRanges) {
      natRules.add(`-A ${chains.fw} ${allow} -s ${cidr} -j ${chains.ext}`);
      const parsed = parseCIDR(cidr);
      if (parsed && ctx.nodeIP && cidrContains(parsed, ctx.nodeIP)) allowFromNode = true;
    }
    // With VIP-style load balancers a node reaching its own VIP loops back with the VIP as
    // source; allow that when the ranges allow the node itself.
    if (allowFromNode) {
      for (const ip of svc.loadBalancerVIPs)
        natRules.add(`-A ${chains.fw} ${allow} -s ${ip} -j ${chains.ext}`);
    }
    // No target: whatever falls off the chain is dropped by filter KUBE-PROXY-FIREWALL.
    natRules.add(
      `-A ${chains.fw} ${commentMatch(`other traffic to ${name} will be dropped by KUBE-PROXY-FIREWALL`)}`,
    );
  }

  const affinity = svc.sessionAffinity.type === 'ClientIP' ? svc.sessionAffinity : undefined;
  const balance = (chain: string, endpoints: readonly Endpoint[]): void => {
    declare(chain);
    const names = sepNamesOf(endpoints);
    writeServiceToEndpointRules(natRules, name, affinity, chain, endpoints, names, ctx.largeClusterMode);
  };
  if (usesClusterPolicyChain) balance(chains.svc, clusterEndpoints);
  if (usesLocalPolicyChain) balance(chains.svl, localEndpoints);

  const sepComment = ctx.largeClusterMode ? '' : ` ${commentMatch(name)}`;
  for (let i = 0; i < allReachableEndpoints.length; i++) {
    const ep = allReachableEndpoints[i]!;
    const sep = sepNames[i]!;
    declare(sep);
    // Hairpin: a pod reaching itself through the service must be masqueraded.
    natRules.line().push('-A ', sep, sepComment, ' -s ', ep.ip, ' -j ', KUBE_MARK_MASQ);
    const dnat = natRules.line();
    dnat.push('-A ', sep, sepComment);
    if (affinity) dnat.push(' -m recent --name ', sep, ' --set');
    dnat.push(' ', proto, ' -j DNAT --to-destination ', ep.endpoint);
  }

  return {
    filterRules,
    natTopRules,
    natChains: natChains.text(),
    natChainCount: natChains.count,
    natRules: natRules.text(),
    natRuleCount: natRules.count,
    activeChains,
    noLocalInternal,
    noLocalExternal,
  };
}

/**
 * Affinity checks for every endpoint first, then the probabilistic balancing rules. `sepNames`
 * are the endpoints' KUBE-SEP chains, in the same order.
 */
function writeServiceToEndpointRules(
  natRules: Block,
  name: string,
  affinity: { readonly timeoutSeconds: number } | undefined,
  chain: string,
  endpoints: readonly Endpoint[],
  sepNames: readonly string[],
  largeClusterMode: boolean,
): void {
  const epComment = (ep: Endpoint): string =>
    largeClusterMode ? '' : ` ${commentMatch(`${name} -> ${ep.endpoint}`)}`;
  const prefix = `-A ${chain}`;
  if (affinity) {
    const seconds = String(affinity.timeoutSeconds);
    for (let i = 0; i < endpoints.length; i++) {
      const ep = endpoints[i]!;
      const sep = sepNames[i]!;
      natRules
        .line()
        .push(
          prefix,
          epComment(ep),
          ' -m recent --name ',
          sep,
          ' --rcheck --seconds ',
          seconds,
          ' --reap -j ',
          sep,
        );
    }
  }
  const n = endpoints.length;
  for (let i = 0; i < n; i++) {
    const ep = endpoints[i]!;
    const rule = natRules.line();
    rule.push(prefix, epComment(ep));
    if (i < n - 1) rule.push(' -m statistic --mode random --probability ', probability(n - i));
    rule.push(' -j ', sepNames[i]!);
  }
}

/**
 * Rendered service ports kept between renders. ServicePort and endpoint lists are immutable
 * values that the maps replace on every change, so while a port and its endpoint list are the
 * same objects, and the context is the same, its text is too: a full resync of an unchanged
 * cluster then costs one join. Entries die with their ServicePort (weak keys).
 */
export interface ServicePortMemo {
  /** Forgets every entry unless `key` (the render context's identity) is the one they used. */
  useContext(key: string): void;
  get(svc: ServicePort, endpoints: readonly Endpoint[]): ServicePortText | undefined;
  set(svc: ServicePort, endpoints: readonly Endpoint[], text: ServicePortText): void;
}

export function createServicePortMemo(): ServicePortMemo {
  let context = '';
  let entries = new WeakMap<ServicePort, { endpoints: readonly Endpoint[]; text: ServicePortText }>();
  return {
    useContext(key) {
      if (key === context) return;
      context = key;
      entries = new WeakMap();
    },
    get(svc, endpoints) {
      const e = entries.get(svc);
      return e !== undefined && e.endpoints === endpoints ? e.text : undefined;
    },
    set(svc, endpoints, text) {
      entries.set(svc, { endpoints, text });
    },
  };
}
