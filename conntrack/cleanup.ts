/**
 * Conntrack cleanup after each successful sync: the edge that reads and writes the kernel's
 * conntrack table, driven by the pure rules of stale.ts (targeted flushes) and reconciler.ts
 * (state-based reconcile). One call reads each needed table at most once (UDP, SCTP), applies
 * both rule sets to that one dump, and deletes the union with one pipelined request batch.
 *
 * When it reads the table:
 * - on the first call after the proxy starts (covers restarts and anything missed before);
 * - whenever the sync has targeted work (an endpoint or service event touching UDP/SCTP), never
 *   rate limited: that is the sync that installs the rules the flush depends on;
 * - when a UDP/SCTP service changed (a new frontend may have been reached while unprogrammed);
 * - when the caller forces it (the previous sync failed, so its events were consumed unclean);
 * - otherwise at most once per `minReconcileIntervalMs` (upstream's #129982: a burst of syncs on
 *   a large table must not dump it a hundred times).
 * Whenever a table is read, the reconciler runs over it too: the dump is the expensive part.
 *
 * SCTP. Upstream cleans UDP only; SCTP cleaning was written (#74073, #106662), silently lost,
 * and then left out on purpose (#115299) because nobody was sure what the right behaviour was:
 * SCTP is connection-oriented like TCP, and the old event-based code flushed every entry to a
 * service address, which for SCTP (as for TCP, #101607) would cut live associations, including
 * ones draining from a terminating pod (#108523). That concern is about deleting entries that
 * still lead somewhere. We never do: an entry is deleted only when its NAT target is not a
 * serving endpoint of the frontend (serving includes terminating-but-serving pods, so draining
 * is untouched), or when it was never NATed to anything while the frontend now has endpoints.
 * Such an association is already dead: its packets go to a pod that is gone or failing, or to
 * no backend at all, and a client that retries from the same port (INIT and HEARTBEAT reuse the
 * entry) stays blackholed until the entry times out, which a retrying client prevents (#70020,
 * #101968, #106651). Deleting the entry makes the next INIT create a fresh one through the
 * current DNAT rules. A healthy association is never deleted, so none is ever broken.
 */
import type { Logger } from '../pkg/log/logger.ts';
import type { ConntrackDeleteReason, ProxyMetrics } from '../pkg/metrics/metrics.ts';
import { type IPFamily, parseIP } from '../pkg/net/ip.ts';
import type { EndpointsMapUpdateResult } from '../proxier/endpointsmap.ts';
import type { ServiceMapUpdateResult } from '../proxier/servicemap.ts';
import type { EndpointsMap, ServicePortMap } from '../proxier/types.ts';
import {
  buildFrontendIndex,
  CLEANED_PROTOCOLS,
  type CleanedProtocol,
  flowKeys,
  type NodeInfo,
} from './frontends.ts';
import { flowKey, formatFlow } from './netlink/flow.ts';
import type { ConntrackClient, ConntrackFlow, ConntrackStats, DeleteResult } from './netlink/types.ts';
import { isStaleFlow } from './reconciler.ts';
import {
  hasTargetedWork,
  matchStale,
  mergeStaleFilters,
  type StaleFilters,
  staleFlowFilters,
} from './stale.ts';

export const DEFAULT_MIN_RECONCILE_INTERVAL_MS = 10_000;
/** Flows quoted in the log line of a call that deleted something. */
const LOG_EXAMPLES = 5;

export type CleanupMetrics = Pick<
  ProxyMetrics,
  | 'conntrackDeletedEntriesTotal'
  | 'conntrackDumpDuration'
  | 'conntrackDeleteDuration'
  | 'netlinkErrorsTotal'
  | 'conntrackReconcilerSyncDuration'
  | 'conntrackReconcilerDeletedEntriesTotal'
>;

