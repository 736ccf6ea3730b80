/**
 * The ctnetlink client: lists and deletes conntrack entries over one NETLINK_NETFILTER socket of
 * the `netlink` package. It replaces upstream's vishvananda/netlink handle
 * (pkg/proxy/conntrack/conntrack.go) with two differences that matter at scale: a dump asks the
 * kernel for one protocol only (CTA_FILTER), and deletes are pipelined, so cleaning 16 stale
 * entries out of 100,000 costs one dump and 16 small writes, not a dump per filter.
 *
 * The socket lives as long as the client; it keeps the event loop alive only while an operation
 * runs. Operations run one at a time (a netlink socket carries one dump at a time).
 */
import { getSystemErrorMessage, getSystemErrorName } from 'node:util';
import { RawNetlinkSocket } from 'netlink';
import { type Logger, silentLogger } from '../../pkg/log/logger.ts';
import {
  EBADF,
  EEXIST,
  EINTR,
  EINVAL,
  ENOBUFS,
  ENOENT,
  ETIMEDOUT,
  NETLINK_NETFILTER,
  NLMSG_ERROR,
  NLMSG_OVERRUN,
} from './constants.ts';
import { compileDumpFilter, type DumpQuery, readDumpDatagram } from './dump.ts';
import { ConntrackError } from './errors.ts';
import {
  buildDeleteRequest,
  buildDumpRequest,
  buildNewRequest,
  forEachMessage,
  type NewConntrackFlow,
  parseErrorMessage,
} from './messages.ts';
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

/** An error from the socket layer; `errno` is positive, as the `netlink` package reports it. */
export interface SocketError {
  readonly message: string;
  readonly errno?: number;
  readonly code?: string;
}

/**
 * The narrow socket the client needs. The default wraps `RawNetlinkSocket`; tests pass a fake
 * that answers requests with byte fixtures.
 */
export interface NetlinkSocketLike {
  /** Writes the buffers as one datagram (one sendmsg); the kernel handles each message in it. */
  send(data: readonly Uint8Array[], callback: (err?: SocketError) => void): void;
  /** Every received datagram, whole (it may hold several netlink messages). */
  onMessage(fn: (datagram: Buffer) => void): void;
  /** Receive errors; ENOBUFS means the kernel dropped messages for this socket. */
  onError(fn: (err: SocketError) => void): void;
  ref(): void;
  unref(): void;
  close(): void;
}

export type SocketFactory = () => NetlinkSocketLike;

export interface ConntrackClientOptions {
  readonly logger?: Logger;
  /** For tests: where sockets come from. Default: a NETLINK_NETFILTER socket of this netns. */
  readonly socketFactory?: SocketFactory;
  /** How long one dump or one batch of requests may wait for the kernel (default 30 s). */
  readonly timeoutMs?: number;
  /** Attempts per dump when it is interrupted or loses messages (default 5). */
  readonly dumpAttempts?: number;
  /** Attempts per batch of deletes when acks were lost (default 3). */
  readonly batchAttempts?: number;
  /**
   * Requests in flight at once (default 64). Every ack takes room in the socket's receive
   * buffer; past that room the kernel drops acks and reports ENOBUFS, so the window keeps the
   * unread acks well under the default 208 KiB buffer.
   */
  readonly window?: number;
}

/** What `insert` did, for benchmarks and kernel tests. */
export interface InsertResult {
  readonly created: number;
  /** Entries that already existed (EEXIST); left unchanged. */
  readonly existed: number;
  readonly errors: readonly {
    readonly flow: NewConntrackFlow;
    readonly errno: number;
    readonly message: string;
  }[];
}

/** The real client: the proxier's interface plus entry creation for benchmarks and tests. */
export interface ConntrackNetlinkClient extends ConntrackClient {
  /** Creates entries (IPCTNL_MSG_CT_NEW), pipelined like deletes; not counted in `stats()`. */
  insert(flows: readonly NewConntrackFlow[]): Promise<InsertResult>;
}

