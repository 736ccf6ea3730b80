import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProxyConfig } from '../../../pkg/config/config.ts';
import { serializeConfig, writeConfigFile } from '../../../pkg/config/file.ts';
import { type ResolvedConfig, type ResolveEnv, resolveConfig } from '../../../pkg/config/resolve.ts';
import { configErrorOf } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function configFile(body: string, ext = 'yaml'): string {
  const path = join(dir, `config-${fileCount++}.${ext}`);
  writeFileSync(path, body);
  return path;
}
const HEAD = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

const env: ResolveEnv = { hostname: () => '  Worker-7.Example.COM ' };

function resolve(argv: string[], e: ResolveEnv = env): ResolvedConfig {
  const r = resolveConfig(argv, e);
  if ('help' in r) throw new Error('unexpected help');
  return r;
}

const resolveError = (argv: string[], e: ResolveEnv = env) =>
  configErrorOf(() => resolveConfig(argv, e), JSON.stringify(argv));

describe('resolveConfig: defaults', () => {
  it('gives upstream defaults with no flags', () => {
    const { config, warnings } = resolve([]);
    expect(warnings).toEqual([]);
    expect(config).toEqual<ProxyConfig>({
      kubeconfig: undefined,
      master: undefined,
      configFile: undefined,
      writeConfigTo: undefined,
      cleanup: false,
      initOnly: false,
      hostnameOverride: 'worker-7.example.com',
      hostnameOverridden: false,
      bindAddress: '0.0.0.0',
      healthzBindAddress: '0.0.0.0:10256',
      metricsBindAddress: '127.0.0.1:10249',
      bindAddressHardFail: false,
      proxyMode: 'iptables',
      iptables: {
        syncPeriodMs: 30_000,
        minSyncPeriodMs: 1000,
        masqueradeBit: 14,
        masqueradeAll: false,
        localhostNodePorts: true,
      },
      detectLocalMode: 'ClusterCIDR',
      clusterCIDRs: [],
      bridgeInterface: '',
      interfaceNamePrefix: '',
      nodePortAddresses: [],
      conntrack: {
        maxPerCore: 32768,
        min: 131072,
        tcpEstablishedTimeoutMs: 86_400_000,
        tcpCloseWaitTimeoutMs: 3_600_000,
        tcpBeLiberal: false,
        udpTimeoutMs: 0,
        udpStreamTimeoutMs: 0,
      },
      configSyncPeriodMs: 900_000,
      oomScoreAdj: -999,
      featureGates: {},
      clientConnection: {
        contentType: 'application/vnd.kubernetes.protobuf',
        acceptContentTypes: '',
        qps: 5,
        burst: 10,
      },
      enableProfiling: false,
      showHiddenMetricsForVersion: '',
      verbosity: 0,
      loggingFormat: 'json',
      iptablesBackend: 'auto',
      debugDisableConntrackCleanup: false,
    });
  });

  it('returns the help text for --help instead of a configuration', () => {
    const r = resolveConfig(['--kubeconfig=x', '--help'], env);
    expect('help' in r && r.help).toContain('--iptables-sync-period');
  });

  it('derives the healthz and metrics defaults from an IPv6 bind address', () => {
    const { config } = resolve(['--bind-address=fd00::5']);
    expect(config.healthzBindAddress).toBe('[::]:10256');
    expect(config.metricsBindAddress).toBe('[::1]:10249');
    const mapped = resolve(['--bind-address=::ffff:10.0.0.1']).config;
    expect(mapped.healthzBindAddress).toBe('0.0.0.0:10256');
  });

  it('appends the default port to a bare IP and keeps an empty address as disabled', () => {
    const { config } = resolve(['--healthz-bind-address=10.0.0.1', '--metrics-bind-address=::1']);
    expect(config.healthzBindAddress).toBe('10.0.0.1:10256');
    expect(config.metricsBindAddress).toBe('[::1]:10249');
    const off = resolve(['--healthz-bind-address=', '--metrics-bind-address=']).config;
    expect(off.healthzBindAddress).toBe('');
    expect(off.metricsBindAddress).toBe('');
  });

  it('honours the deprecated port flags with a warning', () => {
    const { config, warnings } = resolve(['--healthz-port=0', '--metrics-port=9999']);
    expect(config.healthzBindAddress).toBe('');
    expect(config.metricsBindAddress).toBe('127.0.0.1:9999');
    expect(warnings.join('\n')).toContain('--healthz-port is deprecated');
  });

  it('warns about accepted flags without effect', () => {
    const { config, warnings } = resolve(['--kube-api-qps=50', '--profiling', '--feature-gates=Foo=true']);
    expect(config.featureGates).toEqual({ Foo: true });
    expect(config.clientConnection.qps).toBe(50);
    expect(warnings.join('\n')).toMatch(/without effect.*--kube-api-qps, --profiling, --feature-gates/);
  });
});