export interface ConntrackCleanerOptions {
  readonly client: ConntrackClient;
  /** The proxier's family: the maps given to `afterSync` hold this family only. */
  readonly family: IPFamily;
  readonly metrics?: CleanupMetrics;
  readonly logger: Logger;
  /** Least time between two reconciles that no event asked for. Default 10 s. */
  readonly minReconcileIntervalMs?: number;
  /** Monotonic milliseconds (injected for tests); also times the report. */
  readonly now?: () => number;
  /** The hidden --debug-disable-conntrack-cleanup flag: never read or delete anything. */
  readonly disabled?: boolean;
}

export interface CleanupNode extends NodeInfo {
  /**
   * The node's own addresses of this family (those a NodePort answers on, including 127.0.0.1
   * with localhost NodePorts). Entries to a NodePort port on another host are not ours.
   */
  readonly localIPs: readonly string[];
}

export interface CleanupInput {
  /** The proxier's maps after this sync's update. */
  readonly serviceMap: ServicePortMap;
  readonly endpointsMap: EndpointsMap;
  /** What this sync's updates reported. */
  readonly serviceResult: ServiceMapUpdateResult;
  readonly endpointsResult: EndpointsMapUpdateResult;
  readonly node: CleanupNode;
  /**
   * Reconcile regardless of the rate limit. Pass true on the first successful sync after a
   * failed one: the failed sync consumed its change results, and its targeted flushes with them.
   */
  readonly forceReconcile?: boolean;
}

export type DeletedCounts = Readonly<Record<ConntrackDeleteReason, number>>;

export interface CleanupReport {
  /** Entries read from the kernel (all dumps together). */
  readonly dumped: number;
  /** Dumps made (one per protocol at most). */
  readonly dumps: number;
  /**
   * Entries removed per reason: deleted by us or found already gone (expired in the meantime),
   * which the kernel does not tell apart per entry in a batch.
   */
  readonly deleted: DeletedCounts;
  /** Of those, entries the kernel reported already gone. */
  readonly alreadyGone: number;
  /** Failed dumps plus entries that could not be deleted. */
  readonly errors: number;
  /** Netlink requests written (dump attempts plus delete messages). */
  readonly netlinkRequests: number;
  readonly durationMs: number;
  /** Whether the reconciler ran over every table it needed. */
  readonly reconciled: boolean;
}

export interface ConntrackCleaner {
  /**
   * Runs cleanup for one sync; call it after every successful restore. Never rejects: errors
   * are logged, counted in metrics and in the report, and the filters of a call that could not
   * finish are kept and retried on the next one. Calls are serialised.
   */
  afterSync(input: CleanupInput): Promise<CleanupReport>;
}

const zeroCounts = (): Record<ConntrackDeleteReason, number> => ({
  'empty-to-serving': 0,
  'endpoint-gone': 0,
  'service-deleted': 0,
  reconciler: 0,
});

function requestsSince(before: ConntrackStats, after: ConntrackStats): number {
  return after.dumpRequests - before.dumpRequests + (after.deleteRequests - before.deleteRequests);
}

/** Canonical local addresses of one family; anything unparsable or of the other family is dropped. */
function canonicalLocalIPs(ips: readonly string[], family: IPFamily): string[] {
  const out: string[] = [];
  for (const s of ips) {
    const ip = parseIP(s);
    if (ip !== undefined && ip.family === family) out.push(ip.text);
  }
  return out;
}

/** Change results with nothing in them, for the first call. */
const NO_CHANGES: { serviceResult: ServiceMapUpdateResult; endpointsResult: EndpointsMapUpdateResult } = {
  serviceResult: { updatedServices: new Set(), deletedServicePorts: [], deletedUDPClusterIPs: new Set() },
  endpointsResult: {
    updatedServices: new Set(),
    previous: new Map(),
    current: new Map(),
    staleEndpoints: [],
    newlyServingServicePorts: new Set(),
    lastChangeTriggerTimes: new Map(),
    conntrackCleanupRequired: false,
  },
};

