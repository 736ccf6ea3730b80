/**
 * A kube-proxy-shaped `--noflush` restore payload without the proxier: KUBE-SERVICES jumping to
 * one SVC chain per Service, each SVC chain spreading over its SEP chains, SEP chains jumping to
 * KUBE-MARK-MASQ; chain names sort in a different order than they are written (as hashed names
 * do). For tests of payload handling (split.ts) that want many chains and real jump structure.
 */

export interface ClusterPayloadOptions {
  readonly services: number;
  readonly endpointsPerService: number;
  /** Chains of an earlier sync to flush and delete (`:C` plus `-X C`), as a full sync does. */
  readonly staleChains?: readonly string[];
  /** Endpoint numbers start here: a later sync with another base has other SEP chains. */
  readonly endpointBase?: number;
  /** Adds the built-in jump `-I PREROUTING 1 -j KUBE-SERVICES` (a command on an undeclared chain). */
  readonly builtinJump?: boolean;
}

/** A name that sorts unlike its number: a cheap stand-in for upstream's hashed chain names. */
export function scrambledName(prefix: string, n: number): string {
  const x = (Math.imul(n + 1, 2654435761) >>> 0).toString(36).toUpperCase().padStart(7, '0');
  return `${prefix}${x}${n.toString(36).toUpperCase()}`;
}

export const svcChain = (i: number): string => scrambledName('KUBE-SVC-', i);
export const sepChain = (n: number): string => scrambledName('KUBE-SEP-', n);

export function serviceIP(i: number): string {
  return `10.96.${(i >> 8) & 255}.${i & 255}`;
}

export function endpointIP(n: number): string {
  return `10.${128 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
}

export function clusterPayload(o: ClusterPayloadOptions): string {
  const base = o.endpointBase ?? 0;
  const decls = [':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
  const rules = ['-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000'];
  for (let i = 0; i < o.services; i++) {
    const svc = svcChain(i);
    decls.push(`:${svc} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -m comment --comment "ns/svc-${i}:http cluster IP" -m tcp -p tcp -d ${serviceIP(i)} --dport 80 -j ${svc}`,
    );
    const n = o.endpointsPerService;
    for (let j = 0; j < n; j++) {
      const e = base + i * n + j;
      const sep = sepChain(e);
      decls.push(`:${sep} - [0:0]`);
      const probability =
        j < n - 1 ? `-m statistic --mode random --probability ${(1 / (n - j)).toFixed(10)} ` : '';
      rules.push(
        `-A ${svc} -m comment --comment "ns/svc-${i}:http -> ${endpointIP(e)}:8080" ${probability}-j ${sep}`,
      );
      rules.push(`-A ${sep} -s ${endpointIP(e)} -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sep} -m tcp -p tcp -j DNAT --to-destination ${endpointIP(e)}:8080`);
    }
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  for (const c of o.staleChains ?? []) decls.push(`:${c} - [0:0]`);
  if (o.builtinJump === true)
    rules.push('-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  for (const c of o.staleChains ?? []) rules.push(`-X ${c}`);
  return [
    '*filter',
    ':KUBE-FORWARD - [0:0]',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    'COMMIT',
    '*nat',
    ...decls,
    ...rules,
    'COMMIT',
    '',
  ].join('\n');
}

/** The SVC and SEP chains of a `clusterPayload` (not the fixed ones). */
export function clusterChains(o: ClusterPayloadOptions): string[] {
  const base = o.endpointBase ?? 0;
  const out: string[] = [];
  for (let i = 0; i < o.services; i++) {
    out.push(svcChain(i));
    for (let j = 0; j < o.endpointsPerService; j++) out.push(sepChain(base + i * o.endpointsPerService + j));
  }
  return out;
}
