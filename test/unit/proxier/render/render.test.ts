import { describe, expect, it } from 'vitest';
import { endpointChainName } from '../../../../proxier/chains.ts';
import { createLocalDetector } from '../../../../proxier/localdetect.ts';
import type { RenderConfig, RenderState } from '../../../../proxier/render.ts';
import { masqueradeMark, renderBuiltinJumps, renderRules } from '../../../../proxier/render.ts';
import type { ServicePortSpec } from '../../../golden/support/builders.ts';
import {
  fakeProxierConfig,
  makeEndpoint,
  makeServicePort,
  makeState,
} from '../../../golden/support/builders.ts';
import { checkRuleJumps } from '../../../golden/support/normalize.ts';

const FULL = { full: true } as const;

function svc(spec: Partial<ServicePortSpec> = {}) {
  return makeServicePort({ ns: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', port: 80, ...spec });
}

function natLines(state: RenderState, config: RenderConfig = fakeProxierConfig()): string[] {
  return renderRules(state, config, FULL).nat.rules.lines;
}

function chainRules(lines: readonly string[], chain: string): string[] {
  return lines.filter((l) => l.startsWith(`-A ${chain} `));
}

describe('static rules', () => {
  it('prints the mark as Go %#08x', () => {
    expect(masqueradeMark(14)).toBe('0x00004000');
    expect(masqueradeMark(0)).toBe('0x00000001');
    expect(masqueradeMark(31)).toBe('0x80000000');
    expect(() => masqueradeMark(32)).toThrow(RangeError);
  });

  it('writes KUBE-POSTROUTING with --random-fully when available', () => {
    const r = renderRules(
      makeState([]),
      fakeProxierConfig('IPv4', { hasRandomFully: true, masqueradeBit: 15 }),
      FULL,
    );
    expect(chainRules(r.nat.rules.lines, 'KUBE-POSTROUTING')).toEqual([
      '-A KUBE-POSTROUTING -m mark ! --mark 0x00008000/0x00008000 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --xor-mark 0x00008000',
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]);
    expect(chainRules(r.nat.rules.lines, 'KUBE-MARK-MASQ')).toEqual([
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x00008000',
    ]);
  });

  it('drops INVALID with the nfacct counter, without it, or not at all under tcp_be_liberal (TestDropInvalidRule)', () => {
    const withCounter = renderRules(makeState([]), fakeProxierConfig(), FULL).filter.rules.lines;
    expect(withCounter).toContain(
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP',
    );
    const without = renderRules(makeState([]), fakeProxierConfig('IPv4', { nfacctCounters: new Set() }), FULL)
      .filter.rules.lines;
    expect(without).toContain('-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP');
    const liberal = renderRules(makeState([]), fakeProxierConfig('IPv4', { tcpBeLiberal: true }), FULL).filter
      .rules.lines;
    expect(liberal.some((l) => l.includes('INVALID'))).toBe(false);
    expect(chainRules(liberal, 'KUBE-FORWARD')).toHaveLength(2);
  });

  it('lays out the payload as upstream: filter then nat, top-level chains first', () => {
    const r = renderRules(makeState([]), fakeProxierConfig(), FULL);
    expect(r.payload.split('\n').slice(0, 8)).toEqual([
      '*filter',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-EXTERNAL-SERVICES - [0:0]',
      ':KUBE-FORWARD - [0:0]',
      ':KUBE-NODEPORTS - [0:0]',
      ':KUBE-PROXY-FIREWALL - [0:0]',
      ':KUBE-FIREWALL - [0:0]',
      '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    ]);
    expect(r.payload.endsWith('COMMIT\n')).toBe(true);
  });

  it('lists the built-in jumps of a full sync in upstream order', () => {
    const jumps = renderBuiltinJumps();
    expect(jumps).toHaveLength(14);
    expect(jumps[0]).toEqual({
      table: 'filter',
      chain: 'INPUT',
      target: 'KUBE-EXTERNAL-SERVICES',
      args: [
        '-m',
        'conntrack',
        '--ctstate',
        'NEW',
        '-m',
        'comment',
        '--comment',
        'kubernetes externally-visible service portals',
        '-j',
        'KUBE-EXTERNAL-SERVICES',
      ],
    });
    expect(jumps.filter((j) => j.table === 'nat').map((j) => `${j.chain}->${j.target}`)).toEqual([
      'OUTPUT->KUBE-SERVICES',
      'PREROUTING->KUBE-SERVICES',
      'POSTROUTING->KUBE-POSTROUTING',
    ]);
    expect(jumps.at(-1)).toEqual({
      table: 'filter',
      chain: 'OUTPUT',
      target: 'KUBE-FIREWALL',
      args: ['-j', 'KUBE-FIREWALL'],
    });
  });
});

describe('comments', () => {
  it('quotes comments with spaces and leaves single words bare', () => {
    const s = svc();
    const lines = natLines(makeState([s], [[s, [makeEndpoint('10.180.0.1', 80)]]]));
    expect(lines).toContain(
      '-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80',
    );
    expect(lines).toContain(
      '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ',
    );
  });

  it('an unnamed port uses namespace/name', () => {
    const s = svc({ portName: '' });
    const lines = natLines(makeState([s], [[s, [makeEndpoint('10.180.0.1', 80)]]]));
    expect(lines[4]).toBe(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-AQI2S6QIMU7PVVRP',
    );
  });
});

describe('balancing', () => {
  it('follows endpoint string order with 1/(n-i) probabilities and an unconditional last rule', () => {
    const s = svc({ protocol: 'UDP', portName: 'dns', port: 53 });
    const eps = ['10.1.1.1', '10.1.1.11', '10.1.1.2'].map((ip) => makeEndpoint(ip, 53));
    const lines = natLines(makeState([s], [[s, eps]]));
    const svcChain = lines.filter((l) => l.startsWith('-A KUBE-SVC-') && l.includes(' -> '));
    expect(svcChain.map((l) => l.match(/-> ([^"]+)"/)?.[1])).toEqual([
      '10.1.1.11:53',
      '10.1.1.1:53',
      '10.1.1.2:53',
    ]);
    expect(svcChain.map((l) => l.match(/--probability (\S+)/)?.[1] ?? 'last')).toEqual([
      '0.3333333333',
      '0.5000000000',
      'last',
    ]);
    expect(lines.some((l) => l.includes('-m udp -p udp -j DNAT'))).toBe(true);
  });

  it('puts every affinity check before the balancing rules', () => {
    const s = svc({ sessionAffinity: { type: 'ClientIP', timeoutSeconds: 60 } });
    const lines = natLines(
      makeState([s], [[s, [makeEndpoint('10.0.0.1', 80), makeEndpoint('10.0.0.2', 80)]]]),
    );
    const svcChain = chainRules(lines, 'KUBE-SVC-XPGD46QRK7WJZT7O').slice(1);
    expect(
      svcChain.map((l) => (l.includes('--rcheck --seconds 60 --reap') ? 'affinity' : 'balance')),
    ).toEqual(['affinity', 'affinity', 'balance', 'balance']);
  });
});

describe('traffic policies', () => {
  it('iTP=Local routes the cluster IP to SVL, whose first rule masquerades', () => {
    const s = svc({ internalPolicyLocal: true });
    const r = renderRules(
      makeState([s], [[s, [makeEndpoint('10.0.0.1', 80), makeEndpoint('10.0.0.2', 80, { local: true })]]]),
      fakeProxierConfig(),
      FULL,
    );
    const lines = r.nat.rules.lines;
    expect(lines).toContain(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVL-XPGD46QRK7WJZT7O',
    );
    expect(chainRules(lines, 'KUBE-SVL-XPGD46QRK7WJZT7O')).toEqual([
      '-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      `-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.0.0.2:80" -j ${endpointChainName(s.name, 'TCP', '10.0.0.2:80')}`,
    ]);
    expect(lines.some((l) => l.startsWith('-A KUBE-SVC-'))).toBe(false);
    expect(lines.filter((l) => l.includes('--to-destination'))).toHaveLength(1);
    expect(checkRuleJumps(r.payload)).toEqual([]);
  });

  it('iTP=Local with no local endpoint drops cluster-IP traffic in filter and counts it', () => {
    const s = svc({ internalPolicyLocal: true });
    const r = renderRules(makeState([s], [[s, [makeEndpoint('10.0.0.1', 80)]]]), fakeProxierConfig(), FULL);
    expect(r.filter.rules.lines).toContain(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP',
    );
    expect(r.nat.chains.lines.filter((l) => l.includes('KUBE-S'))).toEqual([':KUBE-SERVICES - [0:0]']);
    expect(r.noLocalEndpoints).toEqual({ internal: 1, external: 0 });
  });

  it('a service without any usable endpoint is rejected everywhere and has no nat chains', () => {
    const s = svc({
      nodePort: 3001,
      externalIPs: ['192.168.99.11'],
      loadBalancerVIPs: ['1.2.3.4'],
      loadBalancerSourceRanges: ['203.0.113.0/25'],
    });
    const r = renderRules(
      makeState([s], [[s, [makeEndpoint('10.0.0.1', 80, { ready: false, serving: false })]]]),
      fakeProxierConfig(),
      FULL,
    );
    expect(r.filter.rules.lines.filter((l) => l.endsWith('-j REJECT'))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT',
    ]);
    expect(r.filter.rules.lines.some((l) => l.includes('KUBE-PROXY-FIREWALL'))).toBe(false);
    expect(r.activeNatChains.size).toBe(0);
    expect(r.noLocalEndpoints).toEqual({ internal: 0, external: 0 });
  });

  it('masquerade-all marks all cluster-IP traffic; without a detector nothing is marked', () => {
    const s = svc();
    const state = makeState([s], [[s, [makeEndpoint('10.0.0.1', 80)]]]);
    const all = natLines(state, fakeProxierConfig('IPv4', { masqueradeAll: true }));
    expect(chainRules(all, 'KUBE-SVC-XPGD46QRK7WJZT7O')[0]).toBe(
      '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ',
    );
    const none = natLines(state, fakeProxierConfig('IPv4', { localDetector: { mode: 'none' } }));
    expect(chainRules(none, 'KUBE-SVC-XPGD46QRK7WJZT7O')).toHaveLength(1);
  });

  it('the LB firewall allows the VIPs as sources when a range holds the node IP', () => {
    const s = svc({
      loadBalancerVIPs: ['1.2.3.4', '5.6.7.8'],
      loadBalancerSourceRanges: ['192.168.0.0/24', '203.0.113.0/25'],
    });
    const r = renderRules(makeState([s], [[s, [makeEndpoint('10.180.0.1', 80)]]]), fakeProxierConfig(), FULL);
    expect(
      chainRules(r.nat.rules.lines, 'KUBE-FW-XPGD46QRK7WJZT7O').map((l) => l.replace(/.*IP" /, '')),
    ).toEqual([
      '-s 192.168.0.0/24 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-s 203.0.113.0/25 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-s 1.2.3.4 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-s 5.6.7.8 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ]);
    expect(r.filter.rules.lines.filter((l) => l.startsWith('-A KUBE-PROXY-FIREWALL'))).toHaveLength(2);
    expect(checkRuleJumps(r.payload)).toEqual([]);
  });
});

describe('nodeports jump', () => {
  const s = svc({ nodePort: 3001 });
  const state = makeState([s], [[s, [makeEndpoint('10.180.0.1', 80)]]]);
  const lastRules = (config: RenderConfig) =>
    renderRules(state, config, FULL).nat.rules.lines.filter((l) => l.endsWith('-j KUBE-NODEPORTS'));

  it('lists one jump per node address inside nodePortAddresses, loopback only with localhost NodePorts', () => {
    expect(
      lastRules(
        fakeProxierConfig('IPv4', {
          nodePortAddresses: ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64'],
          localhostNodePorts: false,
        }),
      ),
    ).toEqual([
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS',
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.1.2 -j KUBE-NODEPORTS',
    ]);
    const withLoopback = renderRules(
      state,
      fakeProxierConfig('IPv4', { nodePortAddresses: ['127.0.0.0/8', '192.168.0.0/24'] }),
      FULL,
    );
    expect(
      withLoopback.nat.rules.lines
        .filter((l) => l.endsWith('-j KUBE-NODEPORTS'))
        .map((l) => l.split(' -d ')[1]),
    ).toEqual(['127.0.0.1 -j KUBE-NODEPORTS', '192.168.0.2 -j KUBE-NODEPORTS']);
    expect(withLoopback.filter.chains.lines).toContain(':KUBE-FIREWALL - [0:0]');
  });

  it('turns localhost NodePorts off when nodePortAddresses leave out 127.0.0.1', () => {
    const r = renderRules(state, fakeProxierConfig('IPv4', { nodePortAddresses: ['192.168.0.0/24'] }), FULL);
    expect(r.filter.chains.lines).not.toContain(':KUBE-FIREWALL - [0:0]');
    expect(r.nat.rules.lines.some((l) => l.includes('localhost_nps_accepted_pkts'))).toBe(false);
  });

  it("'primary' selects the node IPs; IPv6 never allows ::1", () => {
    expect(lastRules(fakeProxierConfig('IPv4', { nodePortAddresses: 'primary' }))).toHaveLength(1);
    expect(lastRules(fakeProxierConfig('IPv4', { nodePortAddresses: 'primary' }))[0]).toContain(
      '-d 192.168.0.2 -j',
    );
    const v6 = makeServicePort({
      ns: 'ns1',
      name: 'svc1',
      clusterIP: 'fd00:172:30::41',
      port: 80,
      nodePort: 3001,
    });
    const v6State = makeState([v6], [[v6, [makeEndpoint('fd00:10:180::1', 80)]]]);
    const r = renderRules(
      v6State,
      fakeProxierConfig('IPv6', { nodePortAddresses: ['::1/128', '2001:db8::/64'] }),
      FULL,
    );
    expect(
      r.nat.rules.lines.filter((l) => l.endsWith('-j KUBE-NODEPORTS')).map((l) => l.split(' -d ')[1]),
    ).toEqual(['2001:db8::1 -j KUBE-NODEPORTS']);
    expect(r.warnings).toHaveLength(1);
    const sep = endpointChainName(v6.name, 'TCP', '[fd00:10:180::1]:80');
    expect(r.nat.rules.lines).toContain(
      `-A ${sep} -m comment --comment ns1/svc1:p80 -s fd00:10:180::1 -j KUBE-MARK-MASQ`,
    );
    expect(r.nat.rules.lines).toContain(
      `-A ${sep} -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::1]:80`,
    );
  });
});

describe('large-cluster mode', () => {
  it('drops per-endpoint comments above 1000 endpoints but keeps the others', () => {
    const s = svc();
    const eps = Array.from({ length: 1001 }, (_, i) =>
      makeEndpoint(`10.0.${i % 256}.${Math.floor(i / 256)}`, 80),
    );
    const r = renderRules(
      makeState([s], [[s, eps]]),
      fakeProxierConfig('IPv4', { masqueradeAll: true }),
      FULL,
    );
    expect(r.largeClusterMode).toBe(true);
    expect(r.nat.rules.lines).toContain(
      '-A KUBE-SEP-DKGQUZGBKLTPAR56 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80',
    );
    const svcRules = chainRules(r.nat.rules.lines, 'KUBE-SVC-XPGD46QRK7WJZT7O');
    expect(svcRules[0]).toContain('--comment "ns1/svc1:p80 cluster IP"');
    expect(svcRules.slice(1).some((l) => l.includes('--comment'))).toBe(false);

    const small = renderRules(makeState([s], [[s, eps.slice(0, 1000)]]), fakeProxierConfig(), FULL);
    expect(small.largeClusterMode).toBe(false);
    expect(small.nat.rules.lines).toContain(
      '-A KUBE-SEP-DKGQUZGBKLTPAR56 -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80',
    );
  });
});

describe('partial renders', () => {
  const a = makeServicePort({ ns: 'ns1', name: 'a', clusterIP: '172.30.0.1', port: 80 });
  const b = makeServicePort({ ns: 'ns2', name: 'b', clusterIP: '172.30.0.2', port: 80 });
  const state = makeState(
    [a, b],
    [
      [a, [makeEndpoint('10.0.0.1', 80)]],
      [b, [makeEndpoint('10.0.0.2', 80)]],
    ],
  );

  it('writes chains of changed services only, but records every active chain and counts skipped rules', () => {
    const full = renderRules(state, fakeProxierConfig(), FULL);
    const partial = renderRules(state, fakeProxierConfig(), {
      full: false,
      changedServices: new Set(['ns2/b']),
    });
    expect(partial.activeNatChains).toEqual(full.activeNatChains);
    expect(
      partial.nat.chains.lines.filter((l) => l.startsWith(':KUBE-SVC-') || l.startsWith(':KUBE-SEP-')),
    ).toHaveLength(2);
    expect(partial.nat.rules.lines.filter((l) => l.startsWith('-A KUBE-SERVICES'))).toHaveLength(3);
    expect(partial.ruleCounts.nat.total).toBe(full.ruleCounts.nat.total);
    expect(partial.ruleCounts.nat.last).toBe(full.ruleCounts.nat.last - 4);
    expect(partial.filter.rules.lines).toEqual(full.filter.rules.lines);
  });

  it('deletes only stale chains with a service prefix', () => {
    const existing = new Set([
      'KUBE-SVC-GONE',
      'KUBE-SEP-GONE',
      'KUBE-XLB-OLD',
      'CUSTOM',
      ...renderRules(state, fakeProxierConfig(), FULL).activeNatChains,
    ]);
    const r = renderRules(state, fakeProxierConfig(), { full: false, existingNatChains: existing });
    expect(r.deletedNatChains).toEqual(['KUBE-SEP-GONE', 'KUBE-SVC-GONE']);
    expect(r.nat.rules.lines.slice(-3)).toEqual([
      '-X KUBE-SEP-GONE',
      '-X KUBE-SVC-GONE',
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ]);
    expect(r.ruleCounts.nat.last).toBe(r.nat.rules.lines.filter((l) => l.startsWith('-A ')).length);
  });
});

describe('determinism', () => {
  it('renders the same payload twice, whatever the map insertion order', () => {
    const services = [
      svc({
        ns: 'b',
        nodePort: 3001,
        loadBalancerVIPs: ['1.2.3.4'],
        externalPolicyLocal: true,
        healthCheckNodePort: 30000,
      }),
      svc({ ns: 'a', protocol: 'UDP' }),
      svc({ ns: 'a', protocol: 'TCP' }),
      svc({ ns: 'c', internalPolicyLocal: true, sessionAffinity: { type: 'ClientIP', timeoutSeconds: 100 } }),
    ];
    const eps = services.map(
      (s, i) =>
        [s, [makeEndpoint(`10.0.${i}.1`, 80, { local: i !== 0 }), makeEndpoint(`10.0.${i}.2`, 80)]] as const,
    );
    const one = renderRules(makeState(services, eps), fakeProxierConfig(), FULL);
    const two = renderRules(
      makeState([...services].reverse(), [...eps].reverse()),
      fakeProxierConfig(),
      FULL,
    );
    expect(two.payload).toBe(one.payload);
    expect(renderRules(makeState(services, eps), fakeProxierConfig(), FULL).payload).toBe(one.payload);
    // Services come out sorted by name, then protocol.
    const order = one.nat.rules.lines
      .filter((l) => l.includes('cluster IP" -m'))
      .filter((l) => l.startsWith('-A KUBE-SERVICES'));
    expect(order.map((l) => l.match(/-m (\w+) -p/)?.[1] + ':' + l.match(/comment "([^/]+)/)?.[1])).toEqual([
      'tcp:a',
      'udp:a',
      'tcp:b',
      'tcp:c',
    ]);
    expect(checkRuleJumps(one.payload)).toEqual([]);
  });
});

describe('local detectors', () => {
  it.each([
    [
      { mode: 'ClusterCIDR', cidrs: ['fd00:10::/64', '10.0.0.0/8'] } as const,
      ['-s', '10.0.0.0/8'],
      ['!', '-s', '10.0.0.0/8'],
    ],
    [
      { mode: 'NodeCIDR', podCIDRs: ['10.244.1.0/24'] } as const,
      ['-s', '10.244.1.0/24'],
      ['!', '-s', '10.244.1.0/24'],
    ],
    [{ mode: 'BridgeInterface', bridgeInterface: 'cbr0' } as const, ['-i', 'cbr0'], ['!', '-i', 'cbr0']],
    [
      { mode: 'InterfaceNamePrefix', interfaceNamePrefix: 'veth' } as const,
      ['-i', 'veth+'],
      ['!', '-i', 'veth+'],
    ],
  ])('%o renders IfLocal / IfNotLocal', (config, ifLocal, ifNotLocal) => {
    const d = createLocalDetector(config, 'IPv4');
    expect(d).toEqual({ implemented: true, ifLocal, ifNotLocal });
  });

  it('falls back to no-op without a CIDR of the family', () => {
    expect(createLocalDetector({ mode: 'ClusterCIDR', cidrs: ['10.0.0.0/8'] }, 'IPv6').implemented).toBe(
      false,
    );
    expect(createLocalDetector({ mode: 'none' }, 'IPv4').implemented).toBe(false);
  });

  it('uses the interface match in the EXT short-circuit rule', () => {
    const s = svc({ nodePort: 3001, externalPolicyLocal: true });
    const lines = natLines(
      makeState([s], [[s, [makeEndpoint('10.0.0.1', 80, { local: true })]]]),
      fakeProxierConfig('IPv4', {
        localDetector: { mode: 'InterfaceNamePrefix', interfaceNamePrefix: 'veth' },
      }),
    );
    expect(lines).toContain(
      '-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -i veth+ -j KUBE-SVC-XPGD46QRK7WJZT7O',
    );
  });
});