const DEFAULT_TIMEOUT_MS = 30_000;
// The kernel clamps this to net.core.rmem_max; asking for more than the default helps where an
// administrator raised that limit (dump replies arrive in bursts).
const RECV_BUFFER_BYTES = 4 << 20;
/**
 * Bytes read per datagram. The kernel sizes each dump datagram after the largest read the socket
 * has seen, up to 32 KiB (netlink_recvmsg, max_recvmsg_len). The `netlink` package by default
 * peeks at each datagram and reads exactly its size, which keeps dump datagrams at one page
 * (about 4 KiB) and costs two system calls each; one 32 KiB read lets the kernel fill eight times
 * as much per call, which more than halved the kernel time of a 100,000-entry dump. A datagram
 * that does not fit is reported as truncated (an error), never silently cut.
 */
const RECV_DATAGRAM_BYTES = 32 << 10;
const EMSGSIZE = 90;

/** Opens a NETLINK_NETFILTER socket in the calling process's network namespace. */
export function openNetfilterSocket(): NetlinkSocketLike {
  const raw = new RawNetlinkSocket(NETLINK_NETFILTER, {
    recvBufferSize: RECV_BUFFER_BYTES,
    sendBufferSize: RECV_BUFFER_BYTES,
    messagePeeking: false,
    msgBufferSize: RECV_DATAGRAM_BYTES,
  });
  raw.unref();
  return {
    send: (data, callback) => raw.send(data as Uint8Array[], undefined, (err) => callback(err)),
    onMessage: (fn) => {
      raw.on('message', (msg) => fn(msg));
    },
    onError: (fn) => {
      raw.on('error', (err) => fn(err));
      // Part of the datagram is lost: whatever waited for it must fail, not read a cut message.
      raw.on('truncatedMessage', (msg, rinfo) =>
        fn({
          message: `netlink datagram of ${rinfo.truncated ?? '?'} bytes truncated to ${msg.length}`,
          errno: EMSGSIZE,
          code: 'EMSGSIZE',
        }),
      );
    },
    ref: () => raw.ref(),
    unref: () => raw.unref(),
    close: () => raw.close(),
  };
}

function errnoText(errno: number): string {
  try {
    return `${getSystemErrorName(-errno)}: ${getSystemErrorMessage(-errno)}`;
  } catch {
    return `errno ${errno}`;
  }
}

/** Handlers of the operation that currently owns the socket. */
interface Operation {
  onData(datagram: Buffer): void;
  onError(err: SocketError): void;
}

/** Internal marker: the kernel dropped messages for us (ENOBUFS), so the attempt is void. */
class Overrun extends Error {}

interface DumpAttempt {
  readonly flows: ConntrackFlow[];
  readonly interrupted: boolean;
}

/** Per-request outcome of a batch: 0 success, a positive errno, or undefined (no answer yet). */
type Outcomes = (number | undefined)[];

