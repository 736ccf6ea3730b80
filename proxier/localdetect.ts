/**
 * Local-traffic detectors: how a rule tells traffic from this cluster's pods ("local") from
 * anything else, as upstream's pkg/proxy/util/localdetector.go. The renderer uses IfNotLocal to
 * masquerade off-cluster traffic to a cluster IP and IfLocal for the eTP=Local short-circuit of
 * pod traffic. A detector that is not implemented (no mode, or no CIDR for this family) writes
 * neither rule: all cluster-IP traffic is then assumed to come from pods.
 */
import type { IPFamily } from '../pkg/net/ip.ts';
import { parseCIDR } from '../pkg/net/ip.ts';

export type LocalDetectorConfig =
  | { readonly mode: 'ClusterCIDR'; readonly cidrs: readonly string[] }
  | { readonly mode: 'NodeCIDR'; readonly podCIDRs: readonly string[] }
  | { readonly mode: 'BridgeInterface'; readonly bridgeInterface: string }
  | { readonly mode: 'InterfaceNamePrefix'; readonly interfaceNamePrefix: string }
  | { readonly mode: 'none' };

export interface LocalTrafficDetector {
  readonly implemented: boolean;
  /** Match words for traffic from local pods; empty when not implemented. */
  readonly ifLocal: readonly string[];
  /** Match words for traffic not from local pods; empty when not implemented. */
  readonly ifNotLocal: readonly string[];
}

export const noOpDetector: LocalTrafficDetector = { implemented: false, ifLocal: [], ifNotLocal: [] };

export function detectLocalByCIDR(cidr: string): LocalTrafficDetector {
  return { implemented: true, ifLocal: ['-s', cidr], ifNotLocal: ['!', '-s', cidr] };
}

export function detectLocalByBridgeInterface(name: string): LocalTrafficDetector {
  return { implemented: true, ifLocal: ['-i', name], ifNotLocal: ['!', '-i', name] };
}

export function detectLocalByInterfaceNamePrefix(prefix: string): LocalTrafficDetector {
  return { implemented: true, ifLocal: ['-i', `${prefix}+`], ifNotLocal: ['!', '-i', `${prefix}+`] };
}

/** The first CIDR of `family` in `cidrs`, canonical; undefined when there is none. */
function cidrOfFamily(cidrs: readonly string[], family: IPFamily): string | undefined {
  for (const c of cidrs) {
    const parsed = parseCIDR(c);
    if (parsed && parsed.family === family) return parsed.text;
  }
  return undefined;
}

/**
 * The detector for one IP family. ClusterCIDR and NodeCIDR without a CIDR of the family fall
 * back to the no-op detector, as upstream does (it logs and carries on).
 */
export function createLocalDetector(config: LocalDetectorConfig, family: IPFamily): LocalTrafficDetector {
  switch (config.mode) {
    case 'ClusterCIDR': {
      const cidr = cidrOfFamily(config.cidrs, family);
      return cidr === undefined ? noOpDetector : detectLocalByCIDR(cidr);
    }
    case 'NodeCIDR': {
      const cidr = cidrOfFamily(config.podCIDRs, family);
      return cidr === undefined ? noOpDetector : detectLocalByCIDR(cidr);
    }
    case 'BridgeInterface':
      return config.bridgeInterface === ''
        ? noOpDetector
        : detectLocalByBridgeInterface(config.bridgeInterface);
    case 'InterfaceNamePrefix':
      return config.interfaceNamePrefix === ''
        ? noOpDetector
        : detectLocalByInterfaceNamePrefix(config.interfaceNamePrefix);
    case 'none':
      return noOpDetector;
  }
}
