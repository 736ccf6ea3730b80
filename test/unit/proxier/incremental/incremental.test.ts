import { describe, expect, it } from 'vitest';
import { endpointChainName, servicePortChainNames } from '../../../../proxier/chains.ts';
import { createIncrementalRenderer, type IncrementalRenderer } from '../../../../proxier/incremental.ts';
import type { RenderConfig, RenderState } from '../../../../proxier/render.ts';
import { renderRules } from '../../../../proxier/render.ts';
import type { Endpoint, ServicePort } from '../../../../proxier/types.ts';
import { servicePortKey } from '../../../../proxier/types.ts';
import type { ServicePortSpec } from '../../../golden/support/builders.ts';
import { fakeProxierConfig, makeEndpoint, makeServicePort } from '../../../golden/support/builders.ts';

const CONFIG = fakeProxierConfig('IPv4');

interface ClusterOptions {
  readonly services: number;
  readonly endpointsPerService: number;
}

function clusterIP(i: number): string {
  return `172.30.${i >> 8}.${i & 255}`;
}

function serviceSpec(i: number): ServicePortSpec {
  return {
    ns: `ns${i % 10}`,
    name: `svc${i}`,
    clusterIP: clusterIP(i),
    port: 80,
    nodePort: i % 3 === 0 ? 30000 + i : 0,
  };
}

function endpointsOf(i: number, n: number, first = 1): Endpoint[] {
  return Array.from({ length: n }, (_, j) =>
    makeEndpoint(`10.${1 + (i >> 8)}.${i & 255}.${first + j}`, 8080),
  );
}

/** A mutable synthetic cluster: Services svc0..svcN-1, each with the same number of endpoints. */
function makeCluster(o: ClusterOptions) {
  const services = new Map<string, ServicePort>();
  const endpoints = new Map<string, readonly Endpoint[]>();
  const set = (sp: ServicePort, eps: readonly Endpoint[]) => {
    const key = servicePortKey(sp.name);
    services.set(key, sp);
    const sorted = [...eps].sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
    if (sorted.length > 0) endpoints.set(key, sorted);
    else endpoints.delete(key);
  };
  for (let i = 0; i < o.services; i++)
    set(makeServicePort(serviceSpec(i)), endpointsOf(i, o.endpointsPerService));
  return {
    state: (): RenderState => ({ services: new Map(services), endpoints: new Map(endpoints) }),
    set,
    remove(sp: ServicePort) {
      services.delete(servicePortKey(sp.name));
      endpoints.delete(servicePortKey(sp.name));
    },
  };
}

function primed(state: RenderState, config: RenderConfig = CONFIG): IncrementalRenderer {
  const r = createIncrementalRenderer();
  const first = r.render(state, config, { full: true, existingNatChains: new Set() });
  expect(first.mode).toBe('full');
  r.commit();
  return r;
}

const svc0 = makeServicePort(serviceSpec(0));
const SVC0 = 'ns0/svc0';

/** Every per-service chain name a payload mentions. */
function chainsIn(payload: string): Set<string> {
  return new Set(payload.match(/KUBE-(?:SVC|SVL|EXT|FW|SEP)-[A-Z0-9]{16}/g) ?? []);
}

describe('full renders', () => {
  it('are exactly renderRules full renders', () => {
    const c = makeCluster({ services: 30, endpointsPerService: 2 });
    const r = createIncrementalRenderer();
    const existing = new Set(['KUBE-SEP-LEFTOVER000000000']);
    const got = r.render(c.state(), CONFIG, { full: true, existingNatChains: existing });
    const want = renderRules(c.state(), CONFIG, { full: true, existingNatChains: existing });
    expect(got.payload).toBe(want.payload);
    expect(got.ruleCounts).toEqual(want.ruleCounts);
    expect(r.primed).toBe(false);
    r.commit();
    expect(r.primed).toBe(true);
  });
});

