import { describe, expect, it } from 'vitest';
import { servicePortsFromService } from '../../../../proxier/serviceport.ts';
import type { ServicePort } from '../../../../proxier/types.ts';
import { makeService } from './fixtures.ts';

const one = (ports: ServicePort[]): ServicePort => {
  expect(ports).toHaveLength(1);
  return ports[0]!;
};

describe('servicePortsFromService', () => {
  it('one entry per spec port, in Service order, with the port name, protocol and node port', () => {
    const svc = makeService('ns1', 'svc1', {
      type: 'NodePort',
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', nodePort: 30054 },
        { name: 'sctp', port: 7777, protocol: 'SCTP' },
      ],
    });
    const ports = servicePortsFromService(svc, 'IPv4');
    expect(ports.map((p) => [p.name, p.port, p.protocol, p.nodePort, p.clusterIP])).toEqual([
      [{ namespace: 'ns1', name: 'svc1', port: 'dns', protocol: 'UDP' }, 53, 'UDP', 30053, '172.30.0.1'],
      [{ namespace: 'ns1', name: 'svc1', port: 'dns-tcp', protocol: 'TCP' }, 53, 'TCP', 30054, '172.30.0.1'],
      [{ namespace: 'ns1', name: 'svc1', port: 'sctp', protocol: 'SCTP' }, 7777, 'SCTP', 0, '172.30.0.1'],
    ]);
  });

  it('an unnamed port has the empty port name and defaults to TCP', () => {
    const p = one(servicePortsFromService(makeService('ns', 's', { ports: [{ port: 80 }] }), 'IPv4'));
    expect(p.name).toEqual({ namespace: 'ns', name: 's', port: '', protocol: 'TCP' });
  });

  it.each([
    ['clusterIP None (headless)', { clusterIP: 'None' }],
    ['empty clusterIP', { clusterIP: '' }],
    ['type ExternalName', { type: 'ExternalName', clusterIP: '' }],
    ['ExternalName even with a cluster IP', { type: 'ExternalName' }],
    ['a single-stack Service of the other family', { clusterIP: 'fd00::1', clusterIPs: ['fd00::1'] }],
  ])('is ignored: %s', (_name, spec) => {
    expect(
      servicePortsFromService(makeService('ns', 's', { ...spec, ports: [{ port: 80 }] }), 'IPv4'),
    ).toEqual([]);
  });

  it('prints addresses canonically (sloppy leading zeros read as decimal, IPv6 compressed)', () => {
    const svc = makeService('ns', 's', {
      clusterIP: '172.30.0.041',
      clusterIPs: ['172.30.0.041', 'FD00:0:0::0001'],
      externalIPs: ['192.168.099.033', '2001:DB8::0:1'],
      loadBalancerSourceRanges: [' 203.0.113.000/025 ', '2001:db8:0:0::/32'],
      ports: [{ port: 80 }],
    });
    const v4 = one(servicePortsFromService(svc, 'IPv4'));
    expect([v4.clusterIP, v4.externalIPs, v4.loadBalancerSourceRanges]).toEqual([
      '172.30.0.41',
      ['192.168.99.33'],
      ['203.0.113.0/25'],
    ]);
    const v6 = one(servicePortsFromService(svc, 'IPv6'));
    expect([v6.clusterIP, v6.externalIPs, v6.loadBalancerSourceRanges]).toEqual([
      'fd00::1',
      ['2001:db8::1'],
      ['2001:db8::/32'],
    ]);
  });

  it('takes the cluster IP of the family from clusterIPs, whichever family is primary', () => {
    const svc = makeService('ns', 's', {
      clusterIP: 'fd00::10',
      clusterIPs: ['fd00::10', '10.96.0.10'],
      ports: [{ port: 80 }],
    });
    expect(one(servicePortsFromService(svc, 'IPv4')).clusterIP).toBe('10.96.0.10');
    expect(one(servicePortsFromService(svc, 'IPv6')).clusterIP).toBe('fd00::10');
  });

  it('load-balancer VIPs: ingress IPs of the family, without empty, hostname-only and ipMode Proxy entries', () => {
    const svc = makeService(
      'ns',
      's',
      { type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080 }] },
      {
        status: {
          loadBalancer: {
            ingress: [
              { ip: '1.2.3.4' },
              { ip: '' },
              { hostname: 'lb.example.com' },
              { ip: '5.6.7.8', ipMode: 'Proxy' },
              { ip: '5.6.7.9', ipMode: 'VIP' },
              { ip: '2001:db8::5' },
            ],
          },
        },
      },
    );
    expect(one(servicePortsFromService(svc, 'IPv4')).loadBalancerVIPs).toEqual(['1.2.3.4', '5.6.7.9']);
  });

  it.each([
    ['None', {}, { type: 'None' }],
    [
      'ClientIP without config gets the 10800 s default',
      { sessionAffinity: 'ClientIP' },
      { type: 'ClientIP', timeoutSeconds: 10800 },
    ],
    [
      'ClientIP with timeoutSeconds',
      { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } } },
      { type: 'ClientIP', timeoutSeconds: 300 },
    ],
  ])('session affinity: %s', (_n, spec, expected) => {
    expect(
      one(servicePortsFromService(makeService('ns', 's', { ...spec, ports: [{ port: 80 }] }), 'IPv4'))
        .sessionAffinity,
    ).toEqual(expected);
  });

  it.each([
    // name, spec, externalPolicyLocal, healthCheckNodePort
    [
      'LoadBalancer, eTP Local',
      { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 345 },
      true,
      345,
    ],
    [
      'LoadBalancer, eTP Cluster',
      { type: 'LoadBalancer', externalTrafficPolicy: 'Cluster', healthCheckNodePort: 345 },
      false,
      0,
    ],
    [
      'NodePort, eTP Local: no health check',
      { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 345 },
      true,
      0,
    ],
    [
      'ClusterIP, eTP Local, no external IPs: not externally accessible',
      { externalTrafficPolicy: 'Local' },
      false,
      0,
    ],
    [
      'ClusterIP, eTP Local, with external IPs',
      { externalTrafficPolicy: 'Local', externalIPs: ['192.168.99.1'] },
      true,
      0,
    ],
    [
      'ClusterIP, eTP Local, external IPs of the other family only (upstream counts them)',
      { externalTrafficPolicy: 'Local', externalIPs: ['2001:db8::1'] },
      true,
      0,
    ],
  ])('external traffic policy: %s', (_n, spec, local, hc) => {
    const p = one(
      servicePortsFromService(makeService('ns', 's', { ...spec, ports: [{ port: 80 }] }), 'IPv4'),
    );
    expect([p.externalPolicyLocal, p.healthCheckNodePort]).toEqual([local, hc]);
  });

  it('internal traffic policy Local', () => {
    const mk = (itp?: string) =>
      one(
        servicePortsFromService(
          makeService('ns', 's', { ...(itp ? { internalTrafficPolicy: itp } : {}), ports: [{ port: 80 }] }),
          'IPv4',
        ),
      ).internalPolicyLocal;
    expect([mk(), mk('Cluster'), mk('Local')]).toEqual([false, false, true]);
  });

  it.each([
    ['no annotation', {}, ''],
    ['topology-mode', { 'service.kubernetes.io/topology-mode': 'Auto' }, 'Auto'],
    [
      'the deprecated topology-aware-hints wins over topology-mode',
      {
        'service.kubernetes.io/topology-mode': 'Auto',
        'service.kubernetes.io/topology-aware-hints': 'Disabled',
      },
      'Disabled',
    ],
  ])('hints annotation: %s', (_n, annotations, expected) => {
    const p = one(
      servicePortsFromService(makeService('ns', 's', { ports: [{ port: 80 }] }, { annotations }), 'IPv4'),
    );
    expect(p.hintsAnnotation).toBe(expected);
  });

  it('trafficDistribution is carried along, empty when unset', () => {
    const mk = (td?: string) =>
      one(
        servicePortsFromService(
          makeService('ns', 's', { ...(td ? { trafficDistribution: td } : {}), ports: [{ port: 80 }] }),
          'IPv4',
        ),
      ).trafficDistribution;
    expect([mk(), mk('PreferClose')]).toEqual(['', 'PreferClose']);
  });
});
