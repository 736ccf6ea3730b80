/**
 * Runs the ctnetlink client inside a network namespace for the kernel tests:
 *   ip netns exec NS node test/kernel/conntrack/netlink/driver.ts <command> [args]
 * Commands (JSON on stdin where noted, one JSON document on stdout):
 *   dump <IPv4|IPv6> <UDP|TCP|SCTP>   -> { flows, stats }
 *   dump-filter <family> <protocol>   (stdin: DumpFilter with arrays) -> { flows, stats }
 *   delete            (stdin: flows)  -> { result, stats }
 *   insert            (stdin: flows)  -> { result }
 *   capture <family> <protocol>       -> { datagrams: hex[] } the raw dump replies, for fixtures
 */
import { readFileSync } from 'node:fs';
import {
  createConntrackClient,
  type NetlinkSocketLike,
  openNetfilterSocket,
} from '../../../../conntrack/netlink/client.ts';
import type { NewConntrackFlow } from '../../../../conntrack/netlink/messages.ts';
import type {
  ConntrackFamily,
  ConntrackFlow,
  ConntrackProtocol,
  DumpFilter,
} from '../../../../conntrack/netlink/types.ts';

function stdinJSON<T>(): T {
  return JSON.parse(readFileSync(0, 'utf8')) as T;
}

async function main(argv: string[]): Promise<unknown> {
  const [cmd, a, b] = argv;
  if (cmd === 'capture') {
    const datagrams: string[] = [];
    const factory = (): NetlinkSocketLike => {
      const s = openNetfilterSocket();
      return {
        ...s,
        onMessage: (fn) =>
          s.onMessage((d) => {
            datagrams.push(d.toString('hex'));
            fn(d);
          }),
      };
    };
    const client = createConntrackClient({ socketFactory: factory });
    try {
      const flows = await client.dump(a as ConntrackFamily, b as ConntrackProtocol);
      return { flows, datagrams };
    } finally {
      client.close();
    }
  }
  const client = createConntrackClient();
  try {
    switch (cmd) {
      case 'dump': {
        const flows = await client.dump(a as ConntrackFamily, b as ConntrackProtocol);
        return { flows, stats: client.stats() };
      }
      case 'dump-filter': {
        const filter = stdinJSON<DumpFilter>();
        const flows = await client.dump(a as ConntrackFamily, b as ConntrackProtocol, filter);
        return { flows, stats: client.stats() };
      }
      case 'delete': {
        const result = await client.delete(stdinJSON<ConntrackFlow[]>());
        return { result, stats: client.stats() };
      }
      case 'insert': {
        const result = await client.insert(stdinJSON<NewConntrackFlow[]>());
        return { result };
      }
      default:
        throw new Error(`unknown command ${String(cmd)}`);
    }
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (out) => process.stdout.write(`${JSON.stringify(out)}\n`),
  (err: unknown) => {
    const e = err as { code?: string; errno?: number; message?: string };
    process.stdout.write(
      `${JSON.stringify({ error: { code: e.code, errno: e.errno, message: e.message } })}\n`,
    );
    process.exitCode = 1;
  },
);