describe('full renders reusing the text of unchanged ports', () => {
  it('equal fresh renders after endpoint, service, config and large-cluster changes', () => {
    const c = makeCluster({ services: 30, endpointsPerService: 2 });
    const r = createIncrementalRenderer();
    const check = (config: RenderConfig = CONFIG) => {
      const got = r.render(c.state(), config, { full: true });
      r.commit();
      expect(got.payload).toBe(renderRules(c.state(), config, { full: true }).payload);
      return got.payload;
    };
    const first = check();
    expect(check()).toBe(first);
    // New endpoint list for one port, a changed ServicePort for another, a port losing all.
    c.set(svc0, endpointsOf(0, 3));
    const svc1 = makeServicePort({ ...serviceSpec(1), nodePort: 31001 });
    c.set(svc1, endpointsOf(1, 2));
    c.set(makeServicePort(serviceSpec(2)), []);
    const changed = check();
    expect(changed).not.toBe(first);
    expect(changed).toContain('--dport 31001');
    expect(changed).toContain('ns2/svc2:p80 has no endpoints');
    // The context changes every port's text.
    expect(check({ ...CONFIG, masqueradeAll: true })).toContain('-j KUBE-MARK-MASQ');
    // Past 1000 endpoints every port loses its per-endpoint comments, kept ports included.
    c.set(makeServicePort(serviceSpec(3)), endpointsOf(3, 1000));
    expect(check()).not.toContain('ns1/svc1:p80 -> ');
    c.set(makeServicePort(serviceSpec(3)), endpointsOf(3, 2));
    expect(check()).toContain('"ns1/svc1:p80 -> ');
  });
});

describe('a partial sync after one endpoint change', () => {
  it('rewrites only that service’s chains and never mentions a top-level chain', () => {
    const c = makeCluster({ services: 30, endpointsPerService: 2 });
    const r = primed(c.state());
    c.set(svc0, [makeEndpoint('10.1.0.2', 8080), makeEndpoint('10.1.0.3', 8080)]);
    const got = r.render(c.state(), CONFIG, { full: false, changedServices: new Set([SVC0]) });

    expect(got.mode).toBe('incremental');
    expect(got.payload).not.toContain('KUBE-SERVICES');
    expect(got.payload).not.toContain('KUBE-NODEPORTS');
    expect(got.payload).not.toContain('*filter');
    const chains = servicePortChainNames(svc0.name);
    const sep = (ip: string) => endpointChainName(svc0.name, 'TCP', `${ip}:8080`);
    expect(chainsIn(got.payload)).toEqual(
      new Set([chains.svc, chains.ext, sep('10.1.0.1'), sep('10.1.0.2'), sep('10.1.0.3')]),
    );
    expect(got.deletedNatChains).toEqual([sep('10.1.0.1')]);

    // Upstream's partial payload minus the top-level chains and static rules is exactly ours.
    const upstream = renderRules(c.state(), CONFIG, {
      full: false,
      changedServices: new Set([SVC0]),
      existingNatChains: r.render(c.state(), CONFIG, { full: false, changedServices: new Set() })
        .activeNatChains,
    });
    const own = (l: string) => chainsIn(l).size > 0 && !/^-A KUBE-(SERVICES|NODEPORTS) /.test(l);
    const expected = [
      '*nat',
      ...upstream.nat.chains.lines.filter(own),
      ...upstream.nat.rules.lines.filter(own),
      'COMMIT',
    ];
    expect(got.payload).toBe(`${expected.join('\n')}\n`);
  });

  it('costs the same bytes at 100 and at 5,000 services', () => {
    const payloads = [100, 5000].map((services) => {
      // 11 endpoints each: both sizes are past the large-cluster threshold (1000 endpoints).
      const c = makeCluster({ services, endpointsPerService: 11 });
      const r = primed(c.state());
      c.set(svc0, [...endpointsOf(0, 10), makeEndpoint('10.1.0.99', 8080)]);
      const got = r.render(c.state(), CONFIG, { full: false, changedServices: new Set([SVC0]) });
      expect(got.mode).toBe('incremental');
      expect(got.largeClusterMode).toBe(true);
      expect(got.payload).not.toContain(':KUBE-SERVICES');
      return got.payload;
    });
    expect(payloads[1]!.length).toBe(payloads[0]!.length);
    expect(payloads[1]).toBe(payloads[0]);
    expect(payloads[0]!.length).toBeLessThan(5 * 1024);
  });

  it('adding and deleting a service also cost the same at 100 and at 5,000 services', () => {
    const extra = makeServicePort({ ...serviceSpec(9999), clusterIP: '172.31.0.1', nodePort: 31999 });
    const results = [100, 5000].map((services) => {
      const c = makeCluster({ services, endpointsPerService: 11 });
      const r = primed(c.state());
      c.set(extra, endpointsOf(9999, 3));
      const added = r.render(c.state(), CONFIG, { full: false, changedServices: new Set(['ns9/svc9999']) });
      r.commit();
      c.remove(svc0);
      const deleted = r.render(c.state(), CONFIG, { full: false, changedServices: new Set([SVC0]) });
      return [added.payload, deleted.payload];
    });
    expect(results[1]).toEqual(results[0]);
    const [added, deleted] = results[0]!;
    expect(added).toContain('-I KUBE-SERVICES 1 -m comment --comment "ns9/svc9999:p80 cluster IP"');
    expect(added).toContain('-A KUBE-NODEPORTS -m comment --comment ns9/svc9999:p80');
    expect(deleted).toContain('-D KUBE-SERVICES -m comment --comment "ns0/svc0:p80 cluster IP"');
    expect(deleted).toContain(`-X ${servicePortChainNames(svc0.name).svc}`);
    expect(added!.length).toBeLessThan(5 * 1024);
  });
});

