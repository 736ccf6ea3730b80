/**
 * Binding the proxy's HTTP servers (metrics, healthz, service health-check ports): parsing
 * `host:port` bind addresses the way upstream's flags take them, and listening so that a failure
 * is an error naming the address instead of an 'error' event nobody awaits.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { joinHostPort, parseIP } from '../net/ip.ts';

export interface HostPort {
  /** Canonical IP text; '' means every address (a wildcard). */
  readonly host: string;
  readonly port: number;
}

export type ListenErrorCode = 'INVALID_BIND_ADDRESS' | 'LISTEN_FAILED';

/** A server could not be bound. `address` is the `host:port` that was asked for. */
export class ListenError extends Error {
  readonly code: ListenErrorCode;
  readonly address: string;
  constructor(code: ListenErrorCode, address: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ListenError';
    this.code = code;
    this.address = address;
  }
}

/**
 * Parses `ip:port`, `[ipv6]:port` or `:port` (all addresses), as upstream's
 * --healthz-bind-address and --metrics-bind-address accept them.
 */
export function parseBindAddress(addr: string): HostPort {
  const bad = (why: string) =>
    new ListenError('INVALID_BIND_ADDRESS', addr, `invalid bind address "${addr}": ${why}`);
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(addr.trim());
  if (!m) throw bad('expected host:port');
  const port = Number(m[3]);
  if (port > 65535) throw bad('port out of range');
  const hostText = m[1] ?? m[2] ?? '';
  if (hostText === '') return { host: '', port };
  const ip = parseIP(hostText);
  if (!ip) throw bad(`"${hostText}" is not an IP address`);
  if (m[1] !== undefined && ip.family !== 'IPv6') throw bad('brackets are for IPv6 addresses');
  return { host: ip.text, port };
}

export function formatHostPort(hp: HostPort): string {
  return joinHostPort(hp.host === '' ? '0.0.0.0' : hp.host, hp.port);
}

function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::';
}

function listenOnce(server: Server, host: string, port: number, ipv6Only: boolean): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, ipv6Only, exclusive: true });
  });
}

/**
 * Starts `server` listening on `hp`; resolves with the bound address (useful with port 0).
 *
 * A wildcard (`0.0.0.0`, `::` or empty) listens on a dual-stack `::` socket: Go does the same
 * for a wildcard TCP listen, so upstream's default `0.0.0.0:10256` also answers over IPv6.
 * Hosts without IPv6 fall back to IPv4 only.
 */
export async function listenHttp(server: Server, hp: HostPort): Promise<AddressInfo> {
  const where = formatHostPort(hp);
  const fail = (err: unknown) =>
    new ListenError(
      'LISTEN_FAILED',
      where,
      `failed to listen on ${where}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  if (isWildcard(hp.host)) {
    try {
      return await listenOnce(server, '::', hp.port, false);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw fail(err);
    }
    try {
      return await listenOnce(server, '0.0.0.0', hp.port, false);
    } catch (err) {
      throw fail(err);
    }
  }
  try {
    return await listenOnce(server, hp.host, hp.port, false);
  } catch (err) {
    throw fail(err);
  }
}

/** Closes `server` and every open connection; resolves when it is closed. Safe to call twice. */
export function closeHttp(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections would hold close() open until they time out.
    server.closeAllConnections();
  });
}
