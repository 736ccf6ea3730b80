import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../../pkg/config/file.ts';
import { configErrorOf } from './support.ts';

const HEAD = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

const fileError = (text: string) => configErrorOf(() => parseConfigFile(text), JSON.stringify(text));

describe('parseConfigFile: good files', () => {
  it('reads a YAML KubeProxyConfiguration with upstream field names', () => {
    const { draft, warnings } = parseConfigFile(`${HEAD}
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 20
hostnameOverride: Node-1
bindAddress: 10.1.0.5
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 0.0.0.0:10249
bindAddressHardFail: true
mode: iptables
iptables:
  masqueradeAll: true
  masqueradeBit: 15
  localhostNodePorts: false
  syncPeriod: 1m0s
  minSyncPeriod: 500ms
detectLocalMode: InterfaceNamePrefix
detectLocal:
  interfaceNamePrefix: veth
clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
nodePortAddresses: [primary]
oomScoreAdj: -900
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 30m
  tcpBeLiberal: true
  udpTimeout: 30s
  udpStreamTimeout: 2m
configSyncPeriod: 5m
featureGates:
  SomeGate: true
logging:
  format: text
  verbosity: 3
`);
    expect(warnings).toEqual([]);
    expect(draft).toMatchObject({
      kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf',
      hostnameOverride: 'Node-1',
      bindAddress: '10.1.0.5',
      healthzBindAddress: '0.0.0.0:10256',
      metricsBindAddress: '0.0.0.0:10249',
      bindAddressHardFail: true,
      mode: 'iptables',
      iptables: {
        masqueradeAll: true,
        masqueradeBit: 15,
        localhostNodePorts: false,
        syncPeriodMs: 60_000,
        minSyncPeriodMs: 500,
      },
      detectLocalMode: 'InterfaceNamePrefix',
      interfaceNamePrefix: 'veth',
      clusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'],
      nodePortAddresses: ['primary'],
      oomScoreAdj: -900,
      conntrack: {
        maxPerCore: 0,
        min: 0,
        tcpEstablishedTimeoutMs: 0,
        tcpCloseWaitTimeoutMs: 1_800_000,
        tcpBeLiberal: true,
        udpTimeoutMs: 30_000,
        udpStreamTimeoutMs: 120_000,
      },
      configSyncPeriodMs: 300_000,
      featureGates: { SomeGate: true },
      loggingFormat: 'text',
      verbosity: 3,
    });
    expect(draft.clientConnection.qps).toBe(20);
  });

  it('reads the same configuration written as JSON', () => {
    const { draft } = parseConfigFile(
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        iptables: { masqueradeBit: 3, syncPeriod: '10s' },
        clusterCIDR: '10.0.0.0/8',
        conntrack: { maxPerCore: 100 },
      }),
    );
    expect(draft.iptables.masqueradeBit).toBe(3);
    expect(draft.iptables.syncPeriodMs).toBe(10_000);
    expect(draft.clusterCIDRs).toEqual(['10.0.0.0/8']);
    expect(draft.conntrack.maxPerCore).toBe(100);
  });

  it('applies upstream defaults to a file with only the header', () => {
    const { draft, warnings } = parseConfigFile(HEAD);
    expect(warnings).toEqual([]);
    expect(draft.bindAddress).toBe('0.0.0.0');
    expect(draft.healthzBindAddress).toBeUndefined(); // derived from bindAddress later
    expect(draft.iptables).toEqual({
      syncPeriodMs: 30_000,
      minSyncPeriodMs: 1000,
      masqueradeBit: 14,
      masqueradeAll: false,
      localhostNodePorts: true,
    });
    expect(draft.conntrack.maxPerCore).toBe(32768);
    expect(draft.conntrack.tcpEstablishedTimeoutMs).toBe(86_400_000);
    expect(draft.oomScoreAdj).toBe(-999);
    expect(draft.configSyncPeriodMs).toBe(900_000);
    expect(draft.loggingFormat).toBe('json');
  });

  it('treats null as absent, as Go does', () => {
    const { draft } = parseConfigFile(`${HEAD}nodePortAddresses: null\niptables: null\noomScoreAdj: null\n`);
    expect(draft.nodePortAddresses).toEqual([]);
    expect(draft.iptables.masqueradeBit).toBe(14);
    expect(draft.oomScoreAdj).toBe(-999);
  });

  it('replaces zero durations that are not pointers upstream by their defaults, with a warning', () => {
    const { draft, warnings } = parseConfigFile(`${HEAD}iptables:\n  syncPeriod: 0s\n  minSyncPeriod: 0s\n`);
    expect(draft.iptables.syncPeriodMs).toBe(30_000);
    expect(draft.iptables.minSyncPeriodMs).toBe(1000);
    expect(warnings).toEqual([
      'iptables.syncPeriod: 0 means the default (30s) in a config file, as in kube-proxy',
      'iptables.minSyncPeriod: 0 means the default (1s) in a config file, as in kube-proxy',
    ]);
  });

  it('keeps an explicit 0 or false in fields that are pointers upstream', () => {
    const { draft } = parseConfigFile(
      `${HEAD}iptables:\n  masqueradeBit: 0\n  localhostNodePorts: false\noomScoreAdj: 0\nconntrack:\n  tcpCloseWaitTimeout: 0s\n`,
    );
    expect(draft.iptables.masqueradeBit).toBe(0);
    expect(draft.iptables.localhostNodePorts).toBe(false);
    expect(draft.oomScoreAdj).toBe(0);
    expect(draft.conntrack.tcpCloseWaitTimeoutMs).toBe(0);
  });

  it('decodes unknown fields leniently, as upstream, and names each in a warning', () => {
    const { draft, warnings } = parseConfigFile(
      `${HEAD}iptables:\n  masqueradeBit: 12\n  bogus: 1\nnotAField: x\nconntrack:\n  maxPerCoreTypo: 5\n`,
    );
    expect(draft.iptables.masqueradeBit).toBe(12);
    expect(draft.conntrack.maxPerCore).toBe(32768);
    expect(warnings).toHaveLength(3);
    expect(warnings.join('\n')).toContain('iptables.bogus: unknown field');
    expect(warnings.join('\n')).toContain('notAField: unknown field');
    expect(warnings.join('\n')).toContain('conntrack.maxPerCoreTypo: unknown field');
  });

  it('treats unknown fields in JSON the same way', () => {
    const { warnings } = parseConfigFile(
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        conntrack: { min: 5, extra: true },
      }),
    );
    expect(warnings).toEqual([
      'conntrack.extra: unknown field, ignored (kube-proxy also decodes such files leniently)',
    ]);
  });

  it('refuses a wrong type in JSON, naming the field', () => {
    const err = fileError(
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        bindAddress: 5,
      }),
    );
    expect(err.issues[0]).toEqual({ field: 'bindAddress', reason: 'expected string, received number' });
  });

  it('accepts the upstream sections kube-proxy-ts does not use (ipvs, nftables, winkernel)', () => {
    const { warnings } = parseConfigFile(
      `${HEAD}ipvs:\n  scheduler: rr\n  syncPeriod: 30s\nnftables:\n  masqueradeBit: 14\nwinkernel:\n  enableDSR: false\nportRange: ""\n`,
    );
    expect(warnings).toEqual([]);
  });
});