describe('resolveConfig: node name', () => {
  it('lower-cases and trims --hostname-override', () => {
    const { config } = resolve(['--hostname-override', '  Node-A  ']);
    expect(config.hostnameOverride).toBe('node-a');
    expect(config.hostnameOverridden).toBe(true);
  });

  it('refuses a blank --hostname-override', () => {
    const err = resolveError(['--hostname-override=   ']);
    expect(err.issues[0]).toEqual({ field: '--hostname-override', reason: 'must not be empty or blank' });
  });

  it('refuses an empty system hostname', () => {
    const err = resolveError([], { hostname: () => ' ' });
    expect(err.issues[0]!.field).toBe('hostname');
    expect(err.message).toContain('--hostname-override');
  });
});

describe('resolveConfig: proxy mode', () => {
  it.each(['ipvs', 'nftables', 'kernelspace'])('refuses --proxy-mode=%s as unsupported', (mode) => {
    const err = resolveError([`--proxy-mode=${mode}`]);
    expect(err.code).toBe('unsupported-mode');
    expect(err.issues[0]!.field).toBe('--proxy-mode');
    expect(err.message).toContain('kube-proxy-ts implements iptables mode only');
  });

  it('refuses mode: ipvs in a config file, naming the field', () => {
    const err = resolveError(['--config', configFile(`${HEAD}mode: ipvs\n`)]);
    expect(err.code).toBe('unsupported-mode');
    expect(err.issues[0]!.field).toBe('mode');
  });

  it('accepts iptables and blank; refuses anything else as invalid', () => {
    expect(resolve(['--proxy-mode=iptables']).config.proxyMode).toBe('iptables');
    expect(resolve(['--proxy-mode=']).config.proxyMode).toBe('iptables');
    const err = resolveError(['--proxy-mode=userspace']);
    expect(err.code).toBe('invalid-flag');
    expect(err.issues[0]!.field).toBe('--proxy-mode');
  });
});