export function createConntrackClient(opts: ConntrackClientOptions = {}): ConntrackNetlinkClient {
  const log = (opts.logger ?? silentLogger()).child({ component: 'conntrack-netlink' });
  const factory = opts.socketFactory ?? openNetfilterSocket;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dumpAttempts = Math.max(1, opts.dumpAttempts ?? 5);
  const batchAttempts = Math.max(1, opts.batchAttempts ?? 3);
  const window = Math.max(1, opts.window ?? 64);

  let sock: NetlinkSocketLike | undefined;
  let current: Operation | undefined;
  /** Ends the running operation at once (used by close()). */
  let abortCurrent: ((err: Error) => void) | undefined;
  let closed = false;
  let seqCounter = (Math.random() * 0x7fffffff) >>> 0;
  const counters = { dumpRequests: 0, deleteRequests: 0, errors: 0 };
  let tail: Promise<unknown> = Promise.resolve();

  const nextSeq = () => {
    seqCounter = (seqCounter + 1) >>> 0;
    if (seqCounter === 0) seqCounter = 1;
    return seqCounter;
  };

  function socket(): NetlinkSocketLike {
    if (closed) throw new ConntrackError('closed', 'conntrack client is closed', EBADF);
    if (sock) return sock;
    let s: NetlinkSocketLike;
    try {
      s = factory();
    } catch (err) {
      const errno = (err as SocketError).errno;
      throw new ConntrackError(
        'socket-failed',
        `cannot open netfilter netlink socket: ${String(err)}`,
        errno,
        err,
      );
    }
    // Events of a socket we already dropped (after an overrun) belong to nobody.
    s.onMessage((d) => {
      if (s === sock) current?.onData(d);
    });
    s.onError((e) => {
      if (s === sock) current?.onError(e);
    });
    sock = s;
    return s;
  }

  /** Drops the socket: its kernel-side state (a dump in progress, lost acks) goes with it. */
  function resetSocket(): void {
    const s = sock;
    sock = undefined;
    s?.close();
  }

  /** Runs operations one after another. */
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs `start` with the socket referenced and `op` receiving its events, until `settle` is
   * called; a timeout settles with a ConntrackError('timeout').
   */
  function withOperation<T>(
    body: (
      settle: (err: Error | undefined, value?: T) => void,
    ) => Operation & { start(s: NetlinkSocketLike): void },
    what: string,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let s: NetlinkSocketLike;
      try {
        s = socket();
      } catch (err) {
        reject(err);
        return;
      }
      let settled = false;
      const timer = setTimeout(() => {
        settle(
          new ConntrackError(
            'timeout',
            `no answer from the kernel to ${what} within ${timeoutMs} ms`,
            ETIMEDOUT,
          ),
        );
      }, timeoutMs);
      function settle(err: Error | undefined, value?: T): void {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (current === op) {
          current = undefined;
          abortCurrent = undefined;
        }
        if (sock === s) s.unref();
        if (err) reject(err);
        else resolve(value as T);
      }
      const op = body(settle);
      current = op;
      abortCurrent = (err) => settle(err);
      s.ref();
      try {
        op.start(s);
      } catch (err) {
        settle(err as Error);
      }
    });
  }

  function dumpOnce(
    family: ConntrackFamily,
    protocol: ConntrackProtocol,
    filter: DumpQuery['filter'],
  ): Promise<DumpAttempt> {
    const query: DumpQuery = { seq: nextSeq(), family, protocol, filter };
    return withOperation<DumpAttempt>((settle) => {
      const flows: ConntrackFlow[] = [];
      let interrupted = false;
      return {
        start(s) {
          counters.dumpRequests++;
          s.send([buildDumpRequest(family, protocol, query.seq)], (err) => {
            if (err) settle(new ConntrackError('socket-failed', `dump request: ${err.message}`, err.errno));
          });
        },
        onData(d) {
          let read: ReturnType<typeof readDumpDatagram>;
          try {
            // The kernel already filtered by family and (5.9+) protocol; the reader checks both
            // again, which is what filters on older kernels.
            read = readDumpDatagram(d, query, flows);
          } catch (err) {
            settle(err as Error);
            return;
          }
          if (read.interrupted) interrupted = true;
          const end = read.end;
          if (end === undefined) return;
          if (end.kind === 'overrun') settle(new Overrun());
          else if (end.errno === 0 || end.errno === EINTR)
            settle(undefined, { flows, interrupted: interrupted || end.errno === EINTR });
          else if (end.kind === 'done')
            settle(
              new ConntrackError('dump-failed', `conntrack dump failed: ${errnoText(end.errno)}`, end.errno),
            );
          else
            settle(
              new ConntrackError('dump-failed', `conntrack dump refused: ${errnoText(end.errno)}`, end.errno),
            );
        },
        onError(err) {
          if (err.errno === ENOBUFS) settle(new Overrun());
          else settle(new ConntrackError('socket-failed', `receiving dump: ${err.message}`, err.errno));
        },
      };
    }, `a ${family} ${protocol} dump`);
  }

  async function dump(
    family: ConntrackFamily,
    protocol: ConntrackProtocol,
    dumpFilter: DumpFilter | undefined,
  ): Promise<ConntrackFlow[]> {
    const filter = compileDumpFilter(dumpFilter);
    for (let attempt = 1; ; attempt++) {
      let result: DumpAttempt;
      try {
        result = await dumpOnce(family, protocol, filter);
      } catch (err) {
        // A lost or timed-out dump may still be running in the kernel for this socket; a new
        // socket starts clean.
        if (!(err instanceof ConntrackError && err.code === 'closed')) resetSocket();
        if (err instanceof Overrun) {
          if (attempt < dumpAttempts) {
            log.debug({ family, protocol, attempt }, 'conntrack dump lost messages (ENOBUFS), dumping again');
            continue;
          }
          counters.errors++;
          throw new ConntrackError(
            'dump-overrun',
            `conntrack dump lost messages ${attempt} times (ENOBUFS)`,
            ENOBUFS,
          );
        }
        counters.errors++;
        throw err;
      }
      if (!result.interrupted) return result.flows;
      if (attempt >= dumpAttempts) {
        // As upstream (conntrack.go / cleanup.go): go on with what we have rather than not at all.
        log.warn(
          { family, protocol, attempts: attempt, flows: result.flows.length },
          'conntrack dump kept being interrupted, using a partial list',
        );
        return result.flows;
      }
      log.debug({ family, protocol, attempt }, 'conntrack dump interrupted (EINTR), dumping again');
    }
  }

  /**
   * Writes `messages` with at most `window` unanswered, each datagram carrying as many as the
   * window allows, and records each answer's errno in `outcomes`. Resolves when every request
   * was answered; rejects with Overrun when the kernel dropped answers.
   */
  function batchOnce(
    indices: readonly number[],
    build: (index: number, seq: number) => Buffer | number,
    outcomes: Outcomes,
    onWrite: (count: number) => void,
    what: string,
  ): Promise<void> {
    return withOperation<void>((settle) => {
      const inflight = new Map<number, number>();
      let next = 0;
      let sock: NetlinkSocketLike;
      const finished = () => next >= indices.length && inflight.size === 0;
      function fill(): void {
        while (inflight.size < window && next < indices.length) {
          const chunk: Buffer[] = [];
          const seqs: number[] = [];
          while (inflight.size < window && next < indices.length) {
            const index = indices[next++]!;
            const seq = nextSeq();
            const request = build(index, seq);
            if (typeof request === 'number') {
              outcomes[index] = request;
              continue;
            }
            inflight.set(seq, index);
            seqs.push(seq);
            chunk.push(request);
          }
          if (chunk.length === 0) continue;
          onWrite(chunk.length);
          sock.send(chunk, (err) => {
            if (!err) return;
            // Nothing of this datagram reached the kernel: each request fails with the errno.
            for (const seq of seqs) {
              const index = inflight.get(seq);
              if (index === undefined) continue;
              inflight.delete(seq);
              outcomes[index] = err.errno ?? EBADF;
            }
            if (finished()) settle(undefined);
          });
        }
      }
      return {
        start(s) {
          sock = s;
          fill();
          if (finished()) settle(undefined);
        },
        onData(d) {
          try {
            forEachMessage(d, (m) => {
              if (m.type === NLMSG_OVERRUN) throw new Overrun();
              if (m.type !== NLMSG_ERROR) return;
              const { errno, seq } = parseErrorMessage(d, m);
              const index = inflight.get(seq);
              if (index === undefined) return;
              inflight.delete(seq);
              outcomes[index] = errno;
            });
          } catch (err) {
            settle(err as Error);
            return;
          }
          if (finished()) settle(undefined);
          // Refill once half the window is answered, so each write carries many requests
          // instead of one write per ack.
          else if (inflight.size <= window / 2) fill();
        },
        onError(err) {
          if (err.errno === ENOBUFS) settle(new Overrun());
          else
            settle(
              new ConntrackError('socket-failed', `receiving ${what} answers: ${err.message}`, err.errno),
            );
        },
      };
    }, what);
  }

  /**
   * Sends one request per item and returns each one's errno. When acks are lost (ENOBUFS) the
   * unanswered requests go again on a fresh socket: a delete whose ack was lost then answers
   * ENOENT and is reported as already gone, which is the state we wanted anyway.
   */
  async function batch(
    count: number,
    build: (index: number, seq: number) => Buffer | number,
    onWrite: (n: number) => void,
    what: string,
  ): Promise<number[]> {
    const outcomes: Outcomes = new Array<number | undefined>(count).fill(undefined);
    for (let attempt = 1; attempt <= batchAttempts; attempt++) {
      const todo: number[] = [];
      for (let i = 0; i < count; i++) if (outcomes[i] === undefined) todo.push(i);
      if (todo.length === 0) break;
      try {
        await batchOnce(todo, build, outcomes, onWrite, what);
        break;
      } catch (err) {
        if (err instanceof ConntrackError && err.code === 'closed') {
          for (const i of todo) outcomes[i] ??= EBADF;
          break;
        }
        resetSocket();
        if (err instanceof Overrun) {
          log.debug(
            { attempt, what },
            'netlink answers lost (ENOBUFS), sending the unanswered requests again',
          );
          continue;
        }
        const errno = err instanceof ConntrackError && err.errno !== undefined ? err.errno : EBADF;
        log.warn({ err, what }, 'netlink batch failed');
        for (const i of todo) outcomes[i] ??= errno;
        break;
      }
    }
    return outcomes.map((o) => o ?? ETIMEDOUT);
  }

  async function deleteFlows(flows: readonly ConntrackFlow[]): Promise<DeleteResult> {
    if (flows.length === 0) return { deleted: 0, alreadyGone: 0, errors: [], requests: 0 };
    let requests = 0;
    const bad = new Map<number, string>();
    const outcomes = await batch(
      flows.length,
      safeBuild(flows, buildDeleteRequest, bad),
      (n) => {
        requests += n;
        counters.deleteRequests += n;
      },
      'conntrack deletes',
    );
    let deleted = 0;
    let alreadyGone = 0;
    const errors: DeleteError[] = [];
    outcomes.forEach((errno, i) => {
      if (errno === 0) deleted++;
      else if (errno === ENOENT) alreadyGone++;
      else errors.push({ flow: flows[i]!, errno, message: bad.get(i) ?? errnoText(errno) });
    });
    counters.errors += errors.length;
    if (errors.length > 0) {
      log.warn(
        { failed: errors.length, first: errors[0]!.message },
        'some conntrack entries could not be deleted',
      );
    }
    return { deleted, alreadyGone, errors, requests };
  }

  /**
   * Builds requests, turning bad input (an address of the wrong family) into EINVAL for that
   * item alone, with the reason kept in `bad`.
   */
  function safeBuild<F>(items: readonly F[], build: (f: F, seq: number) => Buffer, bad: Map<number, string>) {
    return (i: number, seq: number): Buffer | number => {
      try {
        return build(items[i]!, seq);
      } catch (err) {
        bad.set(i, (err as Error).message);
        return EINVAL;
      }
    };
  }

  async function insert(flows: readonly NewConntrackFlow[]): Promise<InsertResult> {
    const bad = new Map<number, string>();
    const outcomes = await batch(
      flows.length,
      safeBuild(flows, buildNewRequest, bad),
      () => {},
      'conntrack inserts',
    );
    let created = 0;
    let existed = 0;
    const errors: { flow: NewConntrackFlow; errno: number; message: string }[] = [];
    outcomes.forEach((errno, i) => {
      const badInput = bad.get(i);
      if (badInput !== undefined) errors.push({ flow: flows[i]!, errno, message: badInput });
      else if (errno === 0) created++;
      else if (errno === EEXIST) existed++;
      else errors.push({ flow: flows[i]!, errno, message: errnoText(errno) });
    });
    return { created, existed, errors };
  }

  return {
    dump: (family, protocol, filter) => exclusive(() => dump(family, protocol, filter)),
    delete: (flows) => {
      if (closed) {
        return Promise.resolve({
          deleted: 0,
          alreadyGone: 0,
          errors: flows.map((flow) => ({ flow, errno: EBADF, message: 'conntrack client is closed' })),
          requests: 0,
        });
      }
      return exclusive(() => deleteFlows(flows));
    },
    insert: (flows) => exclusive(() => insert(flows)),
    stats: (): ConntrackStats => ({ ...counters }),
    close: () => {
      if (closed) return;
      closed = true;
      abortCurrent?.(new ConntrackError('closed', 'conntrack client closed during the operation', EBADF));
      resetSocket();
    },
  };
}
