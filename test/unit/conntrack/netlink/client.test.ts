import { describe, expect, it } from 'vitest';
import { createConntrackClient } from '../../../../conntrack/netlink/client.ts';
import { flowKey } from '../../../../conntrack/netlink/flow.ts';
import { buildDumpRequest } from '../../../../conntrack/netlink/messages.ts';
import type { ConntrackFlow } from '../../../../conntrack/netlink/types.ts';

import { silentLogger } from '../../../../pkg/log/logger.ts';
import { createFakeKernel } from './fake-kernel.ts';

const EPERM = 1;

function udp(
  i: number,
  family: 'IPv4' | 'IPv6' = 'IPv4',
  protocol: ConntrackFlow['protocol'] = 'UDP',
): ConntrackFlow {
  const client = family === 'IPv4' ? `10.0.${i >> 8}.${i & 255}` : `fd00::${i.toString(16)}`;
  const svc = family === 'IPv4' ? '10.96.0.10' : 'fd00:96::a';
  const ep = family === 'IPv4' ? '10.244.1.5' : 'fd00:244::5';
  return {
    family,
    protocol,
    original: { src: client, dst: svc, srcPort: 20000 + i, dstPort: 53 },
    reply: { src: ep, dst: client, srcPort: 5353, dstPort: 20000 + i },
    status: 0x1a,
    mark: 0,
    timeout: 30,
  };
}

const sortKeys = (flows: readonly ConntrackFlow[]) => flows.map(flowKey).sort();
const logger = silentLogger();

