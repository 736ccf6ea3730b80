/**
 * An in-memory ConntrackClient for the proxier's and the cleanup rules' unit tests. It keeps a
 * flow table keyed as the kernel keys entries (family, protocol, zone, original tuple), answers
 * dumps and deletes from it, records every call, and counts requests exactly as the real client
 * does (one per dump, one per flow deleted), so tests can assert "one dump plus N deletes".
 */
import { parseIP } from '../../pkg/net/ip.ts';
import { EBADF, ENOENT } from './constants.ts';
import { ConntrackError } from './errors.ts';
import { flowKey } from './flow.ts';
import type {
  ConntrackClient,
  ConntrackFamily,
  ConntrackFlow,
  ConntrackProtocol,
  ConntrackStats,
  DeleteError,
  DeleteResult,
  DumpFilter,
} from './types.ts';

export type FakeConntrackCall =
  | {
      readonly kind: 'dump';
      readonly family: ConntrackFamily;
      readonly protocol: ConntrackProtocol;
      readonly filter?: DumpFilter;
    }
  | { readonly kind: 'delete'; readonly flows: readonly ConntrackFlow[] };

export interface FakeConntrackClient extends ConntrackClient {
  /** The table now, in insertion order. */
  flows(): ConntrackFlow[];
  /** Every call so far, oldest first. */
  readonly calls: readonly FakeConntrackCall[];
  /** Adds entries (an entry with the key of an existing one replaces it). */
  add(...flows: ConntrackFlow[]): void;
  /** Makes deleting this entry fail with `errno` (it stays in the table). */
  failDelete(flow: ConntrackFlow, errno: number, message?: string): void;
  /** Makes the next dump reject with this error. */
  failNextDump(err: Error): void;
  readonly closed: boolean;
}

/** Canonical text of the addresses of a filter set, as the real client compares them by value. */
function canonicalSet(texts: Iterable<string> | undefined): Set<string> | undefined {
  if (texts === undefined) return undefined;
  const out = new Set<string>();
  for (const t of texts) {
    const ip = parseIP(t);
    if (ip) out.add(ip.text);
  }
  return out;
}

/** Whether a flow passes a dump filter (the real client checks the same on the entry's bytes). */
export function passesDumpFilter(flow: ConntrackFlow, filter: DumpFilter | undefined): boolean {
  const dsts = canonicalSet(filter?.originalDestinations);
  if (dsts !== undefined && !dsts.has(flow.original.dst)) return false;
  const srcs = canonicalSet(filter?.replySources);
  return srcs === undefined || srcs.has(flow.reply.src);
}

export function createFakeConntrackClient(initial: readonly ConntrackFlow[] = []): FakeConntrackClient {
  const table = new Map<string, ConntrackFlow>();
  const failures = new Map<string, { errno: number; message: string }>();
  const calls: FakeConntrackCall[] = [];
  const counters = { dumpRequests: 0, deleteRequests: 0, errors: 0 };
  let nextDumpError: Error | undefined;
  let closed = false;

  const add = (...flows: ConntrackFlow[]) => {
    for (const f of flows) table.set(flowKey(f), f);
  };
  add(...initial);

  return {
    async dump(family, protocol, filter) {
      if (closed) throw new ConntrackError('closed', 'conntrack client is closed', EBADF);
      calls.push(
        filter === undefined
          ? { kind: 'dump', family, protocol }
          : { kind: 'dump', family, protocol, filter },
      );
      counters.dumpRequests++;
      if (nextDumpError) {
        const err = nextDumpError;
        nextDumpError = undefined;
        counters.errors++;
        throw err;
      }
      return [...table.values()].filter(
        (f) => f.family === family && f.protocol === protocol && passesDumpFilter(f, filter),
      );
    },
    async delete(flows): Promise<DeleteResult> {
      calls.push({ kind: 'delete', flows: [...flows] });
      let deleted = 0;
      let alreadyGone = 0;
      const errors: DeleteError[] = [];
      for (const flow of flows) {
        if (closed) {
          errors.push({ flow, errno: EBADF, message: 'conntrack client is closed' });
          continue;
        }
        counters.deleteRequests++;
        const key = flowKey(flow);
        const failure = failures.get(key);
        if (failure) errors.push({ flow, ...failure });
        else if (table.delete(key)) deleted++;
        else alreadyGone++;
      }
      counters.errors += errors.length;
      return { deleted, alreadyGone, errors, requests: closed ? 0 : flows.length };
    },
    stats: (): ConntrackStats => ({ ...counters }),
    close() {
      closed = true;
    },
    flows: () => [...table.values()],
    calls,
    add,
    failDelete(flow, errno, message) {
      failures.set(flowKey(flow), {
        errno,
        message: message ?? (errno === ENOENT ? 'ENOENT' : `errno ${errno}`),
      });
    },
    failNextDump(err) {
      nextDumpError = err;
    },
    get closed() {
      return closed;
    },
  };
}
