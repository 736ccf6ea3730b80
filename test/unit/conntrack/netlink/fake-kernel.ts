/**
 * A scripted stand-in for the kernel's side of a NETLINK_NETFILTER socket: it reads the client's
 * request bytes and answers with bytes laid out as ctnetlink does (dump entries as
 * IPCTNL_MSG_CT_NEW with NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR acks echoing the request header).
 * Answers are delivered asynchronously, as a real socket does. Hooks let a test interrupt a
 * dump, drop acks with ENOBUFS, refuse requests, or stay silent.
 */
import type { NetlinkSocketLike, SocketError, SocketFactory } from '../../../../conntrack/netlink/client.ts';
import {
  ENOENT,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  NLM_F_DUMP_INTR,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
} from '../../../../conntrack/netlink/constants.ts';
import { flowKey } from '../../../../conntrack/netlink/flow.ts';
import {
  buildDeleteRequest,
  buildNewRequest,
  ctMessageType,
  forEachMessage,
} from '../../../../conntrack/netlink/messages.ts';
import type { ConntrackFlow } from '../../../../conntrack/netlink/types.ts';

export interface FakeKernelOptions {
  /** Entries per dump datagram (default 2, so every dump is multi-part). */
  readonly entriesPerDatagram?: number;
  /** Called for each dump; return 'intr' to flag it NLM_F_DUMP_INTR, 'enobufs' to lose it, or an errno. */
  readonly onDump?: (n: number) => 'ok' | 'intr' | 'enobufs' | 'silent' | number;
  /**
   * Called for each delete; return an errno to refuse it, 'lose-ack' to delete but drop the ack
   * and report ENOBUFS, 'silent' to never answer.
   */
  readonly onDelete?: (flow: ConntrackFlow) => number | 'lose-ack' | 'silent' | undefined;
  /** Ignore the protocol filter, as kernels before 5.9 do. */
  readonly ignoreFilter?: boolean;
}

export interface FakeKernel {
  readonly factory: SocketFactory;
  /** The entries left. */
  table(): ConntrackFlow[];
  readonly socketsOpened: number;
  readonly socketsClosed: number;
  /** Every datagram the client wrote (one per sendmsg). */
  readonly datagrams: Buffer[];
  /** The most requests that were written and not yet answered, at any moment. */
  readonly maxUnanswered: number;
  readonly dumpRequests: Buffer[];
}

function header(len: number, type: number, flags: number, seq: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(len, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  return h;
}

/** A dump entry: the NEW request's attributes are laid out exactly as a dump entry's. */
export function dumpEntry(flow: ConntrackFlow, seq: number, extraFlags = 0): Buffer {
  const msg = buildNewRequest({ ...flow, timeout: flow.timeout ?? 30 }, seq);
  msg.writeUInt16LE(NLM_F_MULTI | extraFlags, 6);
  return msg;
}

export function doneMessage(seq: number, errno = 0, flags = NLM_F_MULTI): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32LE(-errno, 0);
  return Buffer.concat([header(20, NLMSG_DONE, flags, seq), body]);
}

export function errorMessage(request: Buffer, errno: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32LE(-errno, 0);
  return Buffer.concat([
    header(36, NLMSG_ERROR, 0x100, request.readUInt32LE(8)),
    body,
    request.subarray(0, 16),
  ]);
}

export function createFakeKernel(
  initial: readonly ConntrackFlow[],
  opts: FakeKernelOptions = {},
): FakeKernel {
  const table = new Map<string, ConntrackFlow>(initial.map((f) => [flowKey(f), f]));
  // The fake recognises a delete by its bytes after the header: same flow, same bytes.
  const deleteBody = (f: ConntrackFlow) => buildDeleteRequest(f, 0).subarray(16).toString('hex');
  const perDatagram = opts.entriesPerDatagram ?? 2;
  const state = {
    socketsOpened: 0,
    socketsClosed: 0,
    datagrams: [] as Buffer[],
    maxUnanswered: 0,
    dumpRequests: [] as Buffer[],
  };
  let dumps = 0;

  const factory: SocketFactory = () => {
    state.socketsOpened++;
    let onMessage: ((d: Buffer) => void) | undefined;
    let onError: ((e: SocketError) => void) | undefined;
    let open = true;
    let unanswered = 0;
    const deliver = (d: Buffer) =>
      setImmediate(() => {
        if (!open) return;
        unanswered = Math.max(0, unanswered - 1);
        onMessage?.(d);
      });
    const fail = (errno: number) =>
      setImmediate(() => {
        if (open) onError?.({ message: `recvmsg: errno ${errno}`, errno, code: 'ENOBUFS' });
      });

    function handleDump(req: Buffer): void {
      state.dumpRequests.push(req);
      const seq = req.readUInt32LE(8);
      const family = req[16] === 2 ? 'IPv4' : 'IPv6';
      const protoNum = req[32]!;
      const verdict = opts.onDump?.(++dumps) ?? 'ok';
      if (verdict === 'silent') return;
      if (typeof verdict === 'number') {
        deliver(errorMessage(req, verdict));
        return;
      }
      const num = { UDP: 17, TCP: 6, SCTP: 132 } as const;
      const entries = [...table.values()].filter(
        (f) => f.family === family && (opts.ignoreFilter || num[f.protocol] === protoNum),
      );
      const flags = verdict === 'intr' ? NLM_F_DUMP_INTR : 0;
      for (let i = 0; i < entries.length; i += perDatagram) {
        deliver(Buffer.concat(entries.slice(i, i + perDatagram).map((f) => dumpEntry(f, seq, flags))));
        if (verdict === 'enobufs' && i === 0) {
          fail(105);
          return;
        }
      }
      deliver(doneMessage(seq, 0, NLM_F_MULTI | flags));
    }

    function handleDelete(req: Buffer): void {
      const body = req.subarray(16).toString('hex');
      const flow = [...table.values()].find((f) => deleteBody(f) === body);
      const verdict = flow ? opts.onDelete?.(flow) : undefined;
      if (verdict === 'silent') return;
      if (typeof verdict === 'number') {
        deliver(errorMessage(req, verdict));
        return;
      }
      if (flow) table.delete(flowKey(flow));
      if (verdict === 'lose-ack') {
        fail(105);
        return;
      }
      deliver(errorMessage(req, flow ? 0 : ENOENT));
    }

    const sock: NetlinkSocketLike = {
      send(data, callback) {
        const datagram = Buffer.concat(data);
        state.datagrams.push(datagram);
        forEachMessage(datagram, (m) => {
          unanswered++;
          state.maxUnanswered = Math.max(state.maxUnanswered, unanswered);
          const req = datagram.subarray(m.start - 16, m.end);
          if (m.type === ctMessageType(IPCTNL_MSG_CT_GET)) handleDump(req);
          else if (m.type === ctMessageType(IPCTNL_MSG_CT_DELETE)) handleDelete(req);
        });
        setImmediate(() => callback());
      },
      onMessage: (fn) => {
        onMessage = fn;
      },
      onError: (fn) => {
        onError = fn;
      },
      ref: () => {},
      unref: () => {},
      close: () => {
        if (open) state.socketsClosed++;
        open = false;
      },
    };
    return sock;
  };

  return {
    factory,
    table: () => [...table.values()],
    get socketsOpened() {
      return state.socketsOpened;
    },
    get socketsClosed() {
      return state.socketsClosed;
    },
    datagrams: state.datagrams,
    get maxUnanswered() {
      return state.maxUnanswered;
    },
    dumpRequests: state.dumpRequests,
  };
}