describe('top-level rules that change with the endpoints', () => {
  it('swaps the filter REJECT for the nat jump when a service gets its first endpoint, and back', () => {
    const c = makeCluster({ services: 5, endpointsPerService: 1 });
    c.set(svc0, []);
    const r = primed(c.state());
    c.set(svc0, [makeEndpoint('10.1.0.1', 8080)]);
    const up = r.render(c.state(), CONFIG, { full: false, changedServices: new Set([SVC0]) });
    r.commit();
    const svcChain = servicePortChainNames(svc0.name).svc;
    expect(up.filter.rules.lines).toEqual([
      '-D KUBE-SERVICES -m comment --comment "ns0/svc0:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.0 --dport 80 -j REJECT',
      '-D KUBE-EXTERNAL-SERVICES -m comment --comment "ns0/svc0:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30000 -j REJECT',
    ]);
    expect(up.nat.rules.lines.filter((l) => /^-[ADI] KUBE-(SERVICES|NODEPORTS) /.test(l))).toEqual([
      `-I KUBE-SERVICES 1 -m comment --comment "ns0/svc0:p80 cluster IP" -m tcp -p tcp -d 172.30.0.0 --dport 80 -j ${svcChain}`,
      expect.stringMatching(/^-A KUBE-NODEPORTS .*--nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-/),
      expect.stringMatching(/^-A KUBE-NODEPORTS .* --dport 30000 -j KUBE-EXT-/),
    ]);

    c.set(svc0, []);
    const down = r.render(c.state(), CONFIG, { full: false, changedServices: new Set([SVC0]) });
    expect(down.filter.rules.lines.map((l) => l.slice(0, 3))).toEqual(['-A ', '-A ']);
    expect(down.nat.rules.lines.filter((l) => l.startsWith('-D '))).toHaveLength(3);
    expect(down.deletedNatChains).toContain(svcChain);
    // The jumps go before the chains they point to.
    const lines = down.payload.split('\n');
    expect(lines.findIndex((l) => l.startsWith('-D KUBE-SERVICES'))).toBeLessThan(
      lines.indexOf(`-X ${svcChain}`),
    );
  });

  it('adds DROP rules when an eTP=Local service loses its last local endpoint', () => {
    const lb = makeServicePort({
      ...serviceSpec(1),
      nodePort: 30001,
      externalIPs: ['192.168.99.1'],
      externalPolicyLocal: true,
    });
    const c = makeCluster({ services: 5, endpointsPerService: 1 });
    c.set(lb, [makeEndpoint('10.1.1.1', 8080, { local: true }), makeEndpoint('10.1.1.2', 8080)]);
    const r = primed(c.state());
    c.set(lb, [makeEndpoint('10.1.1.2', 8080)]);
    const got = r.render(c.state(), CONFIG, { full: false, changedServices: new Set(['ns1/svc1']) });
    expect(got.filter.rules.lines).toEqual([
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.1 --dport 80 -j DROP',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30001 -j DROP',
    ]);
    // The nat jumps stay: the EXT chain still short-circuits pod and host traffic.
    expect(got.payload).not.toMatch(/KUBE-SERVICES|KUBE-NODEPORTS/m);
    expect(got.noLocalEndpoints).toEqual({ internal: 0, external: 1 });
  });
});

