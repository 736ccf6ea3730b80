/**
 * The development Kubernetes API server: an in-memory store of Namespaces, Nodes, Services and
 * EndpointSlices behind the Kubernetes REST and watch protocol, so that the proxy, client
 * libraries and a stock `kubectl` can run against it where no control plane exists.
 *
 * Plain HTTP with no authentication: it listens on loopback by default and the kubeconfig it
 * writes has no credentials. Do not expose it beyond the machine.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { type Logger, silentLogger } from '../log/logger.ts';
import { joinHostPort, parseIP } from '../net/ip.ts';
import { createIPAllocator, createPortAllocator } from './allocator.ts';
import { createRequestHandler, type DropMode } from './handler.ts';
import { renderKubeconfig } from './kubeconfig.ts';
import { createStore, type Store } from './store.ts';
import { createStrategies } from './strategy.ts';

export const DEFAULT_SERVICE_CIDRS: readonly string[] = ['10.96.0.0/16', 'fd00:10:96::/112'];
export const DEFAULT_NODE_PORT_RANGE: readonly [number, number] = [30000, 32767];
export const INITIAL_NAMESPACES: readonly string[] = ['default', 'kube-system', 'kube-public'];

export interface ApiServerOptions {
  /** `host:port` to listen on; default 127.0.0.1:0 (a free port on loopback). */
  readonly listen?: string;
  /**
   * Service CIDRs, one per family, primary first. Default: 10.96.0.0/16 and fd00:10:96::/112,
   * so Services are IPv4 single-stack unless their ipFamilies or ipFamilyPolicy ask for IPv6.
   */
  readonly serviceCIDRs?: readonly string[];
  readonly nodePortRange?: readonly [number, number];
  /** Change events kept for watch resumption; older versions get 410 Expired. Default 1000. */
  readonly historyLimit?: number;
  /** Period of BOOKMARK events on watches that allow them. Default 30 s. */
  readonly bookmarkIntervalMs?: number;
  readonly logger?: Logger;
}

export interface ApiServer {
  /** Starts listening; resolves with the base URL, e.g. http://127.0.0.1:41234. */
  start(): Promise<{ url: string }>;
  /**
   * Also serves on a unix socket. Network namespaces share the filesystem, so a proxy inside a
   * test namespace reaches the server through the socket (relayed to its own loopback) while the
   * server stays in the machine's namespace.
   */
  serveUnixSocket(path: string): Promise<void>;
  /** Ends open watches and closes the listener; idempotent. */
  stop(): Promise<void>;
  /** Writes a kubeconfig (no credentials) for this server; the server must be started. */
  writeKubeconfig(path: string): Promise<void>;
  /** The server's URL once started. */
  url(): string;
  /** Direct access to the objects, with the same validation and allocation as HTTP requests. */
  readonly store: Store;
  /**
   * Fault injection: ends every open watch. 'end' closes streams cleanly (what a server-side
   * timeout looks like; clients resume from their last version); 'reset' destroys the
   * connections (what a crash or network failure looks like).
   */
  dropWatches(mode?: DropMode): void;
  /** Fault injection: forgets the event history, so a watch from any earlier version gets 410. */
  compactHistory(): void;
}

export class ApiServerError extends Error {
  override readonly name = 'ApiServerError';
  readonly code: 'InvalidListenAddress' | 'InvalidServiceCIDRs' | 'NotStarted';
  constructor(code: 'InvalidListenAddress' | 'InvalidServiceCIDRs' | 'NotStarted', message: string) {
    super(message);
    this.code = code;
  }
}

/** Splits `host:port` or `[v6]:port`. */
export function parseListenAddress(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(s.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535)
    throw new ApiServerError('InvalidListenAddress', `invalid listen address "${s}", want host:port`);
  return { host: (m[1] ?? m[2])!, port };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const ip = parseIP(host);
  if (!ip) return false;
  return ip.family === 'IPv4' ? ip.bytes[0] === 127 : ip.text === '::1';
}

export function createApiServer(opts: ApiServerOptions = {}): ApiServer {
  const logger = (opts.logger ?? silentLogger()).child({ component: 'apiserver' });
  const listen = parseListenAddress(opts.listen ?? '127.0.0.1:0');
  const cidrs = opts.serviceCIDRs ?? DEFAULT_SERVICE_CIDRS;
  if (cidrs.length < 1 || cidrs.length > 2) {
    throw new ApiServerError('InvalidServiceCIDRs', 'give one service CIDR, or two of different families');
  }
  const ips = cidrs.map((c) => createIPAllocator(c));
  if (ips.length === 2 && ips[0]!.family === ips[1]!.family) {
    throw new ApiServerError('InvalidServiceCIDRs', 'two service CIDRs must be of different families');
  }
  const nodePorts = createPortAllocator(opts.nodePortRange ?? DEFAULT_NODE_PORT_RANGE);
  const store = createStore({
    strategies: createStrategies({ ips, nodePorts }),
    historyLimit: opts.historyLimit ?? 1000,
    initialNamespaces: INITIAL_NAMESPACES,
  });
  let dropMode: DropMode = 'end';
  let baseUrl: string | undefined;
  let server: Server | undefined;
  const unixServers: Server[] = [];
  let stopping: Promise<void> | undefined;

  const handler = createRequestHandler({
    store,
    logger,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 30_000,
    serverAddress: () => (baseUrl ? new URL(baseUrl).host : joinHostPort(listen.host, listen.port)),
    dropMode: () => dropMode,
  });

  function newHttpServer(): Server {
    const srv = createServer(handler);
    // Watches are long-lived; node's default request and keep-alive timeouts would cut them.
    srv.requestTimeout = 0;
    srv.headersTimeout = 60_000;
    return srv;
  }

  return {
    store,
    async serveUnixSocket(path) {
      await rm(path, { force: true });
      const srv = newHttpServer();
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(path, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      unixServers.push(srv);
    },
    url() {
      if (!baseUrl) throw new ApiServerError('NotStarted', 'the API server is not started');
      return baseUrl;
    },
    async start() {
      if (baseUrl) return { url: baseUrl };
      if (!isLoopback(listen.host)) {
        logger.warn({ host: listen.host }, 'listening beyond loopback: this server has no authentication');
      }
      const srv = newHttpServer();
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(listen.port, listen.host, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      server = srv;
      const addr = srv.address() as AddressInfo;
      baseUrl = `http://${joinHostPort(addr.address, addr.port)}`;
      logger.info({ url: baseUrl }, 'development API server listening');
      return { url: baseUrl };
    },
    stop() {
      stopping ??= (async () => {
        store.dropWatches();
        for (const srv of [...(server ? [server] : []), ...unixServers]) {
          await new Promise<void>((resolve) => {
            srv.close(() => resolve());
            srv.closeAllConnections();
          });
        }
        logger.info('development API server stopped');
      })();
      return stopping;
    },
    async writeKubeconfig(path) {
      if (!baseUrl)
        throw new ApiServerError('NotStarted', 'start the API server before writing a kubeconfig');
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, renderKubeconfig(baseUrl), { mode: 0o600 });
    },
    dropWatches(mode = 'end') {
      dropMode = mode;
      try {
        store.dropWatches();
      } finally {
        dropMode = 'end';
      }
    },
    compactHistory() {
      store.compactHistory();
    },
  };
}
