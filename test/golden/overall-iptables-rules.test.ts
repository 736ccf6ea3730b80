/**
 * Golden test: upstream's TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go,
 * reference version). Six services covering ClusterIP, LoadBalancer with eTP=Local and no local
 * endpoint, NodePort, external IP, LoadBalancer with source range and session affinity, and a
 * service without endpoints; the expected text is upstream's, verbatim.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderRules } from '../../proxier/render.ts';
import {
  fakeProxierConfig,
  makeEndpoint,
  makeServicePort,
  makeState,
  TEST_NODE_IP,
} from './support/builders.ts';
import { checkRuleJumps, parseDump, sortIPTablesRules, testMarkSpelling } from './support/normalize.ts';
import { overallIPTablesRulesState } from './support/overall-cluster.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

function countRules(text: string, table: string): number {
  return parseDump(text)
    .filter((t) => t.name === table)
    .reduce((n, t) => n + t.rules.length, 0);
}

describe('TestOverallIPTablesRules', () => {
  const result = renderRules(overallIPTablesRulesState(), fakeProxierConfig('IPv4'), { full: true });

  it('renders upstream’s expected ruleset', () => {
    expect(sortIPTablesRules(testMarkSpelling(result.payload))).toBe(fixture('overall-iptables-rules.txt'));
  });

  it('passes the jump consistency check', () => {
    expect(checkRuleJumps(result.payload)).toEqual([]);
  });

  it('reports the nat rule count that the payload holds', () => {
    expect(result.ruleCounts.nat.total).toBe(countRules(result.payload, 'nat'));
    expect(result.natRuleCount).toBe(countRules(result.payload, 'nat'));
    expect(result.filterRuleCount).toBe(countRules(result.payload, 'filter'));
  });

  it('counts eTP=Local services without local endpoints', () => {
    expect(result.noLocalEndpoints).toEqual({ internal: 0, external: 1 });
  });

  it('keeps the nodeports jump as the last nat rule', () => {
    const natRules = result.nat.rules.lines;
    expect(natRules.at(-1)).toContain('-j KUBE-NODEPORTS');
    expect(natRules.at(-1)).toMatch(/^-A KUBE-SERVICES /);
  });

  it('writes the real mark spelling, %#08x', () => {
    expect(result.payload).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000\n');
    expect(TEST_NODE_IP).toBe('192.168.0.2');
  });
});

describe('TestBadIPs', () => {
  // The tracker canonicalises 172.30.0.041, 1.2.3.004, 192.168.099.022, 203.0.113.000/025 and
  // 10.180.00.001; the renderer receives canonical values.
  const svc = makeServicePort({
    ns: 'ns1',
    name: 'svc1',
    clusterIP: '172.30.0.41',
    port: 80,
    nodePort: 3001,
    loadBalancerVIPs: ['1.2.3.4'],
    externalIPs: ['192.168.99.22'],
    loadBalancerSourceRanges: ['203.0.113.0/25'],
  });
  const result = renderRules(
    makeState([svc], [[svc, [makeEndpoint('10.180.0.1', 80)]]]),
    fakeProxierConfig(),
    {
      full: true,
    },
  );

  it('renders upstream’s expected ruleset', () => {
    expect(sortIPTablesRules(testMarkSpelling(result.payload))).toBe(fixture('bad-ips.txt'));
    expect(checkRuleJumps(result.payload)).toEqual([]);
  });
});