describe('resolveConfig: validation (errors name the flag, or the file field)', () => {
  it.each([
    [['--iptables-masquerade-bit=32'], '--iptables-masquerade-bit', 'must be between 0 and 31'],
    [['--iptables-masquerade-bit=-1'], '--iptables-masquerade-bit', 'must be between 0 and 31'],
    [['--iptables-sync-period=0s'], '--iptables-sync-period', 'must be greater than 0'],
    [['--iptables-sync-period=-5s'], '--iptables-sync-period', 'must be greater than 0'],
    [['--iptables-min-sync-period=-1s'], '--iptables-min-sync-period', 'greater than or equal to 0'],
    [
      ['--iptables-sync-period=1s', '--iptables-min-sync-period=2s'],
      '--iptables-sync-period',
      'must be greater than or equal to iptables.minSyncPeriod',
    ],
    [['--conntrack-max-per-core=-1'], '--conntrack-max-per-core', 'greater than or equal to 0'],
    [['--conntrack-min=-1'], '--conntrack-min', 'greater than or equal to 0'],
    [['--conntrack-tcp-timeout-established=-1s'], '--conntrack-tcp-timeout-established', '>= 0'],
    [['--conntrack-tcp-timeout-close-wait=-1s'], '--conntrack-tcp-timeout-close-wait', '>= 0'],
    [['--conntrack-udp-timeout=-1s'], '--conntrack-udp-timeout', '>= 0'],
    [['--conntrack-udp-timeout-stream=-1s'], '--conntrack-udp-timeout-stream', '>= 0'],
    [['--config-sync-period=0s'], '--config-sync-period', 'must be greater than 0'],
    [['--oom-score-adj=1001'], '--oom-score-adj', 'between -1000 and 1000'],
    [['--bind-address='], '--bind-address', 'not a valid IP address'],
    [['--nodeport-addresses=10.0.0.0/8,bogus'], '--nodeport-addresses', '"bogus" must be a valid CIDR'],
    [
      ['--nodeport-addresses=primary,10.0.0.0/8'],
      '--nodeport-addresses',
      "can't use both 'primary' and CIDRs",
    ],
    [['--nodeport-addresses=10.0.0.1'], '--nodeport-addresses', 'must be a valid CIDR'],
    [['--cluster-cidr=10.0.0.0/8,10.1.0.0/16'], '--cluster-cidr', 'at most one CIDR per IP family'],
    [['--cluster-cidr=10.0.0.0/8,fd00::/48,fd01::/48'], '--cluster-cidr', 'single CIDR or a dual-stack pair'],
    [['--cluster-cidr=10.0.0.0/33'], '--cluster-cidr', 'is not a valid CIDR'],
    [['--detect-local-mode=Magic'], '--detect-local-mode', 'unsupported value "Magic"'],
    [['--detect-local-mode=BridgeInterface'], '--pod-bridge-interface', 'must not be empty'],
    [['--detect-local-mode=InterfaceNamePrefix'], '--pod-interface-name-prefix', 'must not be empty'],
    [['--kube-api-burst=-1'], '--kube-api-burst', 'greater than or equal to 0'],
  ])('%j', (argv, field, reason) => {
    const err = resolveError(argv);
    expect(err.code).toBe('invalid-flag');
    expect(err.issues.map((i) => i.field)).toContain(field);
    const issue = err.issues.find((i) => i.field === field)!;
    expect(issue.reason.replace('greater than or equal to 0', '>= 0')).toContain(
      reason.replace('greater than or equal to 0', '>= 0'),
    );
  });

  it('reports all problems at once', () => {
    const err = resolveError(['--iptables-masquerade-bit=99', '--oom-score-adj=-2000', '--conntrack-min=-3']);
    expect(err.issues.map((i) => i.field).sort()).toEqual([
      '--conntrack-min',
      '--iptables-masquerade-bit',
      '--oom-score-adj',
    ]);
  });

  it('names the dotted field for values from the config file', () => {
    const err = resolveError([
      '--config',
      configFile(`${HEAD}iptables:\n  masqueradeBit: 40\nconntrack:\n  min: -1\n`),
    ]);
    expect(err.code).toBe('invalid-config');
    expect(err.message).toContain('iptables.masqueradeBit: must be between 0 and 31');
    expect(err.message).toContain('conntrack.min: must be greater than or equal to 0');
  });

  it('checks the detect-local companions in a config file', () => {
    const err = resolveError(['--config', configFile(`${HEAD}detectLocalMode: BridgeInterface\n`)]);
    expect(err.issues[0]).toMatchObject({ field: 'detectLocal.bridgeInterface' });
  });

  it('ignores cluster CIDRs outside ClusterCIDR mode, as upstream', () => {
    const { config } = resolve(['--detect-local-mode=NodeCIDR', '--cluster-cidr=not-a-cidr']);
    expect(config.detectLocalMode).toBe('NodeCIDR');
  });
});

describe('resolveConfig: dual-stack cluster CIDR', () => {
  it('splits a comma-separated IPv4/IPv6 pair from the flag', () => {
    const { config } = resolve(['--cluster-cidr=10.244.0.0/16,fd00:10:244::/56']);
    expect(config.clusterCIDRs).toEqual(['10.244.0.0/16', 'fd00:10:244::/56']);
  });

  it('splits the same pair from the config file', () => {
    const { config } = resolve([
      '--config',
      configFile(`${HEAD}clusterCIDR: fd00:10:244::/56,10.244.0.0/16\n`),
    ]);
    expect(config.clusterCIDRs).toEqual(['fd00:10:244::/56', '10.244.0.0/16']);
  });

  it('treats an empty --cluster-cidr as none', () => {
    expect(resolve(['--cluster-cidr=']).config.clusterCIDRs).toEqual([]);
  });

  it('accepts a single IPv6 CIDR', () => {
    expect(resolve(['--cluster-cidr=fd00::/48']).config.clusterCIDRs).toEqual(['fd00::/48']);
  });
});

