/**
 * The state-based reconciler (pure): compares dumped UDP/SCTP flows with the current service and
 * endpoints maps and names the stale ones. It covers what no event explained: a proxy restart,
 * events merged or lost, a sync whose cleanup failed. As upstream since 1.32 (#127318), without
 * its regressions:
 *
 * - ports with no serving endpoint are not skipped (#139628): a flow DNATed to a former endpoint
 *   is stale even while nothing replaced it (a one-way UDP sender would otherwise keep feeding a
 *   dead pod IP until an endpoint came back);
 * - SCTP is handled like UDP (#115299, see cleanup.ts);
 * - O(flows + endpoints): the state is a few maps built once per sync (frontends.ts) and each
 *   flow costs two lookups, instead of one filter per stale flow matched against every flow
 *   (#135323);
 * - endpoints are matched by IP and port (#130484).
 * Deleted services (#141371) are not the reconciler's business: their frontends are gone from
 * the maps, so nothing here can recognise their flows; the targeted service-deleted filter
 * (stale.ts) flushes them in the sync that removes them.
 *
 * The rule, for a flow whose original destination is a frontend (or a NodePort on a node
 * address):
 * 1. reply source is a serving endpoint of the frontend → healthy, never touched (#122740);
 * 2. the frontend has endpoints this node DNATs to → stale (DNATed elsewhere, or un-NATed: the
 *    #48524 blackhole);
 * 3. no endpoint to DNAT to, and the flow was DNATed → stale (#139628);
 * 4. no endpoint to DNAT to, and the flow was never DNATed → left alone.
 *
 * Why case 4 is left alone: deleting it buys nothing while there is nothing to DNAT to, since
 * the client's next packet meets the same rules (REJECT or DROP, or no rule yet) and no entry can
 * lead it anywhere better; and a sender that keeps going would make every reconcile delete (and
 * count) one entry per client for as long as the service stays empty. It can only turn into a
 * blackhole once endpoints appear, and that same sync removes it: the endpoint change is an
 * empty-to-serving event (stale.ts), the sync that carries it dumps the table and reconciles, and
 * then case 2 applies. When the event itself is lost (restart, failed sync), the first sync or
 * the forced reconcile after the failure sees the frontend with targets and applies case 2. So
 * no flow stays blackholed once endpoints exist, and no flow pointing at a serving endpoint is
 * ever touched.
 *
 * Flows to addresses that are not frontends are never touched.
 */

import type { EndpointsMap, ServicePortMap } from '../proxier/types.ts';
import {
  buildFrontendIndex,
  type FlowKeys,
  type FrontendIndex,
  type FrontendState,
  flowKeys,
  isCleanedProtocol,
  isUnNATed,
  type NodeInfo,
} from './frontends.ts';
import type { ConntrackFlow } from './netlink/types.ts';

export interface ReconcileState {
  readonly index: FrontendIndex;
  /** The node's own addresses (canonical): a NodePort flow is one sent to one of them. */
  readonly localIPs: ReadonlySet<string>;
}

export interface ReconcileNode extends NodeInfo {
  readonly localIPs: ReadonlySet<string> | readonly string[];
}

/** Builds the reconciler's state from the proxier's current maps (one family). */
export function buildReconcileState(
  serviceMap: ServicePortMap,
  endpointsMap: EndpointsMap,
  node: ReconcileNode,
): ReconcileState {
  return { index: buildFrontendIndex(serviceMap, endpointsMap, node), localIPs: new Set(node.localIPs) };
}

export interface StaleFlow {
  readonly flow: ConntrackFlow;
  readonly reason: 'reconciler';
}

function staleFor(flow: ConntrackFlow, endpoint: string, state: FrontendState): boolean {
  if (state.serving.has(endpoint)) return false;
  if (state.hasTargets) return true;
  return !isUnNATed(flow);
}

/**
 * Whether the reconciler deletes this flow. A flow sent to a node address on a NodePort is
 * judged as a NodePort flow unless that address:port is itself a frontend (an external IP that
 * is also a node IP): the more specific frontend wins.
 */
export function isStaleFlow(
  flow: ConntrackFlow,
  state: ReconcileState,
  keys: FlowKeys = flowKeys(flow, state.localIPs),
): boolean {
  if (!isCleanedProtocol(flow.protocol)) return false;
  const frontend = state.index.frontends.get(keys.frontend);
  if (frontend !== undefined) return staleFor(flow, keys.endpoint, frontend);
  if (keys.nodePort === undefined) return false;
  const nodePort = state.index.nodePorts.get(keys.nodePort);
  return nodePort !== undefined && staleFor(flow, keys.endpoint, nodePort);
}

/** The stale flows among `flows`, in input order. O(flows); TCP flows are never returned. */
export function reconcileFlows(flows: Iterable<ConntrackFlow>, state: ReconcileState): StaleFlow[] {
  const out: StaleFlow[] = [];
  for (const flow of flows) if (isStaleFlow(flow, state)) out.push({ flow, reason: 'reconciler' });
  return out;
}
