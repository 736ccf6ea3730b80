/**
 * The ctnetlink client against the real kernel. Every socket is opened inside a test namespace
 * by driver.ts (`ip netns exec NS node driver.ts ...`); entries are made with the conntrack CLI
 * or by real UDP traffic through a DNAT rule, and checked against `conntrack -L -o extended`.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPS_DST_NAT, IPS_SEEN_REPLY } from '../../../../conntrack/netlink/constants.ts';
import { flowKey } from '../../../../conntrack/netlink/flow.ts';
import { forEachMessage, type NewConntrackFlow } from '../../../../conntrack/netlink/messages.ts';
import type { ConntrackFlow, DeleteResult, DumpFilter } from '../../../../conntrack/netlink/types.ts';
import { parseFlow } from '../../../support/conntrack-reference-reader.ts';
import { createNetns, deleteNetns, execIn, execInOk, vethPair } from '../../../support/netns.ts';

const DRIVER = fileURLToPath(new URL('./driver.ts', import.meta.url));

interface DumpOut {
  flows: ConntrackFlow[];
  stats: { dumpRequests: number; deleteRequests: number; errors: number };
}
interface DeleteOut {
  result: DeleteResult;
  stats: DumpOut['stats'];
}

async function driver<T>(ns: string, args: string[], input?: unknown): Promise<T> {
  const r = await execIn(
    ns,
    [process.execPath, DRIVER, ...args],
    input === undefined ? undefined : JSON.stringify(input),
  );
  if (r.code !== 0) throw new Error(`driver ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const dump = (ns: string, family: 'IPv4' | 'IPv6', protocol: 'UDP' | 'TCP' | 'SCTP') =>
  driver<DumpOut>(ns, ['dump', family, protocol]);
const del = (ns: string, flows: ConntrackFlow[]) => driver<DeleteOut>(ns, ['delete'], flows);

/** One `conntrack -L -o extended` line, reduced to what ConntrackFlow carries. */
interface CliEntry {
  key: string;
  protocol: string;
  reply: { src: string; dst: string; srcPort: number; dstPort: number };
  mark: number;
  seenReply: boolean;
}

/** Entries of `conntrack -L` for one family and protocol, keyed as flowKey() keys flows. */
async function conntrackList(ns: string, family: 'IPv4' | 'IPv6', protocol: string): Promise<CliEntry[]> {
  const out = await execInOk(ns, [
    'conntrack',
    '-L',
    '-f',
    family === 'IPv4' ? 'ipv4' : 'ipv6',
    '-o',
    'extended',
  ]);
  const entries: CliEntry[] = [];
  for (const line of out.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || fields[2]!.toUpperCase() !== protocol) continue;
    const all = (k: string) => fields.filter((f) => f.startsWith(`${k}=`)).map((f) => f.slice(k.length + 1));
    const [src, dst, sport, dport] = [all('src'), all('dst'), all('sport'), all('dport')];
    const zone = all('zone')[0];
    const original = { src: src[0]!, dst: dst[0]!, srcPort: Number(sport[0]), dstPort: Number(dport[0]) };
    const reply = { src: src[1]!, dst: dst[1]!, srcPort: Number(sport[1]), dstPort: Number(dport[1]) };
    const flowLike = {
      family,
      protocol: protocol as ConntrackFlow['protocol'],
      original,
      ...(zone ? { zone: Number(zone) } : {}),
    };
    entries.push({
      key: flowKey(flowLike),
      protocol,
      reply,
      mark: Number(all('mark')[0] ?? 0),
      seenReply: !line.includes('[UNREPLIED]'),
    });
  }
  return entries.sort((a, b) => a.key.localeCompare(b.key));
}

