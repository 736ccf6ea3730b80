/**
 * The proxy's own health (upstream pkg/proxy/healthcheck/proxy_health.go), served on
 * --healthz-bind-address (default 0.0.0.0:10256):
 *
 * - per IP family, the time of the last successful sync (`updated`) and the time of the oldest
 *   change still waiting for a sync (`queuedUpdate`);
 * - a family is unhealthy when a change has waited longer than the health timeout
 *   (2 × --iptables-sync-period); a proxy with nothing pending is healthy however long ago it
 *   last synced, since an idle cluster needs no syncs;
 * - `/livez` answers 200 when every family is healthy; `/healthz` also requires the node to be
 *   eligible (its Node object known, not being deleted, not tainted for removal by the cluster
 *   autoscaler), so that load balancers drain a node before it goes.
 *
 * Time comes from an injected `now()` (milliseconds), so tests drive it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Node } from '../k8s/schemas.ts';
import { type Logger, silentLogger } from '../log/logger.ts';
import { closeHttp, type HostPort, listenHttp, parseBindAddress } from '../metrics/listen.ts';
import type { HealthCode, ProxyMetrics } from '../metrics/metrics.ts';
import type { IPFamily } from '../net/ip.ts';

export const DEFAULT_HEALTHZ_BIND_ADDRESS = '0.0.0.0:10256';

/** Taint the Cluster Autoscaler puts on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** Upstream's health timeout: twice the sync period. */
export function healthTimeoutForSyncPeriod(syncPeriodMs: number): number {
  return 2 * syncPeriodMs;
}

// ---- pure part ----

export interface HealthState {
  /** Per family: when the proxier last synced successfully (ms). */
  readonly lastUpdated: ReadonlyMap<IPFamily, number>;
  /** Per family: when the oldest change not yet synced was queued (ms). */
  readonly oldestPendingQueued: ReadonlyMap<IPFamily, number>;
}

export interface ProxierHealth {
  readonly lastUpdated: number;
  readonly healthy: boolean;
}

export interface ProxyHealth {
  /** The most recent `lastUpdated` of all families; undefined before the first sync. */
  readonly lastUpdated: number | undefined;
  readonly currentTime: number;
  /** True when every family is healthy. */
  readonly healthy: boolean;
  readonly status: ReadonlyMap<IPFamily, ProxierHealth>;
}

/**
 * Health at `now`. As upstream, only families that have synced at least once are judged: the
 * proxier marks itself updated when its sync loop starts, so a family with no `lastUpdated` has
 * no loop to wait for yet.
 */
export function computeHealth(state: HealthState, now: number, healthTimeoutMs: number): ProxyHealth {
  let lastUpdated: number | undefined;
  let healthy = true;
  const status = new Map<IPFamily, ProxierHealth>();
  for (const [family, updated] of state.lastUpdated) {
    if (lastUpdated === undefined || updated > lastUpdated) lastUpdated = updated;
    const queued = state.oldestPendingQueued.get(family);
    const late = queued !== undefined && now - queued >= healthTimeoutMs;
    if (late) healthy = false;
    status.set(family, { lastUpdated: updated, healthy: !late });
  }
  return { lastUpdated, currentTime: now, healthy, status };
}

/** Upstream's eligibility: the Node is known, not being deleted, and not tainted for deletion. */
export function isNodeEligible(node: Node | undefined): boolean {
  if (!node) return false;
  if (node.metadata.deletionTimestamp) return false;
  // The schema defaults an absent spec with `?? {}`, which TypeScript reduces to the type `{}`;
  // this view names the field the schema does parse.
  const spec = node.spec as { readonly taints?: readonly { readonly key: string }[] | undefined };
  return !(spec.taints ?? []).some((t) => t.key === TO_BE_DELETED_TAINT);
}

/**
 * A time as Go's encoding/json writes a time.Time (RFC 3339 with nanoseconds, trailing zeros of
 * the fraction dropped), in UTC; `undefined` is Go's zero time.
 */
export function formatGoTime(ms: number | undefined): string {
  if (ms === undefined) return '0001-01-01T00:00:00Z';
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  const fraction = nanos === 0 ? '' : `.${String(nanos).padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${fraction}Z`;
}

/**
 * The JSON body of /healthz (with `nodeEligible`) and /livez (without), with upstream's field
 * order. `ok` is the answer the endpoint gives (for /healthz it includes node eligibility). When
 * ok, the top-level `lastUpdated` is the current time: older releases reported the last
 * sync-loop run there even when nothing changed, and clients still read it that way.
 */
export function healthBody(health: ProxyHealth, ok: boolean, nodeEligible?: boolean): string {
  const body: Record<string, unknown> = {
    lastUpdated: formatGoTime(ok ? health.currentTime : health.lastUpdated),
    currentTime: formatGoTime(health.currentTime),
  };
  if (nodeEligible !== undefined) body.nodeEligible = nodeEligible;
  body.healthy = health.healthy;
  if (health.status.size > 0) {
    // Go writes map keys sorted.
    const families = [...health.status.keys()].sort();
    body.status = Object.fromEntries(
      families.map((f) => {
        const s = health.status.get(f)!;
        return [f, { lastUpdated: formatGoTime(s.lastUpdated), healthy: s.healthy }];
      }),
    );
  }
  return JSON.stringify(body);
}

