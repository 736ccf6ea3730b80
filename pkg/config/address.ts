/**
 * `host:port` helpers for the healthz and metrics addresses, as Go's net.SplitHostPort and
 * upstream's proxyutil.AppendPortIfNeeded.
 */
import { parseIP } from '../net/ip.ts';

/** Upstream parses these with ParseIPSloppy, which takes no surrounding blanks (our parseIP trims). */
export function isIPText(s: string): boolean {
  return s.trim() === s && parseIP(s) !== undefined;
}

/** Go's net.SplitHostPort for `host:port` and `[IPv6]:port`; undefined when it is neither. */
export function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith('[')) {
    const m = /^\[([^\]]*)\]:([^:]*)$/.exec(s);
    return m ? { host: m[1]!, port: m[2]! } : undefined;
  }
  const colon = s.lastIndexOf(':');
  if (colon === -1 || s.indexOf(':') !== colon) return undefined;
  return { host: s.slice(0, colon), port: s.slice(colon + 1) };
}

/** `addr` unchanged if it already has a port (or is not an IP); else `IP:port` / `[IPv6]:port`. */
export function appendPortIfNeeded(addr: string, port: number): string {
  if (splitHostPort(addr) || !isIPText(addr)) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