describe('resolveConfig: precedence between --config and flags', () => {
  const file = () =>
    configFile(`${HEAD}
hostnameOverride: from-file
clientConnection:
  kubeconfig: /file/kubeconfig
iptables:
  syncPeriod: 45s
  masqueradeBit: 10
logging:
  format: text
  verbosity: 2
conntrack:
  maxPerCore: 1000
`);

  it('lets file values win over config flags and reports those flags', () => {
    const r = resolve([
      '--config',
      file(),
      '--iptables-sync-period=5s',
      '--kubeconfig=/flag/kubeconfig',
      '--conntrack-max-per-core=7',
      '--masquerade-all',
    ]);
    expect(r.config.iptables.syncPeriodMs).toBe(45_000);
    expect(r.config.kubeconfig).toBe('/file/kubeconfig');
    expect(r.config.conntrack.maxPerCore).toBe(1000);
    // Not in the file: the file's default applies, not the flag.
    expect(r.config.iptables.masqueradeAll).toBe(false);
    expect(r.overriddenFlags).toEqual([
      '--iptables-sync-period',
      '--kubeconfig',
      '--conntrack-max-per-core',
      '--masquerade-all',
    ]);
    expect(r.warnings.join('\n')).toContain(
      "flags ignored because --config is given (the config file's values apply): --iptables-sync-period, --kubeconfig, --conntrack-max-per-core, --masquerade-all",
    );
  });

  it('uses the file values when no flags compete', () => {
    const r = resolve(['--config', file()]);
    expect(r.config.hostnameOverride).toBe('from-file');
    expect(r.config.hostnameOverridden).toBe(true);
    expect(r.config.verbosity).toBe(2);
    expect(r.config.loggingFormat).toBe('text');
    expect(r.config.iptables.masqueradeBit).toBe(10);
    expect(r.config.configFile).toMatch(/config-\d+\.yaml$/);
    expect(r.overriddenFlags).toEqual([]);
  });

  it('applies --hostname-override, -v and --logging-format over the file', () => {
    const r = resolve([
      '--config',
      file(),
      '--hostname-override=From-Flag',
      '-v',
      '5',
      '--logging-format=json',
    ]);
    expect(r.config.hostnameOverride).toBe('from-flag');
    expect(r.config.verbosity).toBe(5);
    expect(r.config.loggingFormat).toBe('json');
    expect(r.overriddenFlags).toEqual([]);
  });

  it('keeps the file hostname for an empty --hostname-override, as upstream', () => {
    expect(resolve(['--config', file(), '--hostname-override=']).config.hostnameOverride).toBe('from-file');
  });

  it('applies command-line-only settings with a config file', () => {
    const r = resolve([
      '--config',
      file(),
      '--master=https://10.0.0.1:6443',
      '--cleanup',
      '--init-only',
      '--iptables-backend=legacy',
      '--debug-disable-conntrack-cleanup',
    ]);
    expect(r.config).toMatchObject({
      master: 'https://10.0.0.1:6443',
      cleanup: true,
      initOnly: true,
      iptablesBackend: 'legacy',
      debugDisableConntrackCleanup: true,
    });
    expect(r.overriddenFlags).toEqual([]);
  });

  it('still refuses a malformed flag value that the file would override, as pflag', () => {
    const err = resolveError(['--config', file(), '--iptables-sync-period=soon']);
    expect(err.code).toBe('invalid-flag');
  });

  it('names a blank hostname from the file by its field', () => {
    const err = resolveError(['--config', configFile(`${HEAD}hostnameOverride: "  "\n`)]);
    expect(err.issues[0]!.field).toBe('hostnameOverride');
  });

  it('prefixes file warnings with the file name', () => {
    const path = configFile(`${HEAD}unknownThing: 1\n`);
    expect(resolve(['--config', path]).warnings).toEqual([
      `config file ${path}: unknownThing: unknown field, ignored (kube-proxy also decodes such files leniently)`,
    ]);
  });

  it('reads a JSON config file', () => {
    const path = configFile(
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        bindAddress: '::',
      }),
      'json',
    );
    const { config } = resolve(['--config', path]);
    expect(config.healthzBindAddress).toBe('[::]:10256');
    expect(config.metricsBindAddress).toBe('[::1]:10249');
  });

  it('reports an unreadable config file', () => {
    const err = resolveError(['--config', join(dir, 'missing.yaml')]);
    expect(err.code).toBe('unreadable-config');
    expect(err.issues[0]!.field).toBe('--config');
    expect(err.message).toContain('missing.yaml');
  });
});

