/**
 * Health-check node ports of externalTrafficPolicy=Local LoadBalancer Services (upstream
 * pkg/proxy/healthcheck/service_health.go). A cloud load balancer probes
 * `node:healthCheckNodePort` on every node and sends traffic only to nodes answering 200, which
 * are the nodes with a local ready endpoint for the Service while the proxy itself is healthy.
 *
 * After each successful sync the proxier calls `syncServices` (which ports to listen on) and
 * `syncEndpoints` (local ready endpoint counts). A port that cannot be bound is logged and left
 * out; the next `syncServices` tries it again. Nothing here throws at the sync loop.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServiceKey } from '../../proxier/types.ts';
import { type Logger, silentLogger } from '../log/logger.ts';
import { closeHttp, listenHttp } from '../metrics/listen.ts';
import type { ProxyHealthChecker } from './proxy-health.ts';

export interface ServiceHealthServerOptions {
  readonly proxyHealth: ProxyHealthChecker;
  /**
   * Addresses to listen on for every port: the node IPs that --nodeport-addresses selects, or
   * the default ['0.0.0.0'] for all addresses (IPv4 and IPv6, as upstream).
   */
  readonly nodeIPs?: readonly string[];
  /** Node name, for log lines and the listen-failure callback. */
  readonly hostname?: string;
  /**
   * Called when a port cannot be bound; upstream records a Warning event
   * `FailedToStartServiceHealthcheck` (action `Listen`) on the Service with `message`.
   */
  readonly onListenError?: (service: ServiceKey, port: number, message: string) => void;
  readonly logger?: Logger;
}

interface Instance {
  readonly port: number;
  readonly servers: Server[];
  readonly bound: AddressInfo[];
  endpoints: number;
}

/**
 * The response body: tab-indented JSON with upstream's field order (upstream formats it from a
 * tab-indented template, byte for byte what this produces).
 */
export function serviceHealthBody(
  service: ServiceKey,
  localEndpoints: number,
  proxyHealthy: boolean,
): string {
  const slash = service.indexOf('/');
  const namespace = slash === -1 ? '' : service.slice(0, slash);
  const name = slash === -1 ? service : service.slice(slash + 1);
  return JSON.stringify(
    { service: { namespace, name }, localEndpoints, serviceProxyHealthy: proxyHealthy },
    null,
    '\t',
  );
}

export class ServiceHealthServer {
  private readonly opts: ServiceHealthServerOptions;
  private readonly nodeIPs: readonly string[];
  private readonly log: Logger;
  private readonly services = new Map<ServiceKey, Instance>();
  /** Syncs run one after another: each one awaits listens and closes. */
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(opts: ServiceHealthServerOptions) {
    this.opts = opts;
    this.nodeIPs = opts.nodeIPs && opts.nodeIPs.length > 0 ? opts.nodeIPs : ['0.0.0.0'];
    this.log = opts.logger ?? silentLogger();
  }

  /**
   * Makes `services` (Service → health-check node port) the set being served: closes the ports
   * of Services that are gone or whose port changed, opens the new ones, leaves the rest alone.
   * Resolves when done; never rejects.
   */
  syncServices(services: ReadonlyMap<ServiceKey, number>): Promise<void> {
    const wanted = new Map(services);
    return this.enqueue(async () => {
      if (this.stopped) return;
      for (const [key, inst] of [...this.services]) {
        const port = wanted.get(key);
        if (port === undefined || port !== inst.port) {
          this.log.debug({ service: key, port: inst.port }, 'Closing healthcheck');
          this.services.delete(key);
          await this.closeAll(key, inst.servers);
        }
      }
      for (const [key, port] of wanted) {
        if (this.services.has(key)) continue;
        this.log.debug({ service: key, port }, 'Opening healthcheck');
        const inst = await this.open(key, port);
        if (inst) this.services.set(key, inst);
      }
    });
  }

  /**
   * Sets the local ready endpoint counts; Services missing from `counts` get 0, counts of
   * Services without a port are ignored. Call it after `await syncServices(...)`: a listener
   * opened by that call starts at 0 endpoints (as upstream's) until the counts arrive.
   */
  syncEndpoints(counts: ReadonlyMap<ServiceKey, number>): void {
    for (const [key, inst] of this.services) inst.endpoints = counts.get(key) ?? 0;
  }

  /** The addresses a Service's health check is bound to (several with several node IPs). */
  addresses(service: ServiceKey): readonly AddressInfo[] {
    return this.services.get(service)?.bound ?? [];
  }

  /** The Services currently served. */
  servedServices(): ServiceKey[] {
    return [...this.services.keys()].sort();
  }

  /** Closes every port; idempotent. Later syncServices calls do nothing. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.enqueue(async () => {
      const all = [...this.services];
      this.services.clear();
      await Promise.all(all.map(([key, inst]) => this.closeAll(key, inst.servers)));
    });
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    const next = this.queue.then(job).catch((err: unknown) => {
      this.log.error({ err }, 'Service health-check sync failed');
    });
    this.queue = next;
    return next;
  }

  private async open(key: ServiceKey, port: number): Promise<Instance | undefined> {
    const inst: Instance = { port, servers: [], bound: [], endpoints: 0 };
    for (const ip of this.nodeIPs) {
      const server = createServer((req, res) => this.handle(key, inst, req, res));
      try {
        inst.bound.push(await listenHttp(server, { host: ip, port }));
        inst.servers.push(server);
      } catch (err) {
        // Close what was opened, so that the retry at the next sync (or another owner of the
        // port) starts clean.
        await this.closeAll(key, inst.servers);
        const node = this.opts.hostname ?? '';
        const reason = err instanceof Error ? err.message : String(err);
        const message = `node ${node} failed to start healthcheck "${key}" on port ${port}: ${reason}`;
        this.log.error({ err, node, service: key, port }, 'Failed to start healthcheck');
        this.opts.onListenError?.(key, port, message);
        return undefined;
      }
    }
    return inst;
  }

  private async closeAll(key: ServiceKey, servers: readonly Server[]): Promise<void> {
    await Promise.all(
      servers.map((s) =>
        closeHttp(s).catch((err: unknown) => {
          this.log.error({ err, service: key }, 'Error closing server for health check service');
        }),
      ),
    );
  }

  private handle(key: ServiceKey, inst: Instance, _req: IncomingMessage, res: ServerResponse): void {
    const count = inst.endpoints;
    const proxyHealthy = this.opts.proxyHealth.isHealthy();
    const body = serviceHealthBody(key, count, proxyHealthy);
    res.writeHead(count > 0 && proxyHealthy ? 200 : 503, {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'X-Load-Balancing-Endpoint-Weight': String(count),
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  }
}
