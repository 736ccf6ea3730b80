/**
 * The rules of one service port, in upstream's order (writeServiceToEndpointRules and the body of
 * syncProxyRules' service loop): first the top-level rules (nat KUBE-SERVICES / KUBE-NODEPORTS
 * jumps, filter REJECT/DROP/ACCEPT), which full and upstream-style partial syncs rewrite whole and
 * incremental syncs edit rule by rule (incremental.ts), then the per-service chains (EXT, FW, SVC,
 * SVL, SEP), which a partial sync writes only for changed services.
 */
import { chainLine, comment } from '../pkg/iptables/payload.ts';
import type { ParsedIP } from '../pkg/net/ip.ts';
import { cidrContains, parseCIDR } from '../pkg/net/ip.ts';
import {
  endpointChainName,
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

/** Where rule lines go: a LineBuffer, or a sink that only counts (skipped services). */
export interface RuleSink {
  write(...words: readonly (string | readonly string[])[]): void;
  readonly length: number;
}

/** A sink that keeps nothing but the number of lines, as upstream's discard LineBuffer. */
export function discardSink(): RuleSink {
  let n = 0;
  return {
    write() {
      n++;
    },
    get length() {
      return n;
    },
  };
}

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

export interface ServiceSinks {
  readonly filterRules: RuleSink;
  /** nat rules of top-level chains (KUBE-SERVICES, KUBE-NODEPORTS): rendered for every sync. */
  readonly topNatRules: RuleSink;
  /** Per-service chain lines and rules: real buffers, or discard sinks when skipped. */
  readonly natChains: RuleSink;
  readonly natRules: RuleSink;
}

export interface ServiceRenderOutcome {
  /** Every nat chain this port should have, whether its text was written or skipped. */
  readonly activeChains: readonly string[];
  /** iTP=Local with endpoints elsewhere but none here (cluster IP traffic dropped). */
  readonly noLocalInternal: boolean;
  /** eTP=Local with endpoints elsewhere but none here (external traffic dropped). */
  readonly noLocalExternal: boolean;
}

function protoMatch(protocol: string): string[] {
  return ['-m', protocol, '-p', protocol];
}

/** Writes every rule of one service port; returns the chains it uses. */
export function renderServicePort(
  svc: ServicePort,
  allEndpoints: readonly Endpoint[],
  ctx: ServiceRenderContext,
  sinks: ServiceSinks,
): ServiceRenderOutcome {
  const protocol = svc.protocol.toLowerCase();
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
  // One KUBE-SEP name per endpoint, shared by the SVC/SVL rules and the SEP chain itself.
  const sepNames = new Map<Endpoint, string>();
  const sepName = (ep: Endpoint): string => {
    let n = sepNames.get(ep);
    if (n === undefined) {
      n = endpointChainName(svc.name, svc.protocol, ep);
      sepNames.set(ep, n);
    }
    return n;
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

  const { filterRules, topNatRules } = sinks;
  // The shape of every top-level rule that matches one of the service's addresses and its port.
  const destRule = (sink: RuleSink, chain: string, text: string, ip: string, target: string): void =>
    sink.write('-A', chain, comment(text), protoMatch(protocol), '-d', ip, '--dport', port, '-j', target);

  // Cluster IP.
  if (hasInternalEndpoints) {
    destRule(topNatRules, KUBE_SERVICES, `${name} cluster IP`, svc.clusterIP, internalChain);
  } else {
    destRule(filterRules, KUBE_SERVICES, internalFilterComment, svc.clusterIP, internalFilterTarget);
  }

  // External IPs.
  for (const ip of svc.externalIPs) {
    if (hasEndpoints) {
      destRule(topNatRules, KUBE_SERVICES, `${name} external IP`, ip, chains.ext);
    }
    if (!hasExternalEndpoints) {
      destRule(filterRules, KUBE_EXTERNAL_SERVICES, externalFilterComment, ip, externalFilterTarget);
    }
  }

  // Load-balancer VIPs.
  for (const ip of svc.loadBalancerVIPs) {
    if (hasEndpoints) {
      destRule(topNatRules, KUBE_SERVICES, `${name} loadbalancer IP`, ip, loadBalancerChain);
    }
    if (usesFWChain) {
      // A packet still addressed to the VIP in filter was not DNATed by KUBE-FW: drop it.
      destRule(filterRules, KUBE_PROXY_FIREWALL, `${name} traffic not accepted by ${chains.fw}`, ip, 'DROP');
    }
  }
  if (!hasExternalEndpoints) {
    for (const ip of svc.loadBalancerVIPs) {
      destRule(filterRules, KUBE_EXTERNAL_SERVICES, externalFilterComment, ip, externalFilterTarget);
    }
  }

  // NodePort. loadBalancerSourceRanges do not apply to it, as upstream.
  if (svc.nodePort !== 0) {
    const nodePort = String(svc.nodePort);
    if (hasEndpoints) {
      if (ctx.localhostNodePortCounter) {
        // Only counts localhost NodePort traffic; the next rule takes the same jump.
        topNatRules.write(
          '-A',
          KUBE_NODEPORTS,
          comment(name),
          protoMatch(protocol),
          '-d',
          '127.0.0.0/8',
          '--dport',
          nodePort,
          '-m',
          'nfacct',
          '--nfacct-name',
          NFACCT_LOCALHOST_NODEPORTS_ACCEPTED,
          '-j',
          chains.ext,
        );
      }
      topNatRules.write(
        '-A',
        KUBE_NODEPORTS,
        comment(name),
        protoMatch(protocol),
        '--dport',
        nodePort,
        '-j',
        chains.ext,
      );
    }
    if (!hasExternalEndpoints) {
      filterRules.write(
        '-A',
        KUBE_EXTERNAL_SERVICES,
        comment(externalFilterComment),
        '-m',
        'addrtype',
        '--dst-type',
        'LOCAL',
        protoMatch(protocol),
        '--dport',
        nodePort,
        '-j',
        externalFilterTarget,
      );
    }
  }

  // Health-check node port: accepted whether or not this node has local endpoints.
  if (svc.healthCheckNodePort !== 0) {
    filterRules.write(
      '-A',
      KUBE_NODEPORTS,
      comment(`${name} health check node port`),
      protoMatch('tcp'),
      '--dport',
      String(svc.healthCheckNodePort),
      '-j',
      'ACCEPT',
    );
  }

  // From here on, per-service chains (discarded on partial syncs for unchanged services).
  const { natChains, natRules } = sinks;
  const activeChains: string[] = [];

  if (hasInternalEndpoints) {
    const clusterIPMatch = [
      ...comment(`${name} cluster IP`),
      ...protoMatch(protocol),
      '-d',
      svc.clusterIP,
      '--dport',
      port,
    ];
    if (ctx.masqueradeAll) {
      natRules.write('-A', internalChain, clusterIPMatch, '-j', KUBE_MARK_MASQ);
    } else if (ctx.localDetector.implemented) {
      // Off-cluster traffic to a cluster IP (e.g. a static route to any node) may bounce to
      // another node, so it is masqueraded.
      natRules.write('-A', internalChain, clusterIPMatch, ctx.localDetector.ifNotLocal, '-j', KUBE_MARK_MASQ);
    }
  }

  if (usesExternalChain) {
    natChains.write(chainLine(chains.ext));
    activeChains.push(chains.ext);
    if (!extLocal) {
      // Endpoints may be on other nodes: masquerade so replies come back through this node.
      natRules.write(
        '-A',
        chains.ext,
        comment(`masquerade traffic for ${name} external destinations`),
        '-j',
        KUBE_MARK_MASQ,
      );
    } else {
      if (ctx.localDetector.implemented) {
        // Pod traffic to an external destination behaves as if it went out to the load
        // balancer and came back: no traffic policy applies.
        natRules.write(
          '-A',
          chains.ext,
          comment(`pod traffic for ${name} external destinations`),
          ctx.localDetector.ifLocal,
          '-j',
          chains.svc,
        );
      }
      // Host-network traffic would keep the VIP (a local address) as source: masquerade it and
      // send it to the cluster-wide chain.
      natRules.write(
        '-A',
        chains.ext,
        comment(`masquerade LOCAL traffic for ${name} external destinations`),
        '-m',
        'addrtype',
        '--src-type',
        'LOCAL',
        '-j',
        KUBE_MARK_MASQ,
      );
      natRules.write(
        '-A',
        chains.ext,
        comment(`route LOCAL traffic for ${name} external destinations`),
        '-m',
        'addrtype',
        '--src-type',
        'LOCAL',
        '-j',
        chains.svc,
      );
    }
    if (hasExternalEndpoints) natRules.write('-A', chains.ext, '-j', externalPolicyChain);
  }

  if (usesFWChain) {
    natChains.write(chainLine(chains.fw));
    activeChains.push(chains.fw);
    const allow = comment(`${name} loadbalancer IP`);
    let allowFromNode = false;
    for (const cidr of svc.loadBalancerSourceRanges) {
      natRules.write('-A', chains.fw, allow, '-s', cidr, '-j', chains.ext);
      const parsed = parseCIDR(cidr);
      if (parsed && ctx.nodeIP && cidrContains(parsed, ctx.nodeIP)) allowFromNode = true;
    }
    // With VIP-style load balancers a node reaching its own VIP loops back with the VIP as
    // source; allow that when the ranges allow the node itself.
    if (allowFromNode) {
      for (const ip of svc.loadBalancerVIPs)
        natRules.write('-A', chains.fw, allow, '-s', ip, '-j', chains.ext);
    }
    // No target: whatever falls off the chain is dropped by filter KUBE-PROXY-FIREWALL.
    natRules.write(
      '-A',
      chains.fw,
      comment(`other traffic to ${name} will be dropped by KUBE-PROXY-FIREWALL`),
    );
  }

  if (usesClusterPolicyChain) {
    natChains.write(chainLine(chains.svc));
    activeChains.push(chains.svc);
    writeServiceToEndpointRules(
      natRules,
      name,
      svc,
      chains.svc,
      clusterEndpoints,
      sepName,
      ctx.largeClusterMode,
    );
  }
  if (usesLocalPolicyChain) {
    natChains.write(chainLine(chains.svl));
    activeChains.push(chains.svl);
    writeServiceToEndpointRules(
      natRules,
      name,
      svc,
      chains.svl,
      localEndpoints,
      sepName,
      ctx.largeClusterMode,
    );
  }

  for (const ep of allReachableEndpoints) {
    const sep = sepName(ep);
    natChains.write(chainLine(sep));
    activeChains.push(sep);
    const head = ctx.largeClusterMode ? ['-A', sep] : ['-A', sep, ...comment(name)];
    // Hairpin: a pod reaching itself through the service must be masqueraded.
    natRules.write(head, '-s', ep.ip, '-j', KUBE_MARK_MASQ);
    natRules.write(
      head,
      svc.sessionAffinity.type === 'ClientIP' ? ['-m', 'recent', '--name', sep, '--set'] : [],
      protoMatch(protocol),
      '-j',
      'DNAT',
      '--to-destination',
      ep.endpoint,
    );
  }

  return { activeChains, noLocalInternal, noLocalExternal };
}

/** Affinity checks for every endpoint first, then the probabilistic balancing rules. */
function writeServiceToEndpointRules(
  natRules: RuleSink,
  name: string,
  svc: ServicePort,
  chain: string,
  endpoints: readonly Endpoint[],
  sepName: (ep: Endpoint) => string,
  largeClusterMode: boolean,
): void {
  const epComment = (ep: Endpoint): string[] =>
    largeClusterMode ? [] : comment(`${name} -> ${ep.endpoint}`);
  if (svc.sessionAffinity.type === 'ClientIP') {
    const seconds = String(svc.sessionAffinity.timeoutSeconds);
    for (const ep of endpoints) {
      const sep = sepName(ep);
      natRules.write(
        '-A',
        chain,
        epComment(ep),
        '-m',
        'recent',
        '--name',
        sep,
        '--rcheck',
        '--seconds',
        seconds,
        '--reap',
        '-j',
        sep,
      );
    }
  }
  const n = endpoints.length;
  endpoints.forEach((ep, i) => {
    const sep = sepName(ep);
    const statistic =
      i < n - 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', probability(n - i)] : [];
    natRules.write('-A', chain, epComment(ep), statistic, '-j', sep);
  });
}