describe('dump', () => {
  it('makes one request and gathers a multi-part answer up to NLMSG_DONE', async () => {
    const flows = [udp(1), udp(2), udp(3), udp(4), udp(5)];
    const kernel = createFakeKernel([...flows, udp(6, 'IPv6'), udp(7, 'IPv4', 'TCP')]);
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const got = await client.dump('IPv4', 'UDP');
    expect(sortKeys(got)).toEqual(sortKeys(flows));
    expect(got.find((f) => f.original.srcPort === 20003)).toEqual(udp(3));
    expect(kernel.dumpRequests).toHaveLength(1);
    expect(kernel.dumpRequests[0]!.subarray(16)).toEqual(buildDumpRequest('IPv4', 'UDP', 1).subarray(16));
    expect(client.stats()).toEqual({ dumpRequests: 1, deleteRequests: 0, errors: 0 });
    client.close();
  });

  it('filters in userspace when the kernel ignores CTA_FILTER (before 5.9)', async () => {
    const kernel = createFakeKernel([udp(1), udp(2, 'IPv4', 'TCP'), udp(3, 'IPv4', 'SCTP')], {
      ignoreFilter: true,
    });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    expect(sortKeys(await client.dump('IPv4', 'SCTP'))).toEqual(sortKeys([udp(3, 'IPv4', 'SCTP')]));
    client.close();
  });

  it('dumps again when the table changed under the dump (NLM_F_DUMP_INTR, EINTR)', async () => {
    const kernel = createFakeKernel([udp(1), udp(2), udp(3)], { onDump: (n) => (n === 1 ? 'intr' : 'ok') });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    expect(await client.dump('IPv4', 'UDP')).toHaveLength(3);
    expect(client.stats().dumpRequests).toBe(2);
    client.close();
  });

  it('returns the partial list when every attempt is interrupted, as upstream does', async () => {
    const kernel = createFakeKernel([udp(1), udp(2), udp(3)], { onDump: () => 'intr' });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory, dumpAttempts: 3 });
    expect(await client.dump('IPv4', 'UDP')).toHaveLength(3);
    expect(client.stats()).toEqual({ dumpRequests: 3, deleteRequests: 0, errors: 0 });
    client.close();
  });

  it('dumps again on a fresh socket when messages were lost (ENOBUFS)', async () => {
    const kernel = createFakeKernel([udp(1), udp(2), udp(3), udp(4), udp(5)], {
      onDump: (n) => (n === 1 ? 'enobufs' : 'ok'),
    });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    expect(await client.dump('IPv4', 'UDP')).toHaveLength(5);
    expect(kernel.socketsOpened).toBe(2);
    expect(kernel.socketsClosed).toBe(1);
    expect(client.stats().dumpRequests).toBe(2);
    client.close();
  });

  it('gives up with code dump-overrun after the bounded retries', async () => {
    const kernel = createFakeKernel([udp(1), udp(2), udp(3)], { onDump: () => 'enobufs' });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory, dumpAttempts: 2 });
    await expect(client.dump('IPv4', 'UDP')).rejects.toMatchObject({ code: 'dump-overrun', errno: 105 });
    expect(client.stats()).toEqual({ dumpRequests: 2, deleteRequests: 0, errors: 1 });
    client.close();
  });

  it('rejects with dump-failed and the errno when the kernel refuses', async () => {
    const kernel = createFakeKernel([udp(1)], { onDump: () => EPERM });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    await expect(client.dump('IPv4', 'UDP')).rejects.toMatchObject({
      name: 'ConntrackError',
      code: 'dump-failed',
      errno: 1,
    });
    expect(client.stats().errors).toBe(1);
    client.close();
  });

  it('times out when the kernel never answers', async () => {
    const kernel = createFakeKernel([udp(1)], { onDump: () => 'silent' });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory, timeoutMs: 50 });
    await expect(client.dump('IPv4', 'UDP')).rejects.toMatchObject({ code: 'timeout' });
    client.close();
  });

  it('with a filter, returns only the entries to those destinations from those sources, in one request', async () => {
    const dnated = (i: number, ep: string): ConntrackFlow => ({
      ...udp(i),
      reply: { ...udp(i).reply, src: ep },
    });
    const flows = [dnated(1, '10.244.9.9'), dnated(2, '10.244.1.5'), dnated(3, '10.244.9.9'), udp(4, 'IPv6')];
    const kernel = createFakeKernel(flows);
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const got = await client.dump('IPv4', 'UDP', {
      originalDestinations: ['10.96.0.10'],
      replySources: new Set(['10.244.9.9', 'fd00:244::5']),
    });
    expect(sortKeys(got)).toEqual(sortKeys([flows[0]!, flows[2]!]));
    expect(got.find((f) => f.original.srcPort === 20001)).toEqual(flows[0]);
    expect(await client.dump('IPv4', 'UDP', { originalDestinations: ['10.96.0.11'] })).toEqual([]);
    expect(client.stats().dumpRequests).toBe(2);
    client.close();
  });

  it('runs concurrent calls one after the other on the one socket', async () => {
    const kernel = createFakeKernel([udp(1), udp(2, 'IPv6')]);
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const [v4, v6] = await Promise.all([client.dump('IPv4', 'UDP'), client.dump('IPv6', 'UDP')]);
    expect([v4.length, v6.length]).toEqual([1, 1]);
    expect(kernel.socketsOpened).toBe(1);
    client.close();
  });
});

