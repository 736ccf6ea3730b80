/**
 * The tracer itself, on small fixed rule sets: upstream's TestTracePacket dump, then one
 * behaviour per test (marks, RETURN/goto, statistic branches, recent, ctstate, interfaces,
 * iptables-save spellings, IPv6) and the loud failures that keep tests from passing silently.
 */
import { describe, expect, it } from 'vitest';
import { TraceError } from '../../../proxier/trace/errors.ts';
import { ruleSetFromText } from '../../../proxier/trace/rules.ts';
import { formatTrace, summarize, traceToJSON } from '../../../proxier/trace/summary.ts';
import { type Entry, type TracePacket, tracePacket } from '../../../proxier/trace/tracer.ts';

const NODE = { localAddresses: ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1'] };

function trace(
  rules: string,
  src: string,
  dst: string,
  port: number,
  entry: Entry,
  extra: Partial<TracePacket> = {},
) {
  return tracePacket(
    ruleSetFromText(rules),
    { sourceIP: src, destIP: dst, destPort: port, protocol: 'tcp', entry, ...extra },
    NODE,
  );
}

// Upstream's TestTracePacket dump, with the built-in jumps quoted as iptables-save prints them.
const UPSTREAM_DUMP = `*filter
:INPUT - [0:0]
:FORWARD - [0:0]
:OUTPUT - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
*nat
:PREROUTING - [0:0]
:INPUT - [0:0]
:OUTPUT - [0:0]
:POSTROUTING - [0:0]
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT
`;

describe('upstream TestTracePacket dump', () => {
  it.each([
    { name: 'no match', src: '10.0.0.2', dst: '10.0.0.3', port: 80, entry: 'pod', output: '', masq: false },
    {
      name: 'single endpoint',
      src: '10.0.0.2',
      dst: '172.30.0.41',
      port: 80,
      entry: 'pod',
      output: '10.180.0.1:80',
      masq: false,
    },
    {
      name: 'multiple endpoints',
      src: '10.0.0.2',
      dst: '172.30.0.44',
      port: 80,
      entry: 'pod',
      output: '10.180.0.4:80, 10.180.0.5:80',
      masq: false,
    },
    {
      name: 'LOCAL, KUBE-MARK-MASQ',
      src: '192.168.0.2',
      dst: '192.168.99.22',
      port: 80,
      entry: 'node',
      output: '10.180.0.2:80',
      masq: true,
    },
    {
      name: 'DROP',
      src: '203.0.113.2',
      dst: '192.168.99.22',
      port: 80,
      entry: 'outside',
      output: 'DROP',
      masq: false,
    },
    {
      name: 'ACCEPT (NodePortHealthCheck)',
      src: '192.168.0.2',
      dst: '192.168.0.2',
      port: 30000,
      entry: 'node',
      output: 'ACCEPT',
      masq: false,
    },
    {
      name: 'REJECT',
      src: '10.0.0.2',
      dst: '172.30.0.46',
      port: 80,
      entry: 'pod',
      output: 'REJECT',
      masq: false,
    },
  ] as const)('$name', ({ src, dst, port, entry, output, masq }) => {
    const result = trace(UPSTREAM_DUMP, src, dst, port, entry);
    const s = summarize(result);
    expect({ output: s.output, masq: s.masquerade }, formatTrace(result)).toEqual({ output, masq });
  });

  it('records every rule a path matched, in order, with the table and chain', () => {
    const result = trace(UPSTREAM_DUMP, '10.0.0.2', '172.30.0.41', 80, 'pod');
    expect(result.paths).toHaveLength(1);
    expect(
      result.paths[0]!.steps.slice(0, 4).map((s) => `${s.table} ${s.chain} #${s.rule} ${s.action}`),
    ).toEqual([
      'nat PREROUTING #1 jump KUBE-SERVICES',
      'nat KUBE-SERVICES #1 jump KUBE-SVC-XPGD46QRK7WJZT7O',
      'nat KUBE-SVC-XPGD46QRK7WJZT7O #2 jump KUBE-SEP-SXIVWICOYRO3J4NJ',
      'nat KUBE-SEP-SXIVWICOYRO3J4NJ #2 DNAT to 10.180.0.1:80',
    ]);
    expect(result.paths[0]!.steps[1]!.text).toBe(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
    );
  });

  it('gives each endpoint the probability of its statistic branch', () => {
    const s = summarize(trace(UPSTREAM_DUMP, '10.0.0.2', '172.30.0.44', 80, 'pod'));
    expect(s.kind).toBe('dnat');
    expect(s.endpoints).toEqual([
      { endpoint: '10.180.0.4:80', probability: 0.5, masquerade: false },
      { endpoint: '10.180.0.5:80', probability: 0.5, masquerade: false },
    ]);
  });

  it('masquerades only the hairpin branch of a pod reaching itself', () => {
    const s = summarize(trace(UPSTREAM_DUMP, '10.180.0.4', '172.30.0.44', 80, 'pod'));
    expect(s.endpoints).toEqual([
      { endpoint: '10.180.0.4:80', probability: 0.5, masquerade: true },
      { endpoint: '10.180.0.5:80', probability: 0.5, masquerade: false },
    ]);
  });
});

const tables = (filter: string, nat: string) => `*filter\n${filter}\nCOMMIT\n*nat\n${nat}\nCOMMIT\n`;

describe('tracer semantics', () => {
  it('follows MARK and -m mark: a mark set in nat is seen in filter and POSTROUTING', () => {
    const rules = tables(
      '-A FORWARD -m mark --mark 0x10/0x10 -j ACCEPT\n-A FORWARD -j DROP',
      ':MARKIT - [0:0]\n-A PREROUTING -d 10.9.9.9 -j MARKIT\n-A MARKIT -j MARK --set-xmark 0x10/0x10\n-A POSTROUTING -m mark --mark 0x10/0x10 -j MASQUERADE',
    );
    const marked = trace(rules, '203.0.113.2', '10.9.9.9', 80, 'outside');
    expect(marked.paths.map((p) => [p.verdict, p.verdictBy, p.masquerade, p.mark])).toEqual([
      ['ACCEPT', 'rule', true, 0x10],
    ]);
    const unmarked = trace(rules, '203.0.113.2', '10.9.9.8', 80, 'outside');
    expect(unmarked.paths.map((p) => [p.verdict, p.masquerade])).toEqual([['DROP', false]]);
  });

  it('--xor-mark clears the bit, so KUBE-POSTROUTING masquerades once', () => {
    const rules = tables(
      '',
      [
        ':KUBE-POSTROUTING - [0:0]',
        ':KUBE-MARK-MASQ - [0:0]',
        '-A PREROUTING -j KUBE-MARK-MASQ',
        '-A POSTROUTING -j KUBE-POSTROUTING',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000',
        '-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN',
        '-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000',
        '-A KUBE-POSTROUTING -j MASQUERADE --random-fully',
      ].join('\n'),
    );
    const r = trace(rules, '203.0.113.2', '10.9.9.9', 80, 'outside');
    expect(r.paths[0]!.masquerade).toBe(true);
    expect(r.paths[0]!.mark).toBe(0);
  });

  it('RETURN ends the sub-chain and the caller goes on; -g returns past the caller', () => {
    const rules = tables(
      [
        ':SUB - [0:0]',
        ':GOTO - [0:0]',
        ':VIA - [0:0]',
        '-A FORWARD -d 10.0.0.1 -j SUB',
        '-A FORWARD -d 10.0.0.1 -j REJECT',
        '-A SUB -j RETURN',
        '-A SUB -j DROP',
        '-A FORWARD -d 10.0.0.2 -j VIA',
        '-A FORWARD -d 10.0.0.2 -j ACCEPT',
        '-A VIA -g GOTO',
        '-A VIA -j DROP',
        '-A GOTO -j RETURN',
      ].join('\n'),
      '',
    );
    expect(summarize(trace(rules, '10.1.1.1', '10.0.0.1', 80, 'pod')).output).toBe('REJECT');
    // GOTO's RETURN returns from VIA to FORWARD: VIA's DROP is skipped, FORWARD's ACCEPT follows.
    expect(summarize(trace(rules, '10.1.1.1', '10.0.0.2', 80, 'pod')).output).toBe('ACCEPT');
  });

  it('follows every statistic branch: three endpoints, a third each', () => {
    const rules = tables(
      '',
      [
        ':SVC - [0:0]',
        '-A PREROUTING -j SVC',
        '-A SVC -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 10.1.0.1:80',
        '-A SVC -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.1.0.2:80',
        '-A SVC -j DNAT --to-destination 10.1.0.3:80',
      ].join('\n'),
    );
    const r = trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod');
    const s = summarize(r);
    expect(s.output).toBe('10.1.0.1:80, 10.1.0.2:80, 10.1.0.3:80');
    for (const e of s.endpoints) expect(e.probability).toBeCloseTo(1 / 3, 8);
    expect(r.paths.reduce((a, p) => a + p.probability, 0)).toBeCloseTo(1, 12);
    expect(r.paths[0]!.steps.at(-1)!.branch).toEqual({ taken: true, probability: 0.3333333333 });
  });

  it('treats -m recent --rcheck as no match and --set as a match', () => {
    const rules = tables(
      '',
      [
        ':SVC - [0:0]',
        '-A PREROUTING -j SVC',
        '-A SVC -m recent --name SEP1 --rcheck --seconds 10800 --reap -j DNAT --to-destination 10.1.0.9:80',
        '-A SVC -m recent --name SEP1 --set -m tcp -p tcp -j DNAT --to-destination 10.1.0.1:80',
      ].join('\n'),
    );
    expect(summarize(trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod')).output).toBe('10.1.0.1:80');
  });

  it('evaluates --ctstate for a new connection: NEW, and DNAT once DNATed', () => {
    const rules = tables(
      ':KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\n-A OUTPUT -j KUBE-FIREWALL\n' +
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n' +
        '-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j REJECT\n-A INPUT -m conntrack --ctstate NEW -j ACCEPT',
      '-A PREROUTING -d 192.168.0.2 -p tcp --dport 8080 -j DNAT --to-destination 127.0.0.1:80',
    );
    // A martian packet to 127.0.0.1 from outside is dropped...
    expect(summarize(trace(rules, '203.0.113.2', '127.0.0.1', 80, 'outside')).output).toBe('DROP');
    // ...unless it was DNATed there.
    expect(summarize(trace(rules, '203.0.113.2', '192.168.0.2', 8080, 'outside')).output).toBe(
      '127.0.0.1:80',
    );
    // The node itself reaching localhost is fine, and NEW matches.
    const own = trace(rules, '127.0.0.1', '127.0.0.1', 80, 'node');
    expect(own.paths.map((p) => [p.verdict, p.verdictBy, p.delivery])).toEqual([['ACCEPT', 'rule', 'local']]);
  });

  it('reads iptables-save spellings: /32, --set-xmark, 11-decimal probabilities, recent options', () => {
    const rules = tables(
      '',
      [
        ':KUBE-SERVICES - [0:0]',
        ':KUBE-SVC-X - [0:0]',
        ':KUBE-MARK-MASQ - [0:0]',
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE',
        '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
        '-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-X',
        '-A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-MARK-MASQ',
        '-A KUBE-SVC-X -m comment --comment "default/kubernetes:https -> 172.18.0.2:6443" -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j DNAT --to-destination 172.18.0.9:1',
        '-A KUBE-SVC-X -m comment --comment "default/kubernetes:https -> 172.18.0.2:6443" -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 172.18.0.2:6443',
        '-A KUBE-SVC-X -p tcp -m comment --comment "default/kubernetes:https" -m recent --set --name KUBE-SEP-B --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 172.18.0.3:6443',
      ].join('\n'),
    );
    const fromPod = summarize(trace(rules, '10.244.1.5', '10.96.0.1', 443, 'pod'));
    expect(fromPod).toMatchObject({ output: '172.18.0.2:6443, 172.18.0.3:6443', masquerade: false });
    const fromOutside = summarize(trace(rules, '203.0.113.2', '10.96.0.1', 443, 'outside'));
    expect(fromOutside).toMatchObject({ output: '172.18.0.2:6443, 172.18.0.3:6443', masquerade: true });
  });

  it('matches -i against the interface given; in OUTPUT there is none, so ! -i matches', () => {
    const rules = tables(
      '',
      [
        ':KUBE-MARK-MASQ - [0:0]',
        '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
        '-A PREROUTING ! -i cbr0 -d 10.96.0.1 -j KUBE-MARK-MASQ',
        '-A OUTPUT ! -i cbr0 -d 10.96.0.1 -j KUBE-MARK-MASQ',
        '-A PREROUTING -i veth+ -d 10.96.0.1 -j KUBE-MARK-MASQ',
        '-A PREROUTING -d 10.96.0.1 -j DNAT --to-destination 10.1.0.1:80',
        '-A OUTPUT -d 10.96.0.1 -j DNAT --to-destination 10.1.0.1:80',
        '-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE',
      ].join('\n'),
    );
    expect(
      summarize(trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod', { inInterface: 'cbr0' })).masquerade,
    ).toBe(false);
    expect(
      summarize(trace(rules, '203.0.113.2', '10.96.0.1', 80, 'outside', { inInterface: 'eth0' })).masquerade,
    ).toBe(true);
    expect(summarize(trace(rules, '192.168.0.2', '10.96.0.1', 80, 'node')).masquerade).toBe(true);
    // A wildcard: veth123 is not cbr0 (masquerade) and matches veth+ (masquerade again, harmless).
    expect(
      summarize(trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod', { inInterface: 'veth123' })).masquerade,
    ).toBe(true);
    expect(() => trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod')).toThrowError(
      expect.objectContaining({ code: 'needs-interface' }),
    );
  });

  it('applies a DROP policy of a built-in chain and says so', () => {
    const rules = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';
    const r = trace(rules, '10.0.0.2', '10.0.0.3', 80, 'pod');
    expect(r.paths.map((p) => [p.verdict, p.verdictBy])).toEqual([['DROP', 'policy']]);
    expect(summarize(r).output).toBe('DROP (policy)');
    expect(r.paths[0]!.steps.at(-1)!.text).toBe('policy DROP');
  });

  it('traces IPv6: [ip]:port DNAT targets, ::1 is LOCAL, v6 CIDRs', () => {
    const rules = tables(
      '',
      [
        ':KUBE-NODEPORTS - [0:0]',
        '-A PREROUTING -d fd00:172:30::41 -p tcp --dport 80 -j DNAT --to-destination [fd00:10:180::1]:80',
        '-A PREROUTING -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS',
        '-A OUTPUT -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS',
        '-A KUBE-NODEPORTS -p tcp --dport 3001 -j DNAT --to-destination [fd00:10:180::2]:8080',
      ].join('\n'),
    );
    expect(summarize(trace(rules, 'fd00:10::2', 'fd00:172:30::41', 80, 'pod')).output).toBe(
      '[fd00:10:180::1]:80',
    );
    expect(summarize(trace(rules, '2600:5200::1', '2001:db8::1', 3001, 'outside')).output).toBe(
      '[fd00:10:180::2]:8080',
    );
    expect(summarize(trace(rules, '::1', '::1', 3001, 'node')).output).toBe('');
  });
});

describe('failing loudly', () => {
  it('throws on an unknown match in a rule the packet reaches', () => {
    const rules = tables(
      '',
      '-A PREROUTING -m set --match-set KUBE-X dst -j DNAT --to-destination 10.1.0.1:80',
    );
    let err: unknown;
    try {
      trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TraceError);
    expect((err as TraceError).code).toBe('unsupported-match');
    expect((err as TraceError).rule).toBe(
      '-A PREROUTING -m set --match-set KUBE-X dst -j DNAT --to-destination 10.1.0.1:80',
    );
  });

  it('skips a rule with an unknown match when a known match already fails', () => {
    const rules = tables(
      '',
      '-A PREROUTING -d 10.5.5.5 -m set --match-set KUBE-X dst -j DNAT --to-destination 10.1.0.1:80',
    );
    expect(summarize(trace(rules, '10.0.0.2', '10.96.0.1', 80, 'pod')).output).toBe('');
  });

  it('throws on an unknown target and on an unknown option', () => {
    const target = tables('', '-A PREROUTING -j CT --notrack');
    expect(() => trace(target, '10.0.0.2', '10.96.0.1', 80, 'pod')).toThrowError(
      expect.objectContaining({ code: 'unsupported-target' }),
    );
    const option = tables('-A FORWARD -p tcp --syn -j ACCEPT', '');
    expect(() => trace(option, '10.0.0.2', '10.96.0.1', 80, 'pod')).toThrowError(
      expect.objectContaining({ code: 'unsupported-match' }),
    );
  });

  it('throws on a jump to a chain that does not exist, and on loops', () => {
    // The shared parser refuses undeclared chains, so delete one after it is referenced.
    const missing = '*nat\n:GONE - [0:0]\n-A PREROUTING -j GONE\n-X GONE\nCOMMIT\n';
    expect(() => trace(missing, '10.0.0.2', '10.96.0.1', 80, 'pod')).toThrowError(
      expect.objectContaining({ code: 'missing-chain' }),
    );
    const loop = tables('', ':A - [0:0]\n:B - [0:0]\n-A PREROUTING -j A\n-A A -j B\n-A B -j A');
    expect(() => trace(loop, '10.0.0.2', '10.96.0.1', 80, 'pod')).toThrowError(
      expect.objectContaining({ code: 'chain-loop' }),
    );
  });

  it('refuses two copies of a table (two families in one text) and packets of mixed families', () => {
    const twice = `${tables('', '')}${tables('', '')}`;
    expect(() => ruleSetFromText(twice)).toThrowError(expect.objectContaining({ code: 'unsupported-rules' }));
    expect(() => trace(tables('', ''), '10.0.0.2', 'fd00::1', 80, 'pod')).toThrowError(
      expect.objectContaining({ code: 'bad-packet' }),
    );
    expect(() =>
      trace(tables('', '-A PREROUTING -d fd00::/64 -j ACCEPT'), '10.0.0.2', '10.0.0.1', 80, 'pod'),
    ).toThrowError(expect.objectContaining({ code: 'bad-packet' }));
  });
});

describe('reports', () => {
  it('prints the outcome, the paths and each matched rule; JSON carries the summary', () => {
    const result = trace(UPSTREAM_DUMP, '10.0.0.2', '172.30.0.44', 80, 'pod');
    const text = formatTrace(result);
    expect(text).toContain('packet: tcp 10.0.0.2 -> 172.30.0.44:80, from pod (IPv4)');
    expect(text).toContain(
      'outcome: DNAT to 10.180.0.4:80 (50.00%), 10.180.0.5:80 (50.00%); not masqueraded',
    );
    expect(text).toContain('path 2 of 2 (probability 0.5000)');
    expect(text).toContain('[random branch taken, p=0.5]');
    const json = JSON.parse(traceToJSON(result));
    expect(json.summary.output).toBe('10.180.0.4:80, 10.180.0.5:80');
    expect(json.paths).toHaveLength(2);
  });
});