describe('--write-config-to round trip', () => {
  /** What the file cannot carry: where it came from and the command-line-only settings. */
  const fileFields = (c: ProxyConfig) => {
    const { configFile: _c, writeConfigTo: _w, ...rest } = c;
    return rest;
  };

  it.each([
    [[]],
    [['--bind-address=fd00::1']],
    [
      [
        '--hostname-override=Node-9',
        '--kubeconfig=/etc/kubeconfig',
        '--bind-address=10.0.0.9',
        '--healthz-bind-address=10.0.0.9:1234',
        '--metrics-bind-address=0.0.0.0:9100',
        '--bind-address-hard-fail',
        '--iptables-sync-period=1m30s',
        '--iptables-min-sync-period=250ms',
        '--iptables-masquerade-bit=0',
        '--masquerade-all',
        '--iptables-localhost-nodeports=false',
        '--detect-local-mode=ClusterCIDR',
        '--cluster-cidr=10.244.0.0/16,fd00:10:244::/56',
        '--nodeport-addresses=10.0.0.0/8,fd00::/64',
        '--conntrack-max-per-core=0',
        '--conntrack-min=0',
        '--conntrack-tcp-timeout-established=0s',
        '--conntrack-tcp-timeout-close-wait=90s',
        '--conntrack-tcp-be-liberal',
        '--conntrack-udp-timeout=30s',
        '--conntrack-udp-timeout-stream=2m',
        '--config-sync-period=5m',
        '--oom-score-adj=-100',
        '--feature-gates=A=true,B=false',
        '--kube-api-qps=12.5',
        '--kube-api-burst=20',
        '--profiling',
        '-v=3',
        '--logging-format=text',
      ],
    ],
    [
      [
        '--detect-local-mode=InterfaceNamePrefix',
        '--pod-interface-name-prefix=veth',
        '--nodeport-addresses=primary',
      ],
    ],
    [['--detect-local-mode=BridgeInterface', '--pod-bridge-interface=cbr0']],
  ])('flags %j → file → the same configuration', (flags) => {
    const path = join(dir, `written-${fileCount++}.yaml`);
    const first = resolve([...flags, '--write-config-to', path]);
    expect(first.config.writeConfigTo).toBe(path);
    writeConfigFile(path, first.config);
    const second = resolve(['--config', path]);
    expect(second.warnings).toEqual([]);
    expect(fileFields(second.config)).toEqual(fileFields(first.config));
  });

  it('writes upstream field names and Go durations', () => {
    const yaml = serializeConfig(resolve(['--iptables-sync-period=90s']).config);
    expect(yaml).toContain('apiVersion: kubeproxy.config.k8s.io/v1alpha1\n');
    expect(yaml).toContain('kind: KubeProxyConfiguration\n');
    expect(yaml).toMatch(
      /\niptables:\n {2}localhostNodePorts: true\n {2}masqueradeAll: false\n {2}masqueradeBit: 14\n {2}minSyncPeriod: 1s\n {2}syncPeriod: 1m30s\n/,
    );
    expect(yaml).toContain('  tcpEstablishedTimeout: 24h0m0s\n');
    expect(yaml).toContain('configSyncPeriod: 15m0s\n');
    expect(yaml).toContain("hostnameOverride: ''\n");
    expect(yaml).toContain('mode: iptables\n');
    expect(yaml).toContain('nodePortAddresses: null\n');
    // Keys sorted as upstream's encoder writes them.
    const top = yaml
      .split('\n')
      .filter((l) => /^[a-zA-Z]/.test(l))
      .map((l) => l.split(':')[0]!);
    expect(top).toEqual([...top].sort());
  });

  it('writes the file to disk', () => {
    const path = join(dir, 'disk.yaml');
    const { config } = resolve([]);
    writeConfigFile(path, config);
    expect(readFileSync(path, 'utf8')).toBe(serializeConfig(config));
  });

  it('cannot carry a zero minimum sync period, exactly as upstream (it reads back as 1s)', () => {
    const path = join(dir, 'zero.yaml');
    writeConfigFile(path, resolve(['--iptables-min-sync-period=0']).config);
    const back = resolve(['--config', path]);
    expect(back.config.iptables.minSyncPeriodMs).toBe(1000);
    expect(back.warnings.join('\n')).toContain('iptables.minSyncPeriod: 0 means the default (1s)');
  });
});