describe('delete', () => {
  it('pipelines: writes requests in window-sized datagrams, then counts deleted and already gone', async () => {
    const flows = Array.from({ length: 200 }, (_, i) => udp(i));
    const kernel = createFakeKernel(flows.slice(0, 150));
    const client = createConntrackClient({ logger, socketFactory: kernel.factory, window: 64 });
    const result = await client.delete(flows);
    expect(result).toEqual({ deleted: 150, alreadyGone: 50, errors: [], requests: 200 });
    expect(kernel.table()).toEqual([]);
    expect(kernel.maxUnanswered).toBeLessThanOrEqual(64);
    expect(kernel.maxUnanswered).toBeGreaterThan(1);
    expect(kernel.datagrams.length).toBeLessThan(200);
    expect(client.stats()).toEqual({ dumpRequests: 0, deleteRequests: 200, errors: 0 });
    client.close();
  });

  it('lists other errors per flow and never rejects', async () => {
    const flows = [udp(1), udp(2), udp(3)];
    const kernel = createFakeKernel(flows, {
      onDelete: (f) => (f.original.srcPort === 20002 ? EPERM : undefined),
    });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const result = await client.delete(flows);
    expect(result.deleted).toBe(2);
    expect(result.errors).toEqual([{ flow: udp(2), errno: 1, message: expect.stringContaining('EPERM') }]);
    expect(sortKeys(kernel.table())).toEqual(sortKeys([udp(2)]));
    expect(client.stats().errors).toBe(1);
    client.close();
  });

  it('sends unanswered requests again on a fresh socket when acks were lost (ENOBUFS)', async () => {
    const flows = Array.from({ length: 10 }, (_, i) => udp(i));
    let lost = false;
    const kernel = createFakeKernel(flows, {
      onDelete: (f) => {
        if (f.original.srcPort === 20004 && !lost) {
          lost = true;
          return 'lose-ack';
        }
        return undefined;
      },
    });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const result = await client.delete(flows);
    expect(kernel.table()).toEqual([]);
    expect(result.errors).toEqual([]);
    // Entry 4 was deleted but its ack lost: its second request answers ENOENT.
    expect(result.deleted + result.alreadyGone).toBe(10);
    expect(result.alreadyGone).toBeGreaterThanOrEqual(1);
    expect(result.requests).toBeGreaterThan(10);
    expect(kernel.socketsOpened).toBe(2);
    client.close();
  });

  it('reports ETIMEDOUT for requests the kernel never answers', async () => {
    const kernel = createFakeKernel([udp(1), udp(2)], {
      onDelete: (f) => (f.original.srcPort === 20001 ? 'silent' : undefined),
    });
    const client = createConntrackClient({
      logger,
      socketFactory: kernel.factory,
      timeoutMs: 50,
      batchAttempts: 1,
    });
    const result = await client.delete([udp(1), udp(2)]);
    expect(result.deleted).toBe(1);
    expect(result.errors.map((e) => [e.flow.original.srcPort, e.errno])).toEqual([[20001, 110]]);
    client.close();
  });

  it('turns a flow with a bad address into an EINVAL error for that flow only', async () => {
    const bad: ConntrackFlow = { ...udp(1), original: { ...udp(1).original, src: 'not-an-ip' } };
    const kernel = createFakeKernel([udp(2)]);
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const result = await client.delete([bad, udp(2)]);
    expect(result.deleted).toBe(1);
    expect(result.errors).toEqual([{ flow: bad, errno: 22, message: expect.stringContaining('not-an-ip') }]);
    expect(result.requests).toBe(1);
    client.close();
  });

  it('does nothing for an empty list (no socket opened)', async () => {
    const kernel = createFakeKernel([]);
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    expect(await client.delete([])).toEqual({ deleted: 0, alreadyGone: 0, errors: [], requests: 0 });
    expect(kernel.socketsOpened).toBe(0);
  });

  it('reports every flow as an error when the socket cannot be opened', async () => {
    const client = createConntrackClient({
      logger,
      socketFactory: () => {
        throw Object.assign(new Error('socket: Operation not permitted'), { errno: 1 });
      },
    });
    const result = await client.delete([udp(1), udp(2)]);
    expect(result.errors.map((e) => e.errno)).toEqual([1, 1]);
    await expect(client.dump('IPv4', 'UDP')).rejects.toMatchObject({ code: 'socket-failed', errno: 1 });
  });
});

describe('close', () => {
  it('is idempotent; later dumps reject with code closed and deletes list errors', async () => {
    const kernel = createFakeKernel([udp(1)]);
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    await client.dump('IPv4', 'UDP');
    client.close();
    client.close();
    expect(kernel.socketsClosed).toBe(1);
    await expect(client.dump('IPv4', 'UDP')).rejects.toMatchObject({ code: 'closed' });
    const result = await client.delete([udp(1)]);
    expect(result.errors.map((e) => e.errno)).toEqual([9]);
    expect(kernel.table()).toHaveLength(1);
  });

  it('ends an operation in progress', async () => {
    const kernel = createFakeKernel([udp(1)], { onDump: () => 'silent' });
    const client = createConntrackClient({ logger, socketFactory: kernel.factory });
    const pending = client.dump('IPv4', 'UDP');
    setTimeout(() => client.close(), 10);
    await expect(pending).rejects.toMatchObject({ code: 'closed' });
  });
});