describe('rule gauges and totals', () => {
  it('equal those of a full render of the same state after every partial sync', () => {
    const c = makeCluster({ services: 40, endpointsPerService: 3 });
    const r = primed(c.state());
    const steps: [ServicePort, Endpoint[]][] = [
      [svc0, []],
      [svc0, endpointsOf(0, 5)],
      [makeServicePort({ ...serviceSpec(7), internalPolicyLocal: true }), endpointsOf(7, 2)],
      [
        makeServicePort({
          ...serviceSpec(8),
          loadBalancerVIPs: ['5.6.7.8'],
          loadBalancerSourceRanges: ['203.0.113.0/25'],
        }),
        endpointsOf(8, 1),
      ],
    ];
    for (const [sp, eps] of steps) {
      c.set(sp, eps);
      const key = `${sp.name.namespace}/${sp.name.name}`;
      const got = r.render(c.state(), CONFIG, { full: false, changedServices: new Set([key]) });
      r.commit();
      const full = renderRules(c.state(), CONFIG, { full: true });
      expect(got.mode).toBe('incremental');
      expect(got.ruleCounts.filter.total).toBe(full.ruleCounts.filter.total);
      expect(got.ruleCounts.nat.total).toBe(full.ruleCounts.nat.total);
      expect(got.totalEndpoints).toBe(full.totalEndpoints);
      expect(got.noLocalEndpoints).toEqual(full.noLocalEndpoints);
      expect([...got.activeNatChains].sort()).toEqual([...full.activeNatChains].sort());
      // `last` counts what this payload writes.
      expect(got.ruleCounts.nat.last).toBe(got.nat.rules.lines.filter((l) => /^-[AI] /.test(l)).length);
      expect(got.ruleCounts.filter.last).toBe(got.filter.rules.lines.filter((l) => /^-[AI] /.test(l)).length);
    }
  });
});

describe('the cache follows the kernel', () => {
  it('an uncommitted render is forgotten: the next one diffs against the last commit', () => {
    const c = makeCluster({ services: 5, endpointsPerService: 1 });
    c.set(svc0, []);
    const r = primed(c.state());
    c.set(svc0, endpointsOf(0, 2));
    const opts = { full: false, changedServices: new Set([SVC0]) } as const;
    const first = r.render(c.state(), CONFIG, opts);
    const again = r.render(c.state(), CONFIG, opts);
    expect(again.payload).toBe(first.payload);
    expect(again.payload).toContain('-D KUBE-SERVICES');
    r.commit();
    // Committed: the same state again only rewrites the service's own chains.
    const after = r.render(c.state(), CONFIG, opts).payload;
    expect(after).not.toMatch(/KUBE-SERVICES|KUBE-NODEPORTS|\*filter/);
    expect(after).toContain(`:${servicePortChainNames(svc0.name).svc} - [0:0]`);
  });

  it('after reset a partial render rewrites the top-level chains, as upstream', () => {
    const c = makeCluster({ services: 5, endpointsPerService: 1 });
    const r = primed(c.state());
    r.reset();
    expect(r.primed).toBe(false);
    const opts = { full: false, changedServices: new Set([SVC0]) } as const;
    const got = r.render(c.state(), CONFIG, opts);
    expect(got.mode).toBe('rewrite');
    expect(got.payload).toBe(renderRules(c.state(), CONFIG, opts).payload);
    r.commit();
    expect(r.render(c.state(), CONFIG, opts).mode).toBe('incremental');
  });

  it('rewrites when the config changes what the top-level chains hold', () => {
    const c = makeCluster({ services: 5, endpointsPerService: 1 });
    const r = primed(c.state());
    const config = { ...CONFIG, nodePortAddresses: ['192.168.0.0/24'] };
    const got = r.render(c.state(), config, { full: false, changedServices: new Set() });
    expect(got.mode).toBe('rewrite');
    expect(got.payload).toContain(':KUBE-SERVICES - [0:0]');
    expect(got.payload).toContain('-d 192.168.0.2 -j KUBE-NODEPORTS');
  });

  it('rewrites when a service appears that no change reported', () => {
    const c = makeCluster({ services: 5, endpointsPerService: 1 });
    const r = primed(c.state());
    c.set(makeServicePort(serviceSpec(77)), endpointsOf(77, 1));
    const got = r.render(c.state(), CONFIG, { full: false, changedServices: new Set() });
    expect(got.mode).toBe('rewrite');
    expect(got.payload).toContain('ns7/svc77:p80 cluster IP');
  });

  it('writes nothing for a reported service that exists neither before nor now, or when nothing changed', () => {
    const c = makeCluster({ services: 5, endpointsPerService: 2 });
    const r = primed(c.state());
    const gone = r.render(c.state(), CONFIG, { full: false, changedServices: new Set(['ns3/gone']) });
    expect(gone.mode).toBe('incremental');
    expect(gone.payload).toBe('');
    expect(r.render(c.state(), CONFIG, { full: false, changedServices: new Set() }).payload).toBe('');
  });
});
