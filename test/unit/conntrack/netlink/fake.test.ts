import { describe, expect, it } from 'vitest';
import { ConntrackError } from '../../../../conntrack/netlink/errors.ts';
import { createFakeConntrackClient } from '../../../../conntrack/netlink/fake.ts';
import type { ConntrackFlow } from '../../../../conntrack/netlink/types.ts';

function flow(src: string, protocol: ConntrackFlow['protocol'] = 'UDP', zone?: number): ConntrackFlow {
  const family = src.includes(':') ? 'IPv6' : 'IPv4';
  const svc = family === 'IPv4' ? '10.96.0.10' : 'fd00:96::a';
  return {
    family,
    protocol,
    original: { src, dst: svc, srcPort: 40000, dstPort: 53 },
    reply: { src: svc, dst: src, srcPort: 53, dstPort: 40000 },
    status: 0,
    mark: 0,
    ...(zone === undefined ? {} : { zone }),
  };
}

describe('fake conntrack client', () => {
  it('dumps by family and protocol and deletes by original tuple and zone', async () => {
    const a = flow('10.0.0.1');
    const aZoned = flow('10.0.0.1', 'UDP', 3);
    const fake = createFakeConntrackClient([a, aZoned, flow('10.0.0.2', 'TCP'), flow('fd00::1')]);
    expect(await fake.dump('IPv4', 'UDP')).toEqual([a, aZoned]);
    const result = await fake.delete([aZoned, flow('10.0.0.9')]);
    expect(result).toEqual({ deleted: 1, alreadyGone: 1, errors: [], requests: 2 });
    expect(await fake.dump('IPv4', 'UDP')).toEqual([a]);
    expect(fake.stats()).toEqual({ dumpRequests: 2, deleteRequests: 2, errors: 0 });
    expect(fake.calls.map((c) => c.kind)).toEqual(['dump', 'delete', 'dump']);
  });

  it('filters a dump by original destination and reply source, compared by value', async () => {
    const a = flow('10.0.0.1');
    const b = { ...flow('10.0.0.2'), reply: { ...flow('10.0.0.2').reply, src: '10.244.0.7' } };
    const fake = createFakeConntrackClient([a, b, flow('fd00::1')]);
    expect(await fake.dump('IPv4', 'UDP', { replySources: ['10.244.0.7'] })).toEqual([b]);
    expect(await fake.dump('IPv4', 'UDP', { originalDestinations: ['10.96.0.010'] })).toEqual([a, b]);
    expect(
      await fake.dump('IPv4', 'UDP', { originalDestinations: ['10.96.0.10'], replySources: [] }),
    ).toEqual([]);
    expect(fake.calls[0]).toEqual({
      kind: 'dump',
      family: 'IPv4',
      protocol: 'UDP',
      filter: { replySources: ['10.244.0.7'] },
    });
  });

  it('reports injected failures without throwing on delete, and rejects an injected dump error', async () => {
    const a = flow('10.0.0.1');
    const fake = createFakeConntrackClient([a]);
    fake.failDelete(a, 1, 'EPERM');
    expect(await fake.delete([a])).toEqual({
      deleted: 0,
      alreadyGone: 0,
      errors: [{ flow: a, errno: 1, message: 'EPERM' }],
      requests: 1,
    });
    expect(fake.flows()).toEqual([a]);
    fake.failNextDump(new ConntrackError('dump-failed', 'boom', 1));
    await expect(fake.dump('IPv4', 'UDP')).rejects.toMatchObject({ code: 'dump-failed' });
    expect(await fake.dump('IPv4', 'UDP')).toEqual([a]);
    expect(fake.stats().errors).toBe(2);
  });

  it('after close, dumps reject with code closed and deletes list EBADF errors', async () => {
    const a = flow('10.0.0.1');
    const fake = createFakeConntrackClient([a]);
    fake.close();
    expect(fake.closed).toBe(true);
    await expect(fake.dump('IPv4', 'UDP')).rejects.toMatchObject({ code: 'closed' });
    const result = await fake.delete([a]);
    expect(result.errors.map((e) => e.errno)).toEqual([9]);
    expect(result.requests).toBe(0);
  });
});
