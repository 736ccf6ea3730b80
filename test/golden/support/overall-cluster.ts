/**
 * The cluster of upstream's TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go): six
 * services covering ClusterIP, LoadBalancer with eTP=Local and no local endpoint, NodePort,
 * external IP, LoadBalancer with source range and session affinity, and a service without
 * endpoints. The golden test, the render CLI test (against test/fixtures/render/overall.yaml)
 * and the packet-flow test all use this one definition.
 */
import type { RenderState } from '../../../proxier/render.ts';
import { makeEndpoint, makeServicePort, makeState } from './builders.ts';

export function overallIPTablesRulesState(): RenderState {
  const svc1 = makeServicePort({ ns: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', port: 80 });
  // LoadBalancer, eTP=Local; its only endpoint has no nodeName, so it is not local.
  const svc2 = makeServicePort({
    ns: 'ns2',
    name: 'svc2',
    clusterIP: '172.30.0.42',
    port: 80,
    nodePort: 3001,
    loadBalancerVIPs: ['1.2.3.4'],
    externalIPs: ['192.168.99.22'],
    healthCheckNodePort: 30000,
    externalPolicyLocal: true,
  });
  const svc3 = makeServicePort({
    ns: 'ns3',
    name: 'svc3',
    clusterIP: '172.30.0.43',
    port: 80,
    nodePort: 3003,
  });
  // Type NodePort without a node port, with an external IP.
  const svc4 = makeServicePort({
    ns: 'ns4',
    name: 'svc4',
    clusterIP: '172.30.0.44',
    port: 80,
    externalIPs: ['192.168.99.33'],
  });
  // eTP=Cluster: its spec.healthCheckNodePort does not count (the tracker leaves 0).
  const svc5 = makeServicePort({
    ns: 'ns5',
    name: 'svc5',
    clusterIP: '172.30.0.45',
    port: 80,
    nodePort: 3002,
    loadBalancerVIPs: ['5.6.7.8'],
    loadBalancerSourceRanges: ['203.0.113.0/25'],
    sessionAffinity: { type: 'ClientIP', timeoutSeconds: 10800 },
  });
  const svc6 = makeServicePort({ ns: 'ns6', name: 'svc6', clusterIP: '172.30.0.46', port: 80 });
  return makeState(
    [svc1, svc2, svc3, svc4, svc5, svc6],
    [
      [svc1, [makeEndpoint('10.180.0.1', 80)]],
      [svc2, [makeEndpoint('10.180.0.2', 80)]],
      [svc3, [makeEndpoint('10.180.0.3', 80)]],
      [svc4, [makeEndpoint('10.180.0.4', 80), makeEndpoint('10.180.0.5', 80, { local: true })]],
      [svc5, [makeEndpoint('10.180.0.3', 80)]],
    ],
  );
}