describe('parseConfigFile: bad files name the field', () => {
  it.each([
    ['iptables:\n  masqueradeBit: "14"\n', 'iptables.masqueradeBit', 'expected number'],
    ['iptables:\n  masqueradeBit: 1.5\n', 'iptables.masqueradeBit', 'expected int'],
    ['iptables:\n  syncPeriod: 30\n', 'iptables.syncPeriod', 'expected a Go duration string'],
    ['iptables:\n  syncPeriod: 30x\n', 'iptables.syncPeriod', 'unknown unit "x"'],
    ['conntrack:\n  tcpBeLiberal: "yes"\n', 'conntrack.tcpBeLiberal', 'expected boolean'],
    ['nodePortAddresses: 10.0.0.0/8\n', 'nodePortAddresses', 'expected array'],
    ['featureGates:\n  A: 1\n', 'featureGates.A', 'expected boolean'],
    ['oomScoreAdj: 99999999999\n', 'oomScoreAdj', ''],
    ['iptables: 5\n', 'iptables', 'expected object'],
  ])('%j', (body, field, reason) => {
    const err = fileError(HEAD + body);
    expect(err.code).toBe('invalid-config');
    expect(err.issues[0]!.field).toBe(field);
    expect(err.issues[0]!.reason.toLowerCase()).toContain(reason.toLowerCase());
    expect(err.issues[0]!.reason).not.toMatch(/^Invalid input/);
  });

  it('reports every type error at once', () => {
    const err = fileError(`${HEAD}iptables:\n  masqueradeBit: x\nconntrack:\n  min: y\n`);
    expect(err.issues.map((i) => i.field)).toEqual(['iptables.masqueradeBit', 'conntrack.min']);
  });

  it('wants the v1alpha1 apiVersion and the kind', () => {
    expect(fileError('kind: KubeProxyConfiguration\n').issues[0]).toMatchObject({ field: 'apiVersion' });
    const v2 = fileError('apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n');
    expect(v2.issues[0]!.field).toBe('apiVersion');
    expect(v2.issues[0]!.reason).toContain('not supported');
    const kind = fileError('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n');
    expect(kind.issues[0]!.field).toBe('kind');
  });

  it('refuses empty files, lists and YAML syntax errors', () => {
    expect(fileError('').message).toContain('not valid YAML or JSON');
    expect(fileError('- a\n- b\n').message).toContain('one object');
    expect(fileError(`${HEAD}iptables: [\n`).message).toContain('not valid YAML or JSON');
    expect(fileError('{"apiVersion": ').code).toBe('invalid-config');
  });
});
