/**
 * Packet flows through rendered rules for every service feature, in IPv4 and IPv6, as upstream's
 * packet-flow tables (pkg/proxy/iptables/proxier_test.go: TestTracePacket over the
 * TestOverallIPTablesRules cluster, TestClusterIPGeneral, TestNodePorts, TestLoadBalancer,
 * TestExternalTrafficPolicyLocal/Cluster, TestInternalTrafficPolicy, TestNoEndpointsReject,
 * TestInternalExternalMasquerade, the terminating-endpoint tests). Each row: a sentence-like name,
 * source, destination, port, protocol, what happens (endpoints, DROP, REJECT, ACCEPT or nothing)
 * and whether it is masqueraded. The rules are rendered, applied to empty in-memory tables as a
 * full sync would (jumps from the built-in chains included), and walked in netfilter order.
 */
import { describe, expect, it } from 'vitest';
import { joinHostPort } from '../../../pkg/net/ip.ts';
import type { RenderConfig } from '../../../proxier/render.ts';
import { summarize } from '../../../proxier/trace/summary.ts';
import { tracePacket } from '../../../proxier/trace/tracer.ts';
import type { IPFamily } from '../../../proxier/types.ts';
import {
  type EndpointSpec,
  fakeProxierConfig,
  makeEndpoint,
  makeServicePort,
  makeState,
  type ServicePortSpec,
} from '../../golden/support/builders.ts';
import { overallIPTablesRulesState } from '../../golden/support/overall-cluster.ts';
import {
  type FlowRow,
  rulesFor,
  runFlow,
  TEST_EXTERNAL_CLIENT,
  TEST_EXTERNAL_CLIENT_BLOCKED,
  TEST_NODE_IPS,
} from './support.ts';

/** Addresses of one family, after upstream's conventions for NewFakeProxier. */
interface Addrs {
  readonly family: IPFamily;
  readonly pod: string;
  readonly svcIP: string;
  readonly ep1: string;
  readonly ep2: string;
  readonly ep3: string;
  readonly client: string;
  readonly blocked: string;
  readonly sourceRange: string;
  readonly nodeIP: string;
  readonly altNodeIP: string;
  readonly localhost: string;
  /** An external IP that is not one of the node's. */
  readonly externalIP: string;
  /** An external IP that is one of the node's addresses (upstream's testExternalIP). */
  readonly localExternalIP: string;
  readonly lbIP1: string;
  readonly lbIP2: string;
  readonly nodeRange: string;
}

const V4: Addrs = {
  family: 'IPv4',
  pod: '10.0.0.2',
  svcIP: '172.30.0.41',
  ep1: '10.180.0.1',
  ep2: '10.180.2.1',
  ep3: '10.180.3.1',
  client: TEST_EXTERNAL_CLIENT,
  blocked: TEST_EXTERNAL_CLIENT_BLOCKED,
  sourceRange: ' 203.0.113.0/25',
  nodeIP: '192.168.0.2',
  altNodeIP: '192.168.1.2',
  localhost: '127.0.0.1',
  externalIP: '192.168.99.33',
  localExternalIP: '192.168.99.11',
  lbIP1: '1.2.3.4',
  lbIP2: '5.6.7.8',
  nodeRange: '192.168.0.0/24',
};

const V6: Addrs = {
  family: 'IPv6',
  pod: 'fd00:10::2',
  svcIP: 'fd00:172:30::41',
  ep1: 'fd00:10:180::1',
  ep2: 'fd00:10:180::2:1',
  ep3: 'fd00:10:180::3:1',
  client: '2600:5200::1',
  blocked: '2600:5200:1::1',
  sourceRange: '2600:5200::/64',
  nodeIP: '2001:db8::1',
  altNodeIP: '2001:db8:1::2',
  localhost: '::1',
  externalIP: '2001:db8:99::33',
  localExternalIP: '2001:db8:1::2',
  lbIP1: '2001:db8:1b::1',
  lbIP2: '2001:db8:1b::2',
  nodeRange: '2001:db8::/64',
};

