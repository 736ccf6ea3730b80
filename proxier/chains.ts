/**
 * Chain names, exactly as upstream kube-proxy (iptables mode) computes them, so that a node can
 * switch between upstream and kube-proxy-ts without renaming a chain.
 *
 * A per-service chain is a prefix plus the first 16 characters of the RFC 4648 base32 encoding
 * of SHA-256 over `servicePortName + lower-case protocol` (plus the endpoint `ip:port` for
 * KUBE-SEP). iptables limits chain names to 28 characters; `KUBE-SEP-` + 16 is 25.
 */
import { createHash } from 'node:crypto';
import type { Endpoint, Protocol, ServicePortName } from './types.ts';
import { servicePortNameString } from './types.ts';

/** Top-level chains, written in full on every sync. */
export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
export const KUBE_PROXY_CANARY = 'KUBE-PROXY-CANARY';
/** Duplicate of kubelet's anti-martian chain (issue #90259); never deleted by cleanup. */
export const KUBE_FIREWALL = 'KUBE-FIREWALL';

/** Prefixes of per-service chains; `isServiceChain` treats exactly these as ours. */
export const SVC_PREFIX = 'KUBE-SVC-';
export const SVL_PREFIX = 'KUBE-SVL-';
export const EXT_PREFIX = 'KUBE-EXT-';
export const FW_PREFIX = 'KUBE-FW-';
export const SEP_PREFIX = 'KUBE-SEP-';

const SERVICE_CHAIN_PREFIXES = [SVC_PREFIX, SVL_PREFIX, SEP_PREFIX, FW_PREFIX, EXT_PREFIX] as const;

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 of `bytes`, only its first `chars` characters (no padding needed). */
function base32Prefix(bytes: Uint8Array, chars: number): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(buffer >> bits) & 31];
      if (out.length === chars) return out;
    }
  }
  return out;
}

// SHA-256 dominates rendering time in big clusters (one hash per endpoint per sync); upstream
// precomputes names when the tracker builds its structs. A memo gives the same effect here; it
// is dropped wholesale when it outgrows any realistic cluster.
const hashMemo = new Map<string, string>();
const HASH_MEMO_LIMIT = 1_000_000;

/** The 16-character hash shared by upstream's portProtoHash and the KUBE-SEP name. */
export function chainHash(input: string): string {
  let hash = hashMemo.get(input);
  if (hash === undefined) {
    hash = base32Prefix(createHash('sha256').update(input, 'utf8').digest(), 16);
    if (hashMemo.size >= HASH_MEMO_LIMIT) hashMemo.clear();
    hashMemo.set(input, hash);
  }
  return hash;
}

function lowerProtocol(protocol: Protocol): string {
  return protocol.toLowerCase();
}

export interface ServicePortChains {
  /** KUBE-SVC-: balances over cluster-wide endpoints (Cluster policy). */
  readonly svc: string;
  /** KUBE-SVL-: balances over node-local endpoints (Local policy). */
  readonly svl: string;
  /** KUBE-EXT-: external traffic (masquerade or short-circuit), then SVC or SVL. */
  readonly ext: string;
  /** KUBE-FW-: loadBalancerSourceRanges allow-list. */
  readonly fw: string;
}

/**
 * What every chain hash of a service port starts with: the port's name string and lower-case
 * protocol. Renderers compute it once per port and append each endpoint to it.
 */
export function servicePortHashInput(spn: ServicePortName): string {
  return servicePortNameString(spn) + lowerProtocol(spn.protocol);
}

/** The four service-level chain names of one service port; they share one hash. */
export function servicePortChainNames(spn: ServicePortName): ServicePortChains {
  const hash = chainHash(servicePortHashInput(spn));
  return { svc: SVC_PREFIX + hash, svl: SVL_PREFIX + hash, ext: EXT_PREFIX + hash, fw: FW_PREFIX + hash };
}

/** KUBE-SEP- chain of endpoint `ip:port` of the port whose servicePortHashInput is `hashInput`. */
export function endpointChainNameOf(hashInput: string, endpoint: string): string {
  return SEP_PREFIX + chainHash(hashInput + endpoint);
}

/**
 * KUBE-SEP- chain of one endpoint of one service port. `endpoint` is the `ip:port` string
 * (IPv6 bracketed, as Go's JoinHostPort), or an Endpoint whose `endpoint` field is used.
 */
export function endpointChainName(
  spn: ServicePortName,
  protocol: Protocol,
  endpoint: string | Endpoint,
): string {
  const ep = typeof endpoint === 'string' ? endpoint : endpoint.endpoint;
  return endpointChainNameOf(servicePortNameString(spn) + lowerProtocol(protocol), ep);
}

/**
 * True for the per-service chains kube-proxy owns (KUBE-SVC-, KUBE-SVL-, KUBE-SEP-, KUBE-FW-,
 * KUBE-EXT-). Stale-chain deletion and cleanup touch only these, never foreign chains.
 */
export function isServiceChain(name: string): boolean {
  return SERVICE_CHAIN_PREFIXES.some((p) => name.startsWith(p));
}
