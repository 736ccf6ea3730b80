/**
 * The metrics server (upstream's --metrics-bind-address, default 127.0.0.1:10249):
 * `/metrics` (Prometheus text of our registry), `/healthz` (plain "ok": the process answers),
 * `/proxyMode` (the mode string) and `/configz` (the running configuration as JSON, keyed by
 * its API group as upstream's configz package serves it).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { type Logger, silentLogger } from '../log/logger.ts';
import { closeHttp, type HostPort, listenHttp, parseBindAddress } from './listen.ts';

export const DEFAULT_METRICS_BIND_ADDRESS = '127.0.0.1:10249';
/** The key upstream's /configz serves the KubeProxyConfiguration under. */
export const CONFIGZ_GROUP = 'kubeproxy.config.k8s.io';

export interface MetricsServerOptions {
  /** `host:port`; empty disables the server (start() then does nothing). */
  readonly bindAddress: string;
  readonly registry: Registry;
  /** Answer of `/proxyMode`. */
  readonly proxyMode?: string;
  /** Served by `/configz`; must be JSON-serialisable. */
  readonly config?: unknown;
  readonly logger?: Logger;
}

export interface MetricsServer {
  /** Resolves once listening; rejects with a ListenError naming the address if it cannot bind. */
  start(): Promise<void>;
  /** Closes the listener; idempotent. */
  stop(): Promise<void>;
  /** The bound address while listening (the real port when asked for port 0). */
  address(): AddressInfo | undefined;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'Content-Type': contentType,
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

const TEXT = 'text/plain; charset=utf-8';

export function createMetricsServer(opts: MetricsServerOptions): MetricsServer {
  const log = opts.logger ?? silentLogger();
  const enabled = opts.bindAddress.trim() !== '';
  // Parse eagerly: a malformed flag is a configuration error, reported before anything starts.
  const hp: HostPort | undefined = enabled ? parseBindAddress(opts.bindAddress) : undefined;
  const mode = opts.proxyMode ?? 'iptables';
  let server: Server | undefined;
  let bound: AddressInfo | undefined;
  let starting: Promise<void> | undefined;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    switch (path) {
      case '/metrics':
        send(res, 200, opts.registry.contentType, await opts.registry.metrics());
        return;
      case '/healthz':
        send(res, 200, TEXT, 'ok');
        return;
      case '/proxyMode':
        send(res, 200, TEXT, mode);
        return;
      case '/configz':
        send(res, 200, 'application/json', JSON.stringify({ [CONFIGZ_GROUP]: opts.config ?? {} }));
        return;
      default:
        send(res, 404, TEXT, '404 page not found\n');
    }
  };

  return {
    start() {
      if (!hp) return Promise.resolve();
      starting ??= (async () => {
        const s = createServer((req, res) => {
          handle(req, res).catch((err: unknown) => {
            log.error({ err, url: req.url }, 'metrics request failed');
            if (!res.headersSent) send(res, 500, TEXT, 'internal error\n');
            else res.destroy();
          });
        });
        server = s;
        bound = await listenHttp(s, hp);
        log.info({ address: opts.bindAddress }, 'Starting metrics server');
      })().catch((err: unknown) => {
        // A failed start can be retried.
        starting = undefined;
        server = undefined;
        throw err;
      });
      return starting;
    },
    async stop() {
      const s = server;
      const pending = starting;
      server = undefined;
      starting = undefined;
      bound = undefined;
      await pending?.catch(() => {});
      if (s) await closeHttp(s);
    },
    address: () => bound,
  };
}
