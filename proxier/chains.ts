/**
 * Chain names, exactly as upstream kube-proxy (iptables mode) computes them, so that a node can
 * switch between upstream and kube-proxy-ts without renaming a chain.
 *
 * A per-service chain is a prefix plus the first 16 characters of the RFC 4648 base32 encoding
 * of SHA-256 over `servicePortName + lower-case protocol` (plus the endpoint `ip:port` for
 * KUBE-SEP). iptables limits chain names to 28 characters; `KUBE-SEP-` + 16 is 25.
 */
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

// SHA-256 in plain JavaScript. A full sync hashes every endpoint (upstream precomputes names when
// its tracker builds the structs); node:crypto costs a native object per hash, several times the
// work itself for these short inputs, and a memo of the results held megabytes for big clusters.
const SHA256_K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const sha256W = new Int32Array(64);
const sha256H = new Int32Array(8);
let sha256Block = new Uint8Array(128);
const utf8 = new TextEncoder();

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * SHA-256 of the UTF-8 bytes of `head` followed by `tail`, as eight big-endian words (reused
 * between calls). Two parts, so that a caller hashing a port's prefix plus each endpoint does not
 * build the joined string first.
 */
function sha256(head: string, tail = ''): Int32Array {
  const encoded = isAscii(head) && isAscii(tail) ? undefined : utf8.encode(head + tail);
  const len = encoded === undefined ? head.length + tail.length : encoded.length;
  // Message, 0x80, zeros, 64-bit bit length: a whole number of 64-byte blocks.
  const total = (((len + 8) >> 6) + 1) << 6;
  if (sha256Block.length < total) sha256Block = new Uint8Array(total);
  const m = sha256Block;
  if (encoded === undefined) {
    for (let i = 0; i < head.length; i++) m[i] = head.charCodeAt(i);
    for (let i = 0; i < tail.length; i++) m[head.length + i] = tail.charCodeAt(i);
  } else {
    m.set(encoded);
  }
  m[len] = 0x80;
  m.fill(0, len + 1, total);
  const bits = len * 8;
  m[total - 5] = Math.floor(bits / 2 ** 32);
  m[total - 4] = bits >>> 24;
  m[total - 3] = bits >>> 16;
  m[total - 2] = bits >>> 8;
  m[total - 1] = bits;
  const W = sha256W;
  const H = sha256H;
  H[0] = 0x6a09e667;
  H[1] = 0xbb67ae85;
  H[2] = 0x3c6ef372;
  H[3] = 0xa54ff53a;
  H[4] = 0x510e527f;
  H[5] = 0x9b05688c;
  H[6] = 0x1f83d9ab;
  H[7] = 0x5be0cd19;
  for (let off = 0; off < total; off += 64) {
    for (let i = 0; i < 16; i++) {
      const j = off + i * 4;
      W[i] = (m[j]! << 24) | (m[j + 1]! << 16) | (m[j + 2]! << 8) | m[j + 3]!;
    }
    for (let i = 16; i < 64; i++) {
      const w15 = W[i - 15]!;
      const w2 = W[i - 2]!;
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
    }
    let a = H[0]!;
    let b = H[1]!;
    let c = H[2]!;
    let d = H[3]!;
    let e = H[4]!;
    let f = H[5]!;
    let g = H[6]!;
    let h = H[7]!;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + SHA256_K[i]! + W[i]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    H[0] = (H[0]! + a) | 0;
    H[1] = (H[1]! + b) | 0;
    H[2] = (H[2]! + c) | 0;
    H[3] = (H[3]! + d) | 0;
    H[4] = (H[4]! + e) | 0;
    H[5] = (H[5]! + f) | 0;
    H[6] = (H[6]! + g) | 0;
    H[7] = (H[7]! + h) | 0;
  }
  return H;
}

const BASE32_CODES = Int32Array.from(BASE32_ALPHABET, (c) => c.charCodeAt(0));

/** Base32 character `i` (0-based) of the bits of `words`: bits 5i to 5i+4, big-endian. */
function base32Code(words: Int32Array, i: number): number {
  const bit = 5 * i;
  const k = bit >> 5;
  const off = bit & 31;
  const v = off <= 27 ? words[k]! >>> (27 - off) : (words[k]! << (off - 27)) | (words[k + 1]! >>> (59 - off));
  return BASE32_CODES[v & 31]!;
}

/**
 * `prefix` followed by the first 16 characters of the RFC 4648 base32 encoding of the big-endian
 * bytes of `words` (80 bits). One fromCharCode call with the sixteen codes as arguments: no array
 * and no string per character, for the 100k names of a big full sync.
 */
function base32Name(prefix: string, w: Int32Array): string {
  const hash = String.fromCharCode(
    base32Code(w, 0),
    base32Code(w, 1),
    base32Code(w, 2),
    base32Code(w, 3),
    base32Code(w, 4),
    base32Code(w, 5),
    base32Code(w, 6),
    base32Code(w, 7),
    base32Code(w, 8),
    base32Code(w, 9),
    base32Code(w, 10),
    base32Code(w, 11),
    base32Code(w, 12),
    base32Code(w, 13),
    base32Code(w, 14),
    base32Code(w, 15),
  );
  return prefix + hash;
}

/** The 16-character hash shared by upstream's portProtoHash and the KUBE-SEP name. */
export function chainHash(input: string): string {
  return base32Name('', sha256(input));
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
  const h = sha256(servicePortHashInput(spn));
  return {
    svc: base32Name(SVC_PREFIX, h),
    svl: base32Name(SVL_PREFIX, h),
    ext: base32Name(EXT_PREFIX, h),
    fw: base32Name(FW_PREFIX, h),
  };
}

/** KUBE-SEP- chain of endpoint `ip:port` of the port whose servicePortHashInput is `hashInput`. */
export function endpointChainNameOf(hashInput: string, endpoint: string): string {
  return base32Name(SEP_PREFIX, sha256(hashInput, endpoint));
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
