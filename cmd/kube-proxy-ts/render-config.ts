/**
 * From the resolved configuration to the renderer's settings: one mapping, shared by the daemon
 * and `render`/`trace`, so the dry run shows exactly what the daemon would write.
 */
import type { ProxyConfig } from '../../pkg/config/config.ts';
import type { Node } from '../../pkg/k8s/schemas.ts';
import { cidrContains, type IPFamily, parseCIDR, parseIP } from '../../pkg/net/ip.ts';
import type { LocalDetectorConfig } from '../../proxier/localdetect.ts';
import type { StaticRenderConfig } from '../../proxier/proxier.ts';

/** The local-traffic detector for `family` (upstream's --detect-local-mode and companions). */
export function localDetectorFor(
  config: ProxyConfig,
  family: IPFamily,
  node: Node | undefined,
): LocalDetectorConfig {
  const ofFamily = (cidrs: readonly string[]) => cidrs.filter((c) => parseCIDR(c)?.family === family);
  switch (config.detectLocalMode) {
    case 'ClusterCIDR': {
      const cidrs = ofFamily(config.clusterCIDRs);
      return cidrs.length > 0 ? { mode: 'ClusterCIDR', cidrs } : { mode: 'none' };
    }
    case 'NodeCIDR': {
      const podCIDRs = ofFamily(node?.spec.podCIDRs ?? (node?.spec.podCIDR ? [node.spec.podCIDR] : []));
      return podCIDRs.length > 0 ? { mode: 'NodeCIDR', podCIDRs } : { mode: 'none' };
    }
    case 'BridgeInterface':
      return { mode: 'BridgeInterface', bridgeInterface: config.bridgeInterface };
    case 'InterfaceNamePrefix':
      return { mode: 'InterfaceNamePrefix', interfaceNamePrefix: config.interfaceNamePrefix };
  }
}

/**
 * Whether NodePorts answer on 127.0.0.1 (IPv4 only), as upstream decides it: the flag is on and
 * --nodeport-addresses, when it names IPv4 CIDRs, includes 127.0.0.1 ('primary' never does).
 * The daemon sets route_localnet only when this holds.
 */
export function localhostNodePortsEnabled(config: ProxyConfig): boolean {
  if (!config.iptables.localhostNodePorts) return false;
  if (config.nodePortAddresses.includes('primary')) return false;
  const loopback = parseIP('127.0.0.1')!;
  const v4 = config.nodePortAddresses.map((c) => parseCIDR(c)).filter((c) => c?.family === 'IPv4');
  return v4.length === 0 || v4.some((c) => c !== undefined && cidrContains(c, loopback));
}

/** The render settings fixed at start for one family; the proxier adds what it learns at run time. */
export function staticRenderConfigFor(
  config: ProxyConfig,
  family: IPFamily,
  node: { readonly name: string; readonly object: Node | undefined; readonly ips: readonly string[] },
  kernel: { readonly tcpBeLiberal: boolean; readonly nfacctCounters: ReadonlySet<string> },
): StaticRenderConfig {
  return {
    nodeName: node.name,
    nodeIPs: node.ips,
    masqueradeBit: config.iptables.masqueradeBit,
    masqueradeAll: config.iptables.masqueradeAll,
    localDetector: localDetectorFor(config, family, node.object),
    nodePortAddresses: config.nodePortAddresses.includes('primary') ? 'primary' : config.nodePortAddresses,
    // Upstream turns localhost NodePorts off for IPv6, where they cannot work.
    localhostNodePorts: family === 'IPv4' && localhostNodePortsEnabled(config),
    nfacctCounters: kernel.nfacctCounters,
    tcpBeLiberal: kernel.tcpBeLiberal,
  };
}