interface Planned {
  readonly flow: ConntrackFlow;
  readonly reason: ConntrackDeleteReason;
}

export function createConntrackCleaner(opts: ConntrackCleanerOptions): ConntrackCleaner {
  const { client, family, metrics, logger } = opts;
  const minInterval = opts.minReconcileIntervalMs ?? DEFAULT_MIN_RECONCILE_INTERVAL_MS;
  const now = opts.now ?? (() => performance.now());
  const seconds = (ms: number) => ms / 1000;
  let lastReconcileAt: number | undefined;
  let calls = 0;
  let pending: StaleFilters | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  async function dumpTables(
    protocols: readonly CleanedProtocol[],
  ): Promise<{ flows: ConntrackFlow[]; dumps: number; failed: CleanedProtocol[] }> {
    const flows: ConntrackFlow[] = [];
    const failed: CleanedProtocol[] = [];
    let dumps = 0;
    for (const protocol of protocols) {
      const t0 = now();
      dumps++;
      try {
        const got = await client.dump(family, protocol);
        for (const f of got) flows.push(f);
      } catch (err) {
        failed.push(protocol);
        metrics?.netlinkErrorsTotal.inc({ operation: 'dump' });
        logger.error(
          { err, family, protocol },
          'Failed to dump conntrack entries; cleanup retried next sync',
        );
      } finally {
        metrics?.conntrackDumpDuration.observe({ ip_family: family }, seconds(now() - t0));
      }
    }
    return { flows, dumps, failed };
  }

  async function deleteFlows(planned: readonly Planned[]): Promise<DeleteResult> {
    const t0 = now();
    try {
      return await client.delete(planned.map((p) => p.flow));
    } finally {
      metrics?.conntrackDeleteDuration.observe({ ip_family: family }, seconds(now() - t0));
    }
  }

  async function run(input: CleanupInput): Promise<CleanupReport> {
    const start = now();
    const statsBefore = client.stats();
    const deleted = zeroCounts();
    const report = (extra: Partial<CleanupReport>): CleanupReport => ({
      dumped: 0,
      dumps: 0,
      deleted,
      alreadyGone: 0,
      errors: 0,
      netlinkRequests: requestsSince(statsBefore, client.stats()),
      durationMs: now() - start,
      reconciled: false,
      ...extra,
    });
    if (opts.disabled) {
      logger.debug({ family }, 'Conntrack cleanup disabled (--debug-disable-conntrack-cleanup)');
      return report({});
    }

    const node = { ...input.node, localIPs: canonicalLocalIPs(input.node.localIPs, family) };
    const live = buildFrontendIndex(input.serviceMap, input.endpointsMap, node);
    // On the first call every port looks newly serving (the maps started empty), which says
    // nothing about the flows; the reconciler, which always runs then, deletes exactly what is
    // stale and labels it as such. Later calls use the events.
    const first = calls++ === 0;
    const fresh = staleFlowFilters(
      first ? NO_CHANGES.serviceResult : input.serviceResult,
      first ? NO_CHANGES.endpointsResult : input.endpointsResult,
      input.serviceMap,
      input.endpointsMap,
      node,
      live,
    );
    const filters = pending === undefined ? fresh : mergeStaleFilters(pending, fresh);
    pending = undefined;

    const targeted = hasTargetedWork(filters);
    const reconcileDue =
      first ||
      lastReconcileAt === undefined ||
      input.forceReconcile === true ||
      filters.changedServicePorts > 0 ||
      now() - lastReconcileAt >= minInterval;
    const protocols = CLEANED_PROTOCOLS.filter(
      (p) => filters.protocols.has(p) || (reconcileDue && live.protocols.has(p)),
    );
    if (protocols.length === 0) {
      // Nothing to flush and no UDP/SCTP frontend to reconcile (or not due yet).
      if (reconcileDue) lastReconcileAt = now();
      logger.debug({ family, targeted, reconcileDue }, 'Conntrack cleanup: nothing to read');
      return report({ reconciled: reconcileDue });
    }

    const { flows, dumps, failed } = await dumpTables(protocols);
    // Every table read is reconciled too; the reconcile counts as done only if every table with
    // a frontend was read.
    const reconciled = failed.length === 0 && [...live.protocols].every((p) => protocols.includes(p));
    const state = { index: live, localIPs: filters.localIPs };
    const planned: Planned[] = [];
    for (const flow of flows) {
      const keys = flowKeys(flow, filters.localIPs);
      const reason: ConntrackDeleteReason | undefined =
        matchStale(flow, filters, keys) ?? (isStaleFlow(flow, state, keys) ? 'reconciler' : undefined);
      if (reason !== undefined) planned.push({ flow, reason });
    }

    let errors = failed.length;
    let alreadyGone = 0;
    if (planned.length > 0) {
      const result = await deleteFlows(planned);
      alreadyGone = result.alreadyGone;
      // By key, not identity: the client may hand back copies of the flows it was given.
      const failedFlows = new Set(result.errors.map((e) => flowKey(e.flow)));
      for (const p of planned) if (!failedFlows.has(flowKey(p.flow))) deleted[p.reason]++;
      if (result.errors.length > 0) {
        errors += result.errors.length;
        metrics?.netlinkErrorsTotal.inc({ operation: 'delete' }, result.errors.length);
        const sample = result.errors[0];
        logger.error(
          {
            family,
            failed: result.errors.length,
            errno: sample?.errno,
            example: sample ? formatFlow(sample.flow) : undefined,
          },
          'Failed to delete some conntrack entries; retried next sync',
        );
      }
    }
    // A flush that could not finish is kept: its events will not come again.
    if (errors > 0 && targeted) pending = filters;
    if (reconciled) lastReconcileAt = now();

    for (const reason of Object.keys(deleted) as ConntrackDeleteReason[]) {
      if (deleted[reason] > 0)
        metrics?.conntrackDeletedEntriesTotal.inc({ reason, ip_family: family }, deleted[reason]);
    }
    if (deleted.reconciler > 0)
      metrics?.conntrackReconcilerDeletedEntriesTotal.inc({ ip_family: family }, deleted.reconciler);
    const durationMs = now() - start;
    if (reconciled)
      metrics?.conntrackReconcilerSyncDuration.observe({ ip_family: family }, seconds(durationMs));

    const total = planned.length - (errors - failed.length);
    const fields = {
      family,
      protocols,
      dumped: flows.length,
      deleted: total,
      byReason: Object.fromEntries(Object.entries(deleted).filter(([, n]) => n > 0)),
      reconciled,
      durationMs: Math.round(durationMs),
    };
    if (total > 0) {
      const examples = planned.slice(0, LOG_EXAMPLES).map((p) => `${p.reason}: ${formatFlow(p.flow)}`);
      logger.info({ ...fields, examples }, 'Deleted stale conntrack entries');
    } else {
      logger.debug(fields, 'Conntrack cleanup found no stale entries');
    }
    return report({ dumped: flows.length, dumps, alreadyGone, errors, durationMs, reconciled });
  }

  return {
    afterSync(input) {
      const next = queue.then(async () => {
        try {
          return await run(input);
        } catch (err) {
          // The client never rejects on delete and dumps are caught; this is a bug guard so the
          // sync loop never sees an exception from cleanup.
          logger.error({ err, family }, 'Conntrack cleanup failed');
          return {
            dumped: 0,
            dumps: 0,
            deleted: zeroCounts(),
            alreadyGone: 0,
            errors: 1,
            netlinkRequests: 0,
            durationMs: 0,
            reconciled: false,
          };
        }
      });
      queue = next;
      return next;
    },
  };
}