function config(a: Addrs, overrides: Partial<RenderConfig> = {}): RenderConfig {
  return fakeProxierConfig(a.family, { nodeIPs: ['192.168.0.2', '2001:db8::1'], ...overrides });
}

const ep = (ip: string, port = 80) => joinHostPort(ip, port);

/** One service port `ns1/svc1:p80` with the given endpoints (ip, spec) on target port `targetPort`. */
function oneService(
  a: Addrs,
  spec: Partial<ServicePortSpec>,
  endpoints: readonly (readonly [string, EndpointSpec?])[],
  targetPort = 80,
) {
  const svc = makeServicePort({ ns: 'ns1', name: 'svc1', clusterIP: a.svcIP, port: 80, ...spec });
  return makeState([svc], [[svc, endpoints.map(([ip, s]) => makeEndpoint(ip, targetPort, s ?? {}))]]);
}

describe.each([V4, V6])('$family', (a) => {
  const both = `${ep(a.ep1)}, ${ep(a.ep2)}`;

  describe('ClusterIP', async () => {
    const svc1 = makeServicePort({ ns: 'ns1', name: 'svc1', portName: 'http', clusterIP: a.svcIP, port: 80 });
    const svc2IP = a.family === 'IPv4' ? '172.30.0.42' : 'fd00:172:30::42';
    const svc2 = (name: string, port: number, protocol: 'TCP' | 'UDP' | 'SCTP' = 'TCP') =>
      makeServicePort({ ns: 'ns2', name: 'svc2', portName: name, clusterIP: svc2IP, port, protocol });
    const http = svc2('http', 80);
    const https = svc2('https', 443);
    const dnsUDP = svc2('dns-udp', 53, 'UDP');
    const dnsTCP = svc2('dns-tcp', 53, 'TCP');
    const dnsSCTP = svc2('dns-sctp', 53, 'SCTP');
    const local = { local: true };
    const state = makeState(
      [svc1, http, https, dnsUDP, dnsTCP, dnsSCTP],
      [
        [svc1, [makeEndpoint(a.ep1, 80, local)]],
        [http, [makeEndpoint(a.ep1, 80, local), makeEndpoint(a.ep2, 80)]],
        [https, [makeEndpoint(a.ep1, 8443, local), makeEndpoint(a.ep2, 8443)]],
        [dnsUDP, [makeEndpoint(a.ep1, 53, local), makeEndpoint(a.ep2, 53)]],
        [dnsTCP, [makeEndpoint(a.ep1, 5353, local), makeEndpoint(a.ep2, 5353)]],
        [dnsSCTP, [makeEndpoint(a.ep1, 53, local), makeEndpoint(a.ep2, 53)]],
      ],
    );
    const rules = await rulesFor(state, config(a));
    it.each<FlowRow>([
      { name: 'simple clusterIP', source: a.pod, dest: a.svcIP, port: 80, output: ep(a.ep1), masq: false },
      {
        name: 'hairpin to cluster IP',
        source: a.ep1,
        dest: a.svcIP,
        port: 80,
        output: ep(a.ep1),
        masq: true,
      },
      {
        name: 'node to cluster IP is masqueraded (not from the pod network)',
        source: a.nodeIP,
        dest: a.svcIP,
        port: 80,
        output: ep(a.ep1),
        masq: true,
      },
      {
        name: 'outside to cluster IP is masqueraded',
        source: a.client,
        dest: a.svcIP,
        port: 80,
        output: ep(a.ep1),
        masq: true,
      },
      {
        name: 'clusterIP with multiple endpoints',
        source: a.pod,
        dest: svc2IP,
        port: 80,
        output: both,
        masq: false,
      },
      {
        name: 'clusterIP with TargetPort',
        source: a.pod,
        dest: svc2IP,
        port: 443,
        output: `${ep(a.ep1, 8443)}, ${ep(a.ep2, 8443)}`,
        masq: false,
      },
      {
        name: 'TCP, UDP and SCTP on the same port (TCP)',
        source: a.pod,
        dest: svc2IP,
        port: 53,
        protocol: 'tcp',
        output: `${ep(a.ep1, 5353)}, ${ep(a.ep2, 5353)}`,
        masq: false,
      },
      {
        name: 'TCP, UDP and SCTP on the same port (UDP)',
        source: a.pod,
        dest: svc2IP,
        port: 53,
        protocol: 'udp',
        output: `${ep(a.ep1, 53)}, ${ep(a.ep2, 53)}`,
        masq: false,
      },
      {
        name: 'TCP, UDP and SCTP on the same port (SCTP)',
        source: a.pod,
        dest: svc2IP,
        port: 53,
        protocol: 'sctp',
        output: `${ep(a.ep1, 53)}, ${ep(a.ep2, 53)}`,
        masq: false,
      },
      {
        name: 'TCP-only port does not match UDP traffic',
        source: a.pod,
        dest: svc2IP,
        port: 80,
        protocol: 'udp',
        output: '',
        masq: false,
      },
      {
        name: "svc1 does not accept svc2's ports",
        source: a.pod,
        dest: a.svcIP,
        port: 443,
        output: '',
        masq: false,
      },
    ])('$name', (row) => runFlow(rules, row));
  });

  describe('several endpoints: probabilities', async () => {
    const rules = await rulesFor(oneService(a, {}, [[a.ep1], [a.ep2], [a.ep3]]), config(a));
    it('a pod reaches each of three endpoints with probability 1/3', () => {
      const s = summarize(
        tracePacket(
          rules,
          { sourceIP: a.pod, destIP: a.svcIP, destPort: 80, protocol: 'tcp', entry: 'pod' },
          {
            localAddresses: TEST_NODE_IPS,
          },
        ),
      );
      expect(s.endpoints.map((e) => e.endpoint)).toEqual([ep(a.ep1), ep(a.ep2), ep(a.ep3)]);
      for (const e of s.endpoints) expect(e.probability).toBeCloseTo(1 / 3, 9);
    });
  });

  describe('masquerading and the local detector (TestInternalExternalMasquerade settings)', () => {
    const variants = [
      {
        name: 'ClusterCIDR detector',
        overrides: {},
        pod: false,
        node: true,
        outside: true,
        podToLocalNodePort: 'all',
      },
      {
        name: 'no detector',
        overrides: { localDetector: { mode: 'none' as const } },
        pod: false,
        node: false,
        outside: false,
        podToLocalNodePort: 'local',
      },
      {
        name: '--masquerade-all',
        overrides: { masqueradeAll: true },
        pod: true,
        node: true,
        outside: true,
        podToLocalNodePort: 'all',
      },
      {
        name: '--masquerade-all, no detector',
        overrides: { masqueradeAll: true, localDetector: { mode: 'none' as const } },
        pod: true,
        node: true,
        outside: true,
        podToLocalNodePort: 'local',
      },
    ];
    describe.each(variants)('$name', async (v) => {
      const svc = makeServicePort({
        ns: 'ns1',
        name: 'svc1',
        clusterIP: a.svcIP,
        port: 80,
        nodePort: 3001,
        externalPolicyLocal: true,
      });
      const state = makeState(
        [svc],
        [[svc, [makeEndpoint(a.ep1, 80), makeEndpoint(a.ep2, 80, { local: true })]]],
      );
      const rules = await rulesFor(state, config(a, v.overrides));
      it.each<FlowRow>([
        { name: 'pod to cluster IP', source: a.pod, dest: a.svcIP, port: 80, output: both, masq: v.pod },
        { name: 'node to cluster IP', source: a.nodeIP, dest: a.svcIP, port: 80, output: both, masq: v.node },
        {
          name: 'outside to cluster IP',
          source: a.client,
          dest: a.svcIP,
          port: 80,
          output: both,
          masq: v.outside,
        },
        {
          name: 'pod to eTP=Local NodePort (short-circuit only with a detector)',
          source: a.pod,
          dest: a.nodeIP,
          port: 3001,
          output: v.podToLocalNodePort === 'all' ? both : ep(a.ep2),
          // --masquerade-all only marks traffic to the cluster IP itself.
          masq: false,
        },
        {
          name: 'outside to eTP=Local NodePort: local endpoint, source kept',
          source: a.client,
          dest: a.nodeIP,
          port: 3001,
          output: ep(a.ep2),
          masq: false,
        },
        {
          name: 'node to eTP=Local NodePort: all endpoints, masqueraded',
          source: a.nodeIP,
          dest: a.nodeIP,
          port: 3001,
          output: both,
          masq: true,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
  });

  describe('NodePort (TestNodePorts)', () => {
    const cases = [
      { name: 'localhost-nodeports enabled', overrides: { localhostNodePorts: true }, altAllowed: true },
      { name: 'localhost-nodeports disabled', overrides: { localhostNodePorts: false }, altAllowed: true },
      {
        name: 'nodeport-addresses limited to the primary network',
        overrides: { localhostNodePorts: false, nodePortAddresses: [a.nodeRange] },
        altAllowed: false,
      },
    ];
    describe.each(cases)('$name', async (c) => {
      const state = oneService(a, { nodePort: 3001 }, [[a.ep1], [a.ep2, { local: true }]]);
      const rules = await rulesFor(state, config(a, c.overrides));
      const localhostWorks = a.family === 'IPv4' && c.overrides.localhostNodePorts;
      it.each<FlowRow>([
        { name: 'pod to cluster IP', source: a.pod, dest: a.svcIP, port: 80, output: both, masq: false },
        {
          name: 'external to nodePort',
          source: a.client,
          dest: a.nodeIP,
          port: 3001,
          output: both,
          masq: true,
        },
        { name: 'node to nodePort', source: a.nodeIP, dest: a.nodeIP, port: 3001, output: both, masq: true },
        {
          name: localhostWorks
            ? 'localhost to nodePort gets masqueraded'
            : 'localhost to nodePort is ignored',
          source: a.localhost,
          dest: a.localhost,
          port: 3001,
          output: localhostWorks ? both : '',
          masq: localhostWorks,
        },
        {
          name: c.altAllowed ? 'external to nodePort on secondary IP' : 'secondary node IP ignores NodePorts',
          source: a.client,
          dest: a.altNodeIP,
          port: 3001,
          output: c.altAllowed ? both : '',
          masq: c.altAllowed,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
  });

  describe('externalIPs, eTP=Cluster (TestExternalTrafficPolicyCluster)', async () => {
    const state = oneService(
      a,
      { nodePort: 3001, externalIPs: [a.externalIP], loadBalancerVIPs: [a.lbIP1] },
      [[a.ep1], [a.ep2, { local: true }]],
    );
    const rules = await rulesFor(state, config(a));
    it.each<FlowRow>([
      {
        name: 'pod to cluster IP hits both endpoints, unmasqueraded',
        source: a.pod,
        dest: a.svcIP,
        port: 80,
        output: both,
        masq: false,
      },
      {
        name: 'pod to external IP hits both endpoints, masqueraded',
        source: a.pod,
        dest: a.externalIP,
        port: 80,
        output: both,
        masq: true,
      },
      {
        name: 'external to external IP hits both endpoints, masqueraded',
        source: a.client,
        dest: a.externalIP,
        port: 80,
        output: both,
        masq: true,
      },
      {
        name: 'node to external IP hits both endpoints, masqueraded',
        source: a.nodeIP,
        dest: a.externalIP,
        port: 80,
        output: both,
        masq: true,
      },
      {
        name: 'pod to LB IP hits both endpoints, masqueraded',
        source: a.pod,
        dest: a.lbIP1,
        port: 80,
        output: both,
        masq: true,
      },
      {
        name: 'external to LB IP hits both endpoints, masqueraded',
        source: a.client,
        dest: a.lbIP1,
        port: 80,
        output: both,
        masq: true,
      },
      {
        name: 'external to external IP on another port: nothing',
        source: a.client,
        dest: a.externalIP,
        port: 81,
        output: '',
        masq: false,
      },
    ])('$name', (row) => runFlow(rules, row));
  });

  describe('LoadBalancer with source ranges (TestLoadBalancer)', async () => {
    const state = oneService(
      a,
      {
        nodePort: 3001,
        loadBalancerVIPs: [a.lbIP1, a.lbIP2],
        loadBalancerSourceRanges: [a.nodeRange, a.sourceRange],
      },
      [[a.ep1]],
    );
    const rules = await rulesFor(state, config(a));
    const one = ep(a.ep1);
    it.each<FlowRow>([
      { name: 'pod to cluster IP', source: a.pod, dest: a.svcIP, port: 80, output: one, masq: false },
      { name: 'external to nodePort', source: a.client, dest: a.nodeIP, port: 3001, output: one, masq: true },
      {
        name: 'nodePort bypasses LoadBalancerSourceRanges',
        source: a.blocked,
        dest: a.nodeIP,
        port: 3001,
        output: one,
        masq: true,
      },
      {
        name: 'accepted external to LB1',
        source: a.client,
        dest: a.lbIP1,
        port: 80,
        output: one,
        masq: true,
      },
      {
        name: 'accepted external to LB2',
        source: a.client,
        dest: a.lbIP2,
        port: 80,
        output: one,
        masq: true,
      },
      {
        name: 'blocked external to LB1',
        source: a.blocked,
        dest: a.lbIP1,
        port: 80,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'blocked external to LB2',
        source: a.blocked,
        dest: a.lbIP2,
        port: 80,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'pod to LB1 (blocked by LoadBalancerSourceRanges)',
        source: a.pod,
        dest: a.lbIP1,
        port: 80,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'pod to LB2 (blocked by LoadBalancerSourceRanges)',
        source: a.pod,
        dest: a.lbIP2,
        port: 80,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'node to LB1 (allowed by LoadBalancerSourceRanges)',
        source: a.nodeIP,
        dest: a.lbIP1,
        port: 80,
        output: one,
        masq: true,
      },
      {
        name: 'node to LB2 (allowed by LoadBalancerSourceRanges)',
        source: a.nodeIP,
        dest: a.lbIP2,
        port: 80,
        output: one,
        masq: true,
      },
      {
        name: 'same node to LB1, SNATted to LB1 (implicitly allowed)',
        source: a.lbIP1,
        dest: a.lbIP1,
        port: 80,
        entry: 'outside',
        output: one,
        masq: true,
      },
      {
        name: 'same node to LB2, SNATted to LB2 (implicitly allowed)',
        source: a.lbIP2,
        dest: a.lbIP2,
        port: 80,
        entry: 'outside',
        output: one,
        masq: true,
      },
    ])('$name', (row) => runFlow(rules, row));

    it('a blocked client is dropped by KUBE-PROXY-FIREWALL after falling off the KUBE-FW chain', () => {
      const r = tracePacket(
        rules,
        { sourceIP: a.blocked, destIP: a.lbIP1, destPort: 80, protocol: 'tcp', entry: 'outside' },
        {
          localAddresses: TEST_NODE_IPS,
        },
      );
      const chains = r.paths[0]!.steps.map((s) => `${s.table} ${s.chain}`);
      expect(chains).toContain('nat KUBE-FW-XPGD46QRK7WJZT7O');
      expect(r.paths[0]!.steps.at(-1)).toMatchObject({
        table: 'filter',
        chain: 'KUBE-PROXY-FIREWALL',
        action: 'DROP',
      });
    });
  });

  describe('sessionAffinity ClientIP', async () => {
    const state = oneService(a, { sessionAffinity: { type: 'ClientIP', timeoutSeconds: 10800 } }, [
      [a.ep1],
      [a.ep2],
    ]);
    const rules = await rulesFor(state, config(a));
    it.each<FlowRow>([
      {
        name: 'a new client (no affinity yet) is balanced over both endpoints',
        source: a.pod,
        dest: a.svcIP,
        port: 80,
        output: both,
        masq: false,
      },
    ])('$name', (row) => runFlow(rules, row));

    it('the affinity checks do not match and the chosen endpoint records the client', () => {
      const r = tracePacket(
        rules,
        { sourceIP: a.pod, destIP: a.svcIP, destPort: 80, protocol: 'tcp', entry: 'pod' },
        {
          localAddresses: TEST_NODE_IPS,
        },
      );
      for (const path of r.paths) {
        const texts = path.steps.map((s) => s.text);
        expect(texts.some((t) => t.includes('--rcheck'))).toBe(false);
        expect(texts.some((t) => t.includes('--set') && t.includes('-j DNAT'))).toBe(true);
      }
    });
  });

  describe('externalTrafficPolicy=Local (TestExternalTrafficPolicyLocal)', async () => {
    const state = oneService(
      a,
      {
        nodePort: 3001,
        externalIPs: [a.localExternalIP],
        loadBalancerVIPs: [a.lbIP1],
        healthCheckNodePort: 30000,
        externalPolicyLocal: true,
      },
      [[a.ep1], [a.ep2, { local: true }]],
    );
    const rules = await rulesFor(state, config(a));
    const localOnly = ep(a.ep2);
    it.each<FlowRow>([
      {
        name: 'pod to cluster IP hits both endpoints, unmasqueraded',
        source: a.pod,
        dest: a.svcIP,
        port: 80,
        output: both,
        masq: false,
      },
      {
        name: 'pod to external IP hits both endpoints, unmasqueraded',
        source: a.pod,
        dest: a.localExternalIP,
        port: 80,
        output: both,
        masq: false,
      },
      {
        name: 'external to external IP hits only local endpoint, unmasqueraded',
        source: a.client,
        dest: a.localExternalIP,
        port: 80,
        output: localOnly,
        masq: false,
      },
      {
        name: 'pod to LB IP hits both endpoints, unmasqueraded',
        source: a.pod,
        dest: a.lbIP1,
        port: 80,
        output: both,
        masq: false,
      },
      {
        name: 'external to LB IP hits only local endpoint, unmasqueraded',
        source: a.client,
        dest: a.lbIP1,
        port: 80,
        output: localOnly,
        masq: false,
      },
      {
        name: 'pod to NodePort hits both endpoints, unmasqueraded',
        source: a.pod,
        dest: a.nodeIP,
        port: 3001,
        output: both,
        masq: false,
      },
      {
        name: 'external to NodePort hits only local endpoint, unmasqueraded',
        source: a.client,
        dest: a.nodeIP,
        port: 3001,
        output: localOnly,
        masq: false,
      },
      {
        name: 'node to LB IP hits both endpoints, masqueraded',
        source: a.nodeIP,
        dest: a.lbIP1,
        port: 80,
        output: both,
        masq: true,
      },
      {
        name: 'the health check node port is accepted',
        source: a.client,
        dest: a.nodeIP,
        port: 30000,
        output: 'ACCEPT',
        masq: false,
      },
    ])('$name', (row) => runFlow(rules, row));
  });

  describe('externalTrafficPolicy=Local without a local endpoint', async () => {
    const state = oneService(
      a,
      {
        nodePort: 3001,
        externalIPs: [a.externalIP],
        loadBalancerVIPs: [a.lbIP1],
        healthCheckNodePort: 30000,
        externalPolicyLocal: true,
      },
      [[a.ep1]],
    );
    const rules = await rulesFor(state, config(a));
    it.each<FlowRow>([
      {
        name: 'pod to cluster IP reaches the remote endpoint',
        source: a.pod,
        dest: a.svcIP,
        port: 80,
        output: ep(a.ep1),
        masq: false,
      },
      {
        name: 'pod to LB IP short-circuits to the remote endpoint',
        source: a.pod,
        dest: a.lbIP1,
        port: 80,
        output: ep(a.ep1),
        masq: false,
      },
      {
        name: 'node to external IP is routed to the remote endpoint, masqueraded',
        source: a.nodeIP,
        dest: a.externalIP,
        port: 80,
        output: ep(a.ep1),
        masq: true,
      },
      {
        name: 'external to external IP is dropped',
        source: a.client,
        dest: a.externalIP,
        port: 80,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'external to LB IP is dropped',
        source: a.client,
        dest: a.lbIP1,
        port: 80,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'external to NodePort is dropped',
        source: a.client,
        dest: a.nodeIP,
        port: 3001,
        output: 'DROP',
        masq: false,
      },
      {
        name: 'the health check node port is still accepted',
        source: a.nodeIP,
        dest: a.nodeIP,
        port: 30000,
        output: 'ACCEPT',
        masq: false,
      },
    ])('$name', (row) => runFlow(rules, row));
  });

  describe('internalTrafficPolicy=Local (TestInternalTrafficPolicy)', () => {
    describe('with a local endpoint', async () => {
      const state = oneService(a, { nodePort: 3001, internalPolicyLocal: true }, [
        [a.ep1],
        [a.ep2, { local: true }],
      ]);
      const rules = await rulesFor(state, config(a));
      it.each<FlowRow>([
        {
          name: 'pod to cluster IP hits only the local endpoint',
          source: a.pod,
          dest: a.svcIP,
          port: 80,
          output: ep(a.ep2),
          masq: false,
        },
        {
          name: 'node to cluster IP hits only the local endpoint, masqueraded',
          source: a.nodeIP,
          dest: a.svcIP,
          port: 80,
          output: ep(a.ep2),
          masq: true,
        },
        {
          name: 'external to NodePort hits all endpoints (iTP is for cluster IPs only)',
          source: a.client,
          dest: a.nodeIP,
          port: 3001,
          output: both,
          masq: true,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
    describe('without a local endpoint', async () => {
      const state = oneService(a, { internalPolicyLocal: true }, [[a.ep1]]);
      const rules = await rulesFor(state, config(a));
      it.each<FlowRow>([
        {
          name: 'pod to cluster IP is dropped',
          source: a.pod,
          dest: a.svcIP,
          port: 80,
          output: 'DROP',
          masq: false,
        },
        {
          name: 'node to cluster IP is dropped',
          source: a.nodeIP,
          dest: a.svcIP,
          port: 80,
          output: 'DROP',
          masq: false,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
  });

  describe('terminating endpoints', () => {
    const terminating = { ready: false, serving: true, terminating: true };
    const gone = { ready: false, serving: false, terminating: true };
    describe('Cluster policy: serving terminating endpoints are used when none is ready', async () => {
      const state = oneService(a, {}, [
        [a.ep1, terminating],
        [a.ep2, terminating],
        [a.ep3, gone],
      ]);
      const rules = await rulesFor(state, config(a));
      it.each<FlowRow>([
        {
          name: 'pod to cluster IP falls back to the serving terminating endpoints',
          source: a.pod,
          dest: a.svcIP,
          port: 80,
          output: both,
          masq: false,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
    describe('Cluster policy: ready endpoints win over terminating ones', async () => {
      const state = oneService(a, {}, [[a.ep1, terminating], [a.ep2]]);
      const rules = await rulesFor(state, config(a));
      it.each<FlowRow>([
        {
          name: 'pod to cluster IP reaches only the ready endpoint',
          source: a.pod,
          dest: a.svcIP,
          port: 80,
          output: ep(a.ep2),
          masq: false,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
    describe('eTP=Local: a local serving terminating endpoint is used for external traffic', async () => {
      const state = oneService(a, { nodePort: 3001, externalPolicyLocal: true }, [
        [a.ep1],
        [a.ep2, { local: true, ...terminating }],
      ]);
      const rules = await rulesFor(state, config(a));
      it.each<FlowRow>([
        {
          name: 'external to NodePort reaches the local terminating endpoint',
          source: a.client,
          dest: a.nodeIP,
          port: 3001,
          output: ep(a.ep2),
          masq: false,
        },
        {
          name: 'pod to cluster IP reaches only the ready endpoint',
          source: a.pod,
          dest: a.svcIP,
          port: 80,
          output: ep(a.ep1),
          masq: false,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
    describe('no serving endpoint at all', async () => {
      const state = oneService(a, { nodePort: 3001 }, [[a.ep1, gone]]);
      const rules = await rulesFor(state, config(a));
      it.each<FlowRow>([
        {
          name: 'pod to cluster IP is rejected',
          source: a.pod,
          dest: a.svcIP,
          port: 80,
          output: 'REJECT',
          masq: false,
        },
        {
          name: 'external to NodePort is rejected',
          source: a.client,
          dest: a.nodeIP,
          port: 3001,
          output: 'REJECT',
          masq: false,
        },
      ])('$name', (row) => runFlow(rules, row));
    });
  });

  describe('no endpoints (TestNoEndpointsReject)', async () => {
    const state = oneService(
      a,
      { nodePort: 3001, externalIPs: [a.localExternalIP], loadBalancerVIPs: [a.lbIP1] },
      [],
    );
    const rules = await rulesFor(state, config(a));
    it.each<FlowRow>([
      {
        name: 'pod to cluster IP with no endpoints',
        source: a.pod,
        dest: a.svcIP,
        port: 80,
        output: 'REJECT',
        masq: false,
      },
      {
        name: 'external to external IP with no endpoints',
        source: a.client,
        dest: a.localExternalIP,
        port: 80,
        output: 'REJECT',
        masq: false,
      },
      {
        name: 'pod to NodePort with no endpoints',
        source: a.pod,
        dest: a.nodeIP,
        port: 3001,
        output: 'REJECT',
        masq: false,
      },
      {
        name: 'external to NodePort with no endpoints',
        source: a.client,
        dest: a.nodeIP,
        port: 3001,
        output: 'REJECT',
        masq: false,
      },
      {
        name: 'pod to LoadBalancer IP with no endpoints',
        source: a.pod,
        dest: a.lbIP1,
        port: 80,
        output: 'REJECT',
        masq: false,
      },
      {
        name: 'external to LoadBalancer IP with no endpoints',
        source: a.client,
        dest: a.lbIP1,
        port: 80,
        output: 'REJECT',
        masq: false,
      },
      {
        name: 'node to cluster IP with no endpoints',
        source: a.nodeIP,
        dest: a.svcIP,
        port: 80,
        output: 'REJECT',
        masq: false,
      },
    ])('$name', (row) => runFlow(rules, row));
  });
});

describe('TestOverallIPTablesRules cluster (TestTracePacket rows over our own rendering)', async () => {
  const rules = await rulesFor(overallIPTablesRulesState(), fakeProxierConfig('IPv4'));
  it.each<FlowRow>([
    { name: 'no match', source: '10.0.0.2', dest: '10.0.0.3', port: 80, output: '', masq: false },
    {
      name: 'single endpoint',
      source: '10.0.0.2',
      dest: '172.30.0.41',
      port: 80,
      output: '10.180.0.1:80',
      masq: false,
    },
    {
      name: 'multiple endpoints',
      source: '10.0.0.2',
      dest: '172.30.0.44',
      port: 80,
      output: '10.180.0.4:80, 10.180.0.5:80',
      masq: false,
    },
    {
      name: 'LOCAL, KUBE-MARK-MASQ',
      source: '192.168.0.2',
      dest: '192.168.99.22',
      port: 80,
      output: '10.180.0.2:80',
      masq: true,
    },
    {
      name: 'DROP',
      source: TEST_EXTERNAL_CLIENT,
      dest: '192.168.99.22',
      port: 80,
      output: 'DROP',
      masq: false,
    },
    {
      name: 'ACCEPT (NodePortHealthCheck)',
      source: '192.168.0.2',
      dest: '192.168.0.2',
      port: 30000,
      output: 'ACCEPT',
      masq: false,
    },
    { name: 'REJECT', source: '10.0.0.2', dest: '172.30.0.46', port: 80, output: 'REJECT', masq: false },
    {
      name: 'NodePort from outside, eTP=Cluster',
      source: TEST_EXTERNAL_CLIENT,
      dest: '192.168.0.2',
      port: 3003,
      output: '10.180.0.3:80',
      masq: true,
    },
    {
      name: 'LB with affinity from an allowed client',
      source: TEST_EXTERNAL_CLIENT,
      dest: '5.6.7.8',
      port: 80,
      output: '10.180.0.3:80',
      masq: true,
    },
    {
      name: 'LB from a blocked client',
      source: TEST_EXTERNAL_CLIENT_BLOCKED,
      dest: '5.6.7.8',
      port: 80,
      output: 'DROP',
      masq: false,
    },
    {
      name: 'external IP of a NodePort service without node port',
      source: TEST_EXTERNAL_CLIENT,
      dest: '192.168.99.33',
      port: 80,
      output: '10.180.0.4:80, 10.180.0.5:80',
      masq: true,
    },
  ])('$name', (row) => runFlow(rules, row));
});
