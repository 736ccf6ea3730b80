/**
 * Golden tests from the older upstream proxier_test.go (~v1.27/1.28), which compared whole dumps
 * for more scenarios: TestExternalTrafficPolicyLocal, TestEnableLocalhostNodePortsIPv4,
 * TestDisableLocalhostNodePortsIPv4, TestDisableLocalhostNodePortsIPv4WithNodeAddress and
 * TestEnableLocalhostNodePortsIPv6. Those versions predate nfacct, so the counters are absent.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RenderConfig } from '../../proxier/render.ts';
import { renderRules } from '../../proxier/render.ts';
import type { IPFamily } from '../../proxier/types.ts';
import { fakeProxierConfig, makeEndpoint, makeServicePort, makeState } from './support/builders.ts';
import { checkRuleJumps, sortIPTablesRules, testMarkSpelling } from './support/normalize.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

function legacyConfig(family: IPFamily, overrides: Partial<RenderConfig> = {}): RenderConfig {
  return fakeProxierConfig(family, { nfacctCounters: new Set(), ...overrides });
}

function expectGolden(payload: string, name: string): void {
  expect(sortIPTablesRules(testMarkSpelling(payload))).toBe(fixture(name));
  expect(checkRuleJumps(payload)).toEqual([]);
}

describe('TestExternalTrafficPolicyLocal (legacy)', () => {
  it('short-circuits pod and host traffic and sends the rest to the local endpoint', () => {
    const svc = makeServicePort({
      ns: 'ns1',
      name: 'svc1',
      clusterIP: '172.30.0.41',
      port: 80,
      nodePort: 3001,
      healthCheckNodePort: 30000,
      externalIPs: ['192.168.99.11'],
      loadBalancerVIPs: ['1.2.3.4'],
      externalPolicyLocal: true,
    });
    const state = makeState(
      [svc],
      [[svc, [makeEndpoint('10.180.0.1', 80), makeEndpoint('10.180.2.1', 80, { local: true })]]],
    );
    const result = renderRules(state, legacyConfig('IPv4'), { full: true });
    expectGolden(result.payload, 'legacy-external-traffic-policy-local.txt');
    expect(result.noLocalEndpoints).toEqual({ internal: 0, external: 0 });
  });
});

describe('localhost NodePorts (legacy)', () => {
  // NodePort service, eTP=Local, one remote and one local endpoint, no local detector.
  function nodePortState(family: IPFamily) {
    const v4 = family === 'IPv4';
    const svc = makeServicePort({
      ns: 'ns1',
      name: 'svc1',
      clusterIP: v4 ? '10.69.0.10' : 'fd00:ab34::20',
      port: 80,
      nodePort: 30001,
      externalPolicyLocal: true,
    });
    const [ep1, ep2] = v4 ? ['10.244.0.1', '10.244.2.1'] : ['ff06::c1', 'ff06::c2'];
    return makeState([svc], [[svc, [makeEndpoint(ep1!, 80), makeEndpoint(ep2!, 80, { local: true })]]]);
  }
  const noDetector = { localDetector: { mode: 'none' } } as const;

  it.each<{
    name: string;
    family: IPFamily;
    config: Partial<RenderConfig>;
    golden: string;
    warnings: readonly string[];
  }>([
    {
      name: 'TestEnableLocalhostNodePortsIPv4: KUBE-FIREWALL and an unrestricted nodeports jump',
      family: 'IPv4',
      config: { localhostNodePorts: true },
      golden: 'legacy-enable-localhost-nodeports-ipv4.txt',
      warnings: [],
    },
    {
      name: 'TestDisableLocalhostNodePortsIPv4: no KUBE-FIREWALL, loopback excluded',
      family: 'IPv4',
      config: { localhostNodePorts: false },
      golden: 'legacy-disable-localhost-nodeports-ipv4.txt',
      warnings: [],
    },
    {
      name: 'TestDisableLocalhostNodePortsIPv4WithNodeAddress: only loopback allowed, so no nodeports jump',
      family: 'IPv4',
      config: { localhostNodePorts: false, nodePortAddresses: ['127.0.0.0/8'] },
      golden: 'legacy-disable-localhost-nodeports-ipv4-with-node-address.txt',
      warnings: [
        '--nodeport-addresses includes localhost (127.0.0.1) but --iptables-localhost-nodeports=false was passed',
      ],
    },
    {
      name: 'TestEnableLocalhostNodePortsIPv6: bracketed endpoints, no KUBE-FIREWALL, ::1 excluded',
      family: 'IPv6',
      config: { localhostNodePorts: true },
      golden: 'legacy-enable-localhost-nodeports-ipv6.txt',
      warnings: [],
    },
  ])('$name', ({ family, config, golden, warnings }) => {
    const r = renderRules(nodePortState(family), legacyConfig(family, { ...noDetector, ...config }), {
      full: true,
    });
    expectGolden(r.payload, golden);
    expect(r.warnings).toEqual(warnings);
  });
});
