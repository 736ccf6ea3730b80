/**
 * A node's iptables as kube-proxy and its neighbours leave them, for cleanup tests (fake and
 * kernel): kube-proxy's rendered rules, its built-in jumps and canaries, and the rules of other
 * programs that cleanup must leave byte for byte as they were.
 */

import { isBuiltinChain, parseDump, ruleTarget } from '../../../../pkg/iptables/parse.ts';
import type { Table } from '../../../../pkg/iptables/payload.ts';
import type { Iptables } from '../../../../pkg/iptables/types.ts';
import type { IPFamily } from '../../../../pkg/net/ip.ts';
import { KUBE_PROXY_CANARY } from '../../../../proxier/chains.ts';
import { isKubeProxyChain } from '../../../../proxier/cleanup.ts';
import { renderBuiltinJumps, renderRules } from '../../../../proxier/render.ts';
import {
  fakeProxierConfig,
  makeEndpoint,
  makeServicePort,
  makeState,
} from '../../../golden/support/builders.ts';

/**
 * Kubelet, a CNI plugin, Docker and an admin's firewall rule, installed before kube-proxy as on a
 * real node. KUBE-FIREWALL is kubelet's (kube-proxy only duplicates it).
 */
export const FOREIGN_RULES_IPV4 = `*filter
:KUBE-FIREWALL - [0:0]
:CNI-FORWARD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A OUTPUT -j KUBE-FIREWALL
-A CNI-FORWARD -d 10.244.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.244.0.0/16 -j ACCEPT
-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
`;

/** The IPv6 counterpart of FOREIGN_RULES_IPV4 (kubelet's KUBE-FIREWALL has no rule there). */
export const FOREIGN_RULES_IPV6 = `*filter
:KUBE-FIREWALL - [0:0]
:CNI-FORWARD - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A OUTPUT -j KUBE-FIREWALL
-A CNI-FORWARD -d fd00:10::/64 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s fd00:10::/64 -j ACCEPT
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s fd00:17::/64 ! -o docker0 -j MASQUERADE
-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:17::2]:80
COMMIT
`;

export function foreignRules(family: IPFamily): string {
  return family === 'IPv4' ? FOREIGN_RULES_IPV4 : FOREIGN_RULES_IPV6;
}

/** A small cluster: ClusterIP, NodePort, LoadBalancer with source ranges, eTP=Local, no endpoints. */
export function kubeProxyPayload(family: IPFamily = 'IPv4'): string {
  const v4 = family === 'IPv4';
  const ip = (a: string, b: string) => (v4 ? a : b);
  const web = makeServicePort({
    ns: 'ns1',
    name: 'web',
    clusterIP: ip('172.30.0.10', 'fd00:30::10'),
    port: 80,
    nodePort: 30080,
  });
  const lb = makeServicePort({
    ns: 'ns2',
    name: 'lb',
    clusterIP: ip('172.30.0.20', 'fd00:30::20'),
    port: 443,
    nodePort: 30443,
    loadBalancerVIPs: [ip('203.0.113.7', '2001:db8:7::7')],
    loadBalancerSourceRanges: [ip('198.51.100.0/24', '2001:db8:51::/64')],
    externalPolicyLocal: true,
    healthCheckNodePort: 30999,
  });
  const empty = makeServicePort({
    ns: 'ns3',
    name: 'empty',
    clusterIP: ip('172.30.0.30', 'fd00:30::30'),
    port: 53,
    protocol: 'UDP',
  });
  const state = makeState(
    [web, lb, empty],
    [
      [
        web,
        [
          makeEndpoint(ip('10.244.1.2', 'fd00:10::1:2'), 8080),
          makeEndpoint(ip('10.244.2.3', 'fd00:10::2:3'), 8080),
        ],
      ],
      [
        lb,
        [
          makeEndpoint(ip('10.244.1.5', 'fd00:10::1:5'), 8443, { local: true }),
          makeEndpoint(ip('10.244.2.6', 'fd00:10::2:6'), 8443),
        ],
      ],
    ],
  );
  // No nfacct objects exist in a test namespace.
  return renderRules(state, fakeProxierConfig(family, { nfacctCounters: new Set() }), { full: true }).payload;
}

/** What a full sync and the canary monitor leave behind: rules, built-in jumps, canaries. */
export async function installKubeProxy(ipt: Iptables): Promise<void> {
  await ipt.restoreAll(kubeProxyPayload(ipt.family), { flush: false, counters: true });
  for (const j of renderBuiltinJumps()) {
    await ipt.ensureChain(j.table, j.target);
    await ipt.ensureRule('prepend', j.table, j.chain, j.args);
  }
  for (const t of ['mangle', 'nat', 'filter'] as const) await ipt.ensureChain(t, KUBE_PROXY_CANARY);
}

/**
 * The lines of an iptables-save text that are not kube-proxy's: what must survive cleanup. Drops
 * `#` comments (timestamps), our chains' declarations and rules, and built-in rules jumping to our
 * chains. `keep` names chains of ours that cleanup is expected to keep (declaration only when
 * `flushed`, else with their rules).
 */
export function foreignLines(
  saveText: string,
  keep: ReadonlyMap<string, 'flushed' | 'untouched'> = new Map(),
): string[] {
  const dump = parseDump(saveText);
  const lines = saveText.split('\n');
  const out: string[] = [];
  for (const t of dump.tables) {
    const table = t.name as Table;
    const kept = (chain: string) => keep.get(`${table}/${chain}`);
    const removed = (chain: string) => isKubeProxyChain(table, chain) && kept(chain) === undefined;
    const emptied = (chain: string) => isKubeProxyChain(table, chain) && kept(chain) !== 'untouched';
    out.push(`*${table}`);
    for (const c of t.chains) if (!removed(c.name)) out.push(lines[c.line - 1]!);
    for (const r of t.rules) {
      if (emptied(r.chain)) continue;
      const target = ruleTarget(r.args)?.target;
      if (isBuiltinChain(table, r.chain) && target !== undefined && emptied(target)) continue;
      out.push(lines[r.line - 1]!);
    }
    out.push('COMMIT');
  }
  return out;
}

/** Every line of a save text except `#` comments (which carry timestamps). */
export function saveLines(saveText: string): string[] {
  return saveText.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}