function asCli(flows: ConntrackFlow[]): CliEntry[] {
  return flows
    .map((f) => ({
      key: flowKey(f),
      protocol: f.protocol,
      reply: f.reply,
      mark: f.mark,
      seenReply: (f.status & IPS_SEEN_REPLY) !== 0,
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
}

async function insertUDP(ns: string, args: string[]): Promise<void> {
  await execInOk(ns, ['conntrack', '-I', '-p', 'udp', '--timeout', '300', ...args]);
}

describe('ctnetlink client on a real kernel', () => {
  let ns = '';

  beforeAll(async () => {
    ns = await createNetns('ctnl');
    // IPv4 UDP: one answered, one unanswered with a mark, one in zone 5 (same tuple as another
    // in zone 0), plus TCP and SCTP entries that a UDP dump must leave out.
    await insertUDP(ns, [
      '-s',
      '10.0.0.1',
      '-d',
      '10.96.0.10',
      '--sport',
      '40001',
      '--dport',
      '53',
      '-u',
      'SEEN_REPLY',
    ]);
    await insertUDP(ns, [
      '-s',
      '10.0.0.2',
      '-d',
      '10.96.0.10',
      '--sport',
      '40002',
      '--dport',
      '53',
      '-m',
      '7',
    ]);
    await insertUDP(ns, ['-s', '10.0.0.3', '-d', '10.96.0.11', '--sport', '40003', '--dport', '8053']);
    await insertUDP(ns, [
      '-s',
      '10.0.0.3',
      '-d',
      '10.96.0.11',
      '--sport',
      '40003',
      '--dport',
      '8053',
      '-w',
      '5',
    ]);
    await insertUDP(ns, ['-s', '10.0.0.4', '-d', '10.96.0.12', '--sport', '40004', '--dport', '53']);
    await insertUDP(ns, ['-s', '10.0.0.5', '-d', '10.96.0.12', '--sport', '40005', '--dport', '53']);
    await execInOk(ns, [
      'conntrack',
      '-I',
      '-p',
      'tcp',
      '-s',
      '10.0.0.1',
      '-d',
      '10.96.0.10',
      '--sport',
      '40001',
      '--dport',
      '53',
      '--timeout',
      '300',
      '--state',
      'ESTABLISHED',
    ]);
    await execInOk(ns, [
      'conntrack',
      '-I',
      '-p',
      'sctp',
      '-s',
      '10.0.0.1',
      '-d',
      '10.96.0.20',
      '--sport',
      '40001',
      '--dport',
      '9',
      '--timeout',
      '300',
      '--state',
      'ESTABLISHED',
      '--orig-vtag',
      '1',
      '--reply-vtag',
      '2',
    ]);
    await insertUDP(ns, ['-s', 'fd00::1', '-d', 'fd00:96::a', '--sport', '40001', '--dport', '53']);
    await insertUDP(ns, [
      '-s',
      'fd00::2',
      '-d',
      'fd00:96::a',
      '--sport',
      '40002',
      '--dport',
      '53',
      '-u',
      'SEEN_REPLY',
    ]);
  });

  afterAll(async () => {
    if (ns) await deleteNetns(ns);
  });

  it('dumps the IPv4 UDP entries with one request, exactly as conntrack -L lists them', async () => {
    const { flows, stats } = await dump(ns, 'IPv4', 'UDP');
    expect(stats).toEqual({ dumpRequests: 1, deleteRequests: 0, errors: 0 });
    expect(flows).toHaveLength(6);
    expect(asCli(flows)).toEqual(await conntrackList(ns, 'IPv4', 'UDP'));
    expect(flows.every((f) => f.family === 'IPv4' && f.protocol === 'UDP')).toBe(true);
    const zoned = flows.find((f) => f.zone === 5);
    expect(zoned?.original).toEqual({ src: '10.0.0.3', dst: '10.96.0.11', srcPort: 40003, dstPort: 8053 });
    const marked = flows.find((f) => f.mark === 7);
    expect(marked?.original.src).toBe('10.0.0.2');
    expect(flows.every((f) => (f.timeout ?? 0) > 250 && f.id !== undefined)).toBe(true);
  });

  it('dumps TCP, SCTP and IPv6 UDP separately', async () => {
    const tcp = await dump(ns, 'IPv4', 'TCP');
    expect(asCli(tcp.flows)).toEqual(await conntrackList(ns, 'IPv4', 'TCP'));
    expect(tcp.flows).toHaveLength(1);
    const sctp = await dump(ns, 'IPv4', 'SCTP');
    expect(sctp.flows.map((f) => f.original)).toEqual([
      { src: '10.0.0.1', dst: '10.96.0.20', srcPort: 40001, dstPort: 9 },
    ]);
    expect(asCli(sctp.flows)).toEqual(await conntrackList(ns, 'IPv4', 'SCTP'));
    const v6 = await dump(ns, 'IPv6', 'UDP');
    expect(v6.flows.map((f) => f.original.src).sort()).toEqual(['fd00::1', 'fd00::2']);
    expect(asCli(v6.flows)).toEqual(await conntrackList(ns, 'IPv6', 'UDP'));
  });

  it('deletes exactly the chosen entries (zone respected); a missing one counts as already gone', async () => {
    const before = (await dump(ns, 'IPv4', 'UDP')).flows;
    const chosen = before.filter((f) => f.zone === 5 || f.original.src === '10.0.0.4');
    expect(chosen).toHaveLength(2);
    const missing: ConntrackFlow = {
      ...chosen[0]!,
      zone: 0,
      original: { ...chosen[0]!.original, srcPort: 1 },
    };
    const { result, stats } = await del(ns, [...chosen, missing]);
    expect(result).toEqual({ deleted: 2, alreadyGone: 1, errors: [], requests: 3 });
    expect(stats).toEqual({ dumpRequests: 0, deleteRequests: 3, errors: 0 });
    const left = await conntrackList(ns, 'IPv4', 'UDP');
    const gone = new Set(chosen.map(flowKey));
    expect(left.map((e) => e.key)).toEqual(
      before
        .map(flowKey)
        .filter((k) => !gone.has(k))
        .sort((a, b) => a.localeCompare(b)),
    );
    // The zone-0 twin of the zone-5 entry is still there.
    expect(left.some((e) => e.key === flowKey({ ...chosen.find((f) => f.zone === 5)!, zone: 0 }))).toBe(true);
    // Deleting the same entries again: all already gone.
    const again = await del(ns, chosen);
    expect(again.result).toEqual({ deleted: 0, alreadyGone: 2, errors: [], requests: 2 });
  });

  it('deletes an IPv6 entry and leaves the other', async () => {
    const v6 = (await dump(ns, 'IPv6', 'UDP')).flows;
    const target = v6.find((f) => f.original.src === 'fd00::1')!;
    const { result } = await del(ns, [target]);
    expect(result.deleted).toBe(1);
    expect((await conntrackList(ns, 'IPv6', 'UDP')).map((e) => e.key)).toEqual(
      v6.filter((f) => f !== target).map(flowKey),
    );
  });
});

describe('ctnetlink client and real DNATed UDP traffic', () => {
  let node = '';
  let pod = '';

  beforeAll(async () => {
    node = await createNetns('ctnode');
    pod = await createNetns('ctpod');
    await vethPair(
      { ns: node, ifname: 'eth0', addr: '10.240.0.1/24' },
      { ns: pod, ifname: 'eth0', addr: '10.240.0.5/24' },
    );
    await execInOk(node, ['ip', 'route', 'add', '10.96.0.0/16', 'dev', 'eth0']);
    await execInOk(node, [
      'iptables',
      '-t',
      'nat',
      '-A',
      'OUTPUT',
      '-p',
      'udp',
      '-d',
      '10.96.0.10',
      '--dport',
      '53',
      '-j',
      'DNAT',
      '--to-destination',
      '10.240.0.5:5353',
    ]);
    // A UDP server in the pod answers, so the entry is seen in both directions.
    await execInOk(pod, [
      'sh',
      '-c',
      'timeout 20 socat UDP-LISTEN:5353,fork,reuseaddr EXEC:"echo pong" </dev/null >/dev/null 2>&1 &',
    ]);
    await new Promise((r) => setTimeout(r, 300));
    await execIn(node, ['sh', '-c', 'echo ping | timeout 2 socat -T1 - UDP:10.96.0.10:53,sourceport=41000']);
  });

  afterAll(async () => {
    if (node) await deleteNetns(node);
    if (pod) await deleteNetns(pod);
  });

  it('shows the DNAT target as the reply source, as conntrack -L does', async () => {
    const { flows } = await dump(node, 'IPv4', 'UDP');
    const flow = flows.find((f) => f.original.dst === '10.96.0.10');
    expect(flow).toBeDefined();
    expect(flow!.original).toEqual({ src: '10.240.0.1', dst: '10.96.0.10', srcPort: 41000, dstPort: 53 });
    expect(flow!.reply).toEqual({ src: '10.240.0.5', dst: '10.240.0.1', srcPort: 5353, dstPort: 41000 });
    expect(flow!.status & IPS_DST_NAT).toBe(IPS_DST_NAT);
    expect(asCli(flows)).toEqual(await conntrackList(node, 'IPv4', 'UDP'));
  });

  it('deletes the DNATed entry by its original tuple', async () => {
    const { flows } = await dump(node, 'IPv4', 'UDP');
    const flow = flows.find((f) => f.original.dst === '10.96.0.10')!;
    const { result } = await del(node, [flow]);
    expect(result).toMatchObject({ deleted: 1, errors: [] });
    expect((await conntrackList(node, 'IPv4', 'UDP')).filter((e) => e.key === flowKey(flow))).toEqual([]);
  });
});

describe('ctnetlink client over thousands of entries', () => {
  let ns = '';
  const ENTRIES = 5000;
  // Client i -> service 10.96.0.(i % 20):53, DNATed to endpoint 10.244.0.(i % 50):5353; every
  // seventh in zone 3, every eleventh marked.
  const entry = (i: number): NewConntrackFlow => {
    const client = `10.1.${i >> 8}.${i & 255}`;
    return {
      family: 'IPv4',
      protocol: 'UDP',
      original: { src: client, dst: `10.96.0.${i % 20}`, srcPort: 10000 + i, dstPort: 53 },
      reply: { src: `10.244.0.${i % 50}`, dst: client, srcPort: 5353, dstPort: 10000 + i },
      timeout: 300,
      status: IPS_SEEN_REPLY,
      ...(i % 7 === 0 ? { zone: 3 } : {}),
      ...(i % 11 === 0 ? { mark: i } : {}),
    };
  };

  beforeAll(async () => {
    ns = await createNetns('ctbig');
    const inserted = await driver<{ result: { created: number } }>(
      ns,
      ['insert'],
      [...Array.from({ length: ENTRIES }, (_, i) => entry(i)), entry(ENTRIES), entry(ENTRIES + 1)].map(
        (f, i) => (i >= ENTRIES ? { ...f, protocol: 'TCP' } : f),
      ),
    );
    expect(inserted.result.created).toBe(ENTRIES + 2);
  });

  afterAll(async () => {
    if (ns) await deleteNetns(ns);
  });

  it('reads the real dump bytes exactly as the reference parser does, in big datagrams', async () => {
    const { flows, datagrams } = await driver<{ flows: ConntrackFlow[]; datagrams: string[] }>(ns, [
      'capture',
      'IPv4',
      'UDP',
    ]);
    expect(flows).toHaveLength(ENTRIES);
    const reference: ConntrackFlow[] = [];
    for (const text of datagrams) {
      const buf = Buffer.from(text, 'hex');
      forEachMessage(buf, (m) => {
        const f = m.type === 0x100 ? parseFlow(buf, m) : undefined;
        if (f?.protocol === 'UDP') reference.push(f);
      });
    }
    // JSON drops undefined fields on both sides alike; the driver's output went through it.
    expect(flows).toEqual(JSON.parse(JSON.stringify(reference)));
    expect(flows.filter((f) => f.zone === 3)).toHaveLength(Math.ceil(ENTRIES / 7));
    expect(flows.find((f) => f.original.src === '10.1.0.22')?.mark).toBe(22);
    // 32 KiB reads let the kernel fill datagrams far past the one page it uses for small reads.
    const average = datagrams.reduce((n, d) => n + d.length / 2, 0) / datagrams.length;
    expect(average).toBeGreaterThan(16 * 1024);
  });

  it('filters a dump by original destination and reply source, with one request', async () => {
    const filter: DumpFilter = {
      originalDestinations: ['10.96.0.3', '10.96.0.13'],
      replySources: ['10.244.0.3', '10.244.0.13', '10.244.0.23'],
    };
    const { flows, stats } = await driver<DumpOut>(ns, ['dump-filter', 'IPv4', 'UDP'], filter);
    expect(stats).toEqual({ dumpRequests: 1, deleteRequests: 0, errors: 0 });
    // Entry i goes to service i % 20 and endpoint i % 50: both must be in the sets.
    const expected = Array.from({ length: ENTRIES }, (_, i) => i)
      .filter((i) => [3, 13].includes(i % 20) && [3, 13, 23].includes(i % 50))
      .map((i) => flowKey(entry(i)))
      .sort();
    expect(expected.length).toBeGreaterThan(50);
    expect(flows.map(flowKey).sort()).toEqual(expected);
    const none = await driver<DumpOut>(ns, ['dump-filter', 'IPv4', 'UDP'], { replySources: ['10.244.1.1'] });
    expect(none.flows).toEqual([]);
  });
});
