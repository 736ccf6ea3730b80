/**
 * From a validated Service to the per-port records the proxier renders (upstream's
 * BaseServicePortInfo, pkg/proxy/serviceport.go). One proxier serves one IP family, so every
 * address list is filtered to that family and printed canonically (the chain-name hashes and
 * rule text use the canonical form).
 */
import type { Service } from '../pkg/k8s/schemas.ts';
import { type IPFamily, parseCIDR, parseIP } from '../pkg/net/ip.ts';
import type { ServicePort, SessionAffinity } from './types.ts';

/** Upstream's default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_STICKY_SECONDS = 10800;

/** Deprecated hints annotation; upstream prefers it over the newer topology-mode one. */
const TOPOLOGY_AWARE_HINTS_ANNOTATION = 'service.kubernetes.io/topology-aware-hints';
const TOPOLOGY_MODE_ANNOTATION = 'service.kubernetes.io/topology-mode';

/**
 * Upstream's ShouldSkipService: headless Services (clusterIP None or empty) and ExternalName
 * Services have no virtual IP to program.
 */
export function shouldSkipService(svc: Service): boolean {
  if (svc.spec.type === 'ExternalName') return true;
  const primary = svc.spec.clusterIP ?? svc.spec.clusterIPs?.[0];
  return primary === undefined || primary === '' || primary === 'None';
}

/**
 * The Service's cluster IP of `family`, canonical, or undefined. `clusterIPs` (dual stack) wins;
 * `clusterIP` is the fallback for objects written before dual stack existed.
 */
export function clusterIPOfFamily(svc: Service, family: IPFamily): string | undefined {
  const candidates =
    svc.spec.clusterIPs && svc.spec.clusterIPs.length > 0 ? svc.spec.clusterIPs : [svc.spec.clusterIP];
  for (const c of candidates) {
    if (c === undefined || c === '' || c === 'None') continue;
    const ip = parseIP(c);
    if (ip && ip.family === family) return ip.text;
  }
  return undefined;
}

/**
 * Upstream's apiservice.ExternallyAccessible. It looks at all external IPs, not only those of
 * the proxier's family, as upstream does.
 */
function externallyAccessible(svc: Service): boolean {
  const t = svc.spec.type;
  return t === 'LoadBalancer' || t === 'NodePort' || (t === 'ClusterIP' && svc.spec.externalIPs.length > 0);
}

function ipsOfFamily(addresses: readonly string[], family: IPFamily): string[] {
  const out: string[] = [];
  for (const a of addresses) {
    const ip = parseIP(a);
    if (ip && ip.family === family) out.push(ip.text);
  }
  return out;
}

/**
 * Source ranges of `family`, canonical. API validation has long accepted whitespace padding
 * here, so the values are trimmed first, as upstream does.
 */
function sourceRangesOfFamily(ranges: readonly string[], family: IPFamily): string[] {
  const out: string[] = [];
  for (const r of ranges) {
    const cidr = parseCIDR(r.trim());
    if (cidr && cidr.family === family) out.push(cidr.text);
  }
  return out;
}

/**
 * Load-balancer ingress IPs kube-proxy must accept traffic for: not hostname-only entries, and
 * not `ipMode: Proxy` ones (the load balancer forwards those to the node itself, KEP-1860).
 * An LB of another family may proxy to us, but we only program VIP-style ingress of our family.
 */
function loadBalancerVIPsOfFamily(svc: Service, family: IPFamily): string[] {
  const out: string[] = [];
  for (const ing of svc.status?.loadBalancer?.ingress ?? []) {
    if (ing.ip === undefined || ing.ip === '' || ing.ipMode === 'Proxy') continue;
    const ip = parseIP(ing.ip);
    if (ip && ip.family === family) out.push(ip.text);
  }
  return out;
}

function sessionAffinityOf(svc: Service): SessionAffinity {
  if (svc.spec.sessionAffinity !== 'ClientIP') return { type: 'None' };
  return {
    type: 'ClientIP',
    timeoutSeconds: svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_STICKY_SECONDS,
  };
}

function hintsAnnotationOf(svc: Service): string {
  const annotations = svc.metadata.annotations ?? {};
  // Presence, not value, decides: an empty deprecated annotation still hides the new one.
  if (Object.hasOwn(annotations, TOPOLOGY_AWARE_HINTS_ANNOTATION)) {
    return annotations[TOPOLOGY_AWARE_HINTS_ANNOTATION] ?? '';
  }
  return annotations[TOPOLOGY_MODE_ANNOTATION] ?? '';
}

/**
 * The proxied ports of `svc` for one IP family, in Service order; empty when the Service is
 * ignored (headless, ExternalName, or no cluster IP of this family). Pure: `svc` is not modified
 * and the result shares no mutable state with it.
 */
export function servicePortsFromService(svc: Service, family: IPFamily): ServicePort[] {
  if (shouldSkipService(svc)) return [];
  const clusterIP = clusterIPOfFamily(svc, family);
  if (clusterIP === undefined) return [];

  const { namespace, name } = svc.metadata;
  const externalPolicyLocal = svc.spec.externalTrafficPolicy === 'Local' && externallyAccessible(svc);
  // Only an eTP=Local LoadBalancer gets a health-check node port (apiservice.NeedsHealthCheck).
  const healthCheckNodePort =
    svc.spec.type === 'LoadBalancer' && externalPolicyLocal ? (svc.spec.healthCheckNodePort ?? 0) : 0;
  const shared = {
    clusterIP,
    sessionAffinity: Object.freeze(sessionAffinityOf(svc)),
    externalIPs: Object.freeze(ipsOfFamily(svc.spec.externalIPs, family)),
    loadBalancerSourceRanges: Object.freeze(sourceRangesOfFamily(svc.spec.loadBalancerSourceRanges, family)),
    loadBalancerVIPs: Object.freeze(loadBalancerVIPsOfFamily(svc, family)),
    healthCheckNodePort,
    externalPolicyLocal,
    internalPolicyLocal: svc.spec.internalTrafficPolicy === 'Local',
    hintsAnnotation: hintsAnnotationOf(svc),
    trafficDistribution: svc.spec.trafficDistribution ?? '',
  };

  return svc.spec.ports.map((p) =>
    Object.freeze({
      name: Object.freeze({ namespace, name, port: p.name ?? '', protocol: p.protocol }),
      port: p.port,
      protocol: p.protocol,
      nodePort: p.nodePort ?? 0,
      ...shared,
    }),
  );
}