// ---- the server ----

/** What the service health-check ports need to know about the proxy. */
export interface ProxyHealthChecker {
  /** Proxy health without node eligibility. */
  isHealthy(): boolean;
}

export interface ProxyHealthServerOptions {
  /** `host:port`; empty disables the HTTP server (the state is still tracked). */
  readonly bindAddress: string;
  /** Use `healthTimeoutForSyncPeriod(syncPeriod)`. */
  readonly healthTimeoutMs: number;
  readonly now?: () => number;
  readonly metrics?: Pick<ProxyMetrics, 'proxyHealthzTotal' | 'proxyLivezTotal'>;
  readonly logger?: Logger;
}

export class ProxyHealthServer implements ProxyHealthChecker {
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly hp: HostPort | undefined;
  private readonly metrics: ProxyHealthServerOptions['metrics'];
  private readonly log: Logger;
  private readonly bindAddress: string;
  private readonly lastUpdated = new Map<IPFamily, number>();
  private readonly oldestPendingQueued = new Map<IPFamily, number>();
  private node: Node | undefined;
  private server: Server | undefined;
  private starting: Promise<void> | undefined;
  private bound: AddressInfo | undefined;

  constructor(opts: ProxyHealthServerOptions) {
    this.now = opts.now ?? Date.now;
    this.timeoutMs = opts.healthTimeoutMs;
    this.bindAddress = opts.bindAddress;
    this.hp = opts.bindAddress.trim() === '' ? undefined : parseBindAddress(opts.bindAddress);
    this.metrics = opts.metrics;
    this.log = opts.logger ?? silentLogger();
  }

  /** The proxier of `family` received a change it has not synced yet; keeps the oldest time. */
  queuedUpdate(family: IPFamily): void {
    if (!this.oldestPendingQueued.has(family)) this.oldestPendingQueued.set(family, this.now());
  }

  /** The proxier of `family` synced successfully: nothing is pending any more. */
  updated(family: IPFamily): void {
    this.oldestPendingQueued.delete(family);
    this.lastUpdated.set(family, this.now());
  }

  /** The latest state of this node's Node object; undefined when it is unknown or gone. */
  syncNode(node: Node | undefined): void {
    this.node = node;
  }

  health(): ProxyHealth {
    return computeHealth(
      { lastUpdated: this.lastUpdated, oldestPendingQueued: this.oldestPendingQueued },
      this.now(),
      this.timeoutMs,
    );
  }

  isHealthy(): boolean {
    return this.health().healthy;
  }

  nodeEligible(): boolean {
    return isNodeEligible(this.node);
  }

  /**
   * Starts the HTTP server; resolves once listening, rejects with a ListenError naming the
   * address when it cannot bind (the caller decides whether that is fatal, as upstream's
   * --bind-address-hard-fail, and may call start() again). Does nothing when disabled.
   */
  start(): Promise<void> {
    const hp = this.hp;
    if (!hp) return Promise.resolve();
    this.starting ??= (async () => {
      const s = createServer((req, res) => this.handle(req, res));
      this.server = s;
      this.bound = await listenHttp(s, hp);
      this.log.info({ address: this.bindAddress }, 'Starting healthz HTTP server');
    })().catch((err: unknown) => {
      this.starting = undefined;
      this.server = undefined;
      throw err;
    });
    return this.starting;
  }

  /** Closes the HTTP server; idempotent. */
  async stop(): Promise<void> {
    const s = this.server;
    const pending = this.starting;
    this.server = undefined;
    this.starting = undefined;
    this.bound = undefined;
    await pending?.catch(() => {});
    if (s) await closeHttp(s);
  }

  /** The bound address while listening (the real port when asked for port 0). */
  address(): AddressInfo | undefined {
    return this.bound;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/healthz') {
      const health = this.health();
      const eligible = this.nodeEligible();
      const ok = health.healthy && eligible;
      this.reply(res, ok, healthBody(health, ok, eligible), 'proxyHealthzTotal');
    } else if (path === '/livez') {
      const health = this.health();
      this.reply(res, health.healthy, healthBody(health, health.healthy), 'proxyLivezTotal');
    } else {
      const body = '404 page not found\n';
      res.writeHead(404, {
        'Content-Type': 'text/plain; charset=utf-8',
        'X-Content-Type-Options': 'nosniff',
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(body);
    }
  }

  private reply(
    res: ServerResponse,
    ok: boolean,
    body: string,
    counter: 'proxyHealthzTotal' | 'proxyLivezTotal',
  ): void {
    const code: HealthCode = ok ? '200' : '503';
    this.metrics?.[counter].inc({ code });
    res.writeHead(ok ? 200 : 503, {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  }
}
