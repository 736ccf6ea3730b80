/**
 * What the proxy learns about its node at start: its addresses (for NodePorts, LB source ranges
 * and dual-stack detection) and the IP families it serves.
 */
import { networkInterfaces } from 'node:os';
import type { Node } from '../../pkg/k8s/schemas.ts';
import { type IPFamily, parseIP } from '../../pkg/net/ip.ts';

/**
 * The node's primary IPs, as upstream's detectNodeIPs: the Node object's InternalIP addresses,
 * then ExternalIP, at most one per family; `--bind-address` when it is a specific address wins
 * for its family.
 */
export function nodeIPsOf(node: Node | undefined, bindAddress: string): string[] {
  const byFamily = new Map<IPFamily, string>();
  const bind = parseIP(bindAddress);
  if (bind && !isUnspecified(bind.text)) byFamily.set(bind.family, bind.text);
  for (const type of ['InternalIP', 'ExternalIP']) {
    for (const a of node?.status.addresses ?? []) {
      if (a.type !== type) continue;
      const ip = parseIP(a.address);
      if (ip && !byFamily.has(ip.family)) byFamily.set(ip.family, ip.text);
    }
  }
  return [...byFamily.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, ip]) => ip);
}

function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

/** Addresses on this host's interfaces (in the proxy's network namespace), canonical. */
export function localInterfaceAddresses(): string[] {
  const out: string[] = [];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      const ip = parseIP(a.address.split('%')[0]!);
      if (ip) out.push(ip.text);
    }
  }
  return out;
}

/**
 * The families to proxy: the primary family always (IPv4 unless the node is IPv6-only), and the
 * other one when the cluster is configured or addressed for it (dual stack).
 */
export function proxiedFamilies(nodeIPs: readonly string[], clusterCIDRs: readonly string[]): IPFamily[] {
  const seen = new Set<IPFamily>();
  for (const s of [...nodeIPs, ...clusterCIDRs]) {
    const ip = parseIP(s.split('/')[0]!);
    if (ip) seen.add(ip.family);
  }
  if (seen.size === 0) seen.add('IPv4');
  return (['IPv4', 'IPv6'] as const).filter((f) => seen.has(f));
}
