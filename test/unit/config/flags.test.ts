import { describe, expect, it } from 'vitest';
import { defaultDraft } from '../../../pkg/config/draft.ts';
import { applyFlags, FLAGS, helpText, parseArgs } from '../../../pkg/config/flags.ts';
import { configErrorOf } from './support.ts';

/** Parses argv and applies every flag over the defaults, as resolveConfig does without --config. */
function draftOf(argv: string[]) {
  const parsed = parseArgs(argv);
  if (parsed.help) throw new Error('unexpected help');
  const d = defaultDraft();
  applyFlags(d, parsed.assignments);
  return { draft: d, changed: parsed.changed };
}

const flagError = (argv: string[]) => configErrorOf(() => parseArgs(argv), JSON.stringify(argv));

describe('parseArgs: syntax', () => {
  it('reads --name=value and --name value alike', () => {
    expect(draftOf(['--kubeconfig=/a']).draft.kubeconfig).toBe('/a');
    expect(draftOf(['--kubeconfig', '/b']).draft.kubeconfig).toBe('/b');
  });

  it('takes the next argument as the value even when it starts with a dash, as pflag', () => {
    expect(draftOf(['--hostname-override', '-x']).draft.hostnameOverride).toBe('-x');
  });

  it('reads booleans as --flag, --flag=true, --flag=false and Go spellings', () => {
    expect(draftOf(['--masquerade-all']).draft.iptables.masqueradeAll).toBe(true);
    expect(draftOf(['--masquerade-all=true']).draft.iptables.masqueradeAll).toBe(true);
    expect(draftOf(['--iptables-localhost-nodeports=false']).draft.iptables.localhostNodePorts).toBe(false);
    expect(draftOf(['--iptables-localhost-nodeports=F']).draft.iptables.localhostNodePorts).toBe(false);
    expect(draftOf(['--cleanup=1']).draft.cleanup).toBe(true);
  });

  it('does not take the next argument as a boolean value (pflag), so it becomes a refused argument', () => {
    const err = flagError(['--masquerade-all', 'false']);
    expect(err.code).toBe('invalid-flag');
    expect(err.message).toContain('takes no arguments');
  });

  it.each([
    [['-v=4'], 4],
    [['-v', '4'], 4],
    [['-v4'], 4],
    [['--v=4'], 4],
    [['--v', '2'], 2],
  ])('reads verbosity from %j', (argv, level) => {
    expect(draftOf(argv).draft.verbosity).toBe(level);
  });

  it('treats _ and - alike in names (WordSepNormalizeFunc)', () => {
    expect(draftOf(['--iptables_sync_period=5s']).draft.iptables.syncPeriodMs).toBe(5000);
  });

  it('lets the last of repeated scalar flags win', () => {
    expect(
      draftOf(['--iptables-masquerade-bit=3', '--iptables-masquerade-bit=5']).draft.iptables.masqueradeBit,
    ).toBe(5);
  });

  it('accumulates repeated list and map flags', () => {
    const { draft } = draftOf([
      '--nodeport-addresses=10.0.0.0/8',
      '--nodeport-addresses',
      '192.168.0.0/16,fd00::/64',
      '--feature-gates=A=true',
      '--feature-gates=B=false,C=true',
    ]);
    expect(draft.nodePortAddresses).toEqual(['10.0.0.0/8', '192.168.0.0/16', 'fd00::/64']);
    expect(draft.featureGates).toEqual({ A: true, B: false, C: true });
  });

  it('reports which flags were set explicitly, by canonical name', () => {
    const { changed } = draftOf(['-v=1', '--masquerade-all', '--iptables_sync_period=1s']);
    expect([...changed].sort()).toEqual(['iptables-sync-period', 'masquerade-all', 'v']);
  });

  it('stops at -- and refuses what follows as arguments', () => {
    expect(flagError(['--', '--kubeconfig=x']).message).toContain('takes no arguments');
  });

  it('recognises --help and -h', () => {
    expect(parseArgs(['--kubeconfig=x', '--help'])).toEqual({ help: true });
    expect(parseArgs(['-h'])).toEqual({ help: true });
  });
});

describe('parseArgs: values of every type', () => {
  it('parses durations in Go syntax', () => {
    const { draft } = draftOf([
      '--iptables-sync-period=1m0s',
      '--iptables-min-sync-period=500ms',
      '--conntrack-tcp-timeout-established=24h0m0s',
      '--conntrack-tcp-timeout-close-wait',
      '30m',
      '--conntrack-udp-timeout=30s',
      '--conntrack-udp-timeout-stream=2m',
      '--config-sync-period=1h',
    ]);
    expect(draft.iptables.syncPeriodMs).toBe(60_000);
    expect(draft.iptables.minSyncPeriodMs).toBe(500);
    expect(draft.conntrack).toMatchObject({
      tcpEstablishedTimeoutMs: 86_400_000,
      tcpCloseWaitTimeoutMs: 1_800_000,
      udpTimeoutMs: 30_000,
      udpStreamTimeoutMs: 120_000,
    });
    expect(draft.configSyncPeriodMs).toBe(3_600_000);
  });

  it('parses int32 in Go base-0 syntax', () => {
    expect(draftOf(['--iptables-masquerade-bit=0x0e']).draft.iptables.masqueradeBit).toBe(14);
    expect(draftOf(['--oom-score-adj=-500']).draft.oomScoreAdj).toBe(-500);
    expect(draftOf(['--conntrack-max-per-core=0']).draft.conntrack.maxPerCore).toBe(0);
    expect(draftOf(['--conntrack-min', '0o17']).draft.conntrack.min).toBe(15);
  });

  it('parses floats, IPs, ip:port, strings and our enums', () => {
    const { draft } = draftOf([
      '--kube-api-qps=7.5',
      '--bind-address=fd00::1',
      '--healthz-bind-address=[::1]:1234',
      '--metrics-bind-address=127.0.0.1',
      '--cluster-cidr=10.0.0.0/8,fd00::/48',
      '--detect-local-mode=BridgeInterface',
      '--pod-bridge-interface=cbr0',
      '--iptables-backend=nft',
      '--logging-format=text',
      '--debug-disable-conntrack-cleanup',
    ]);
    expect(draft.clientConnection.qps).toBe(7.5);
    expect(draft.bindAddress).toBe('fd00::1');
    expect(draft.healthzBindAddress).toBe('[::1]:1234');
    expect(draft.metricsBindAddress).toBe('127.0.0.1');
    expect(draft.clusterCIDRs).toEqual(['10.0.0.0/8', 'fd00::/48']);
    expect(draft.detectLocalMode).toBe('BridgeInterface');
    expect(draft.bridgeInterface).toBe('cbr0');
    expect(draft.iptablesBackend).toBe('nft');
    expect(draft.loggingFormat).toBe('text');
    expect(draft.debugDisableConntrackCleanup).toBe(true);
  });

  it('accepts an empty ip:port, which disables that server', () => {
    expect(draftOf(['--metrics-bind-address=']).draft.metricsBindAddress).toBe('');
  });

  it('leaves the file value alone for an empty --hostname-override, as upstream', () => {
    expect(draftOf(['--hostname-override=']).draft.hostnameOverride).toBe('');
  });
});

describe('parseArgs: errors name the flag and the reason', () => {
  it.each([
    [['--no-such-flag'], '--no-such-flag', 'unknown flag'],
    [['-x'], '-x', "unknown shorthand flag 'x'"],
    [['-kubeconfig=a'], '-kubeconfig=a', "unknown shorthand flag 'k'"],
    [['--kubeconfig'], '--kubeconfig', 'flag needs an argument'],
    [['-v'], '-v', 'flag needs an argument'],
    [['--masquerade-all=maybe'], '--masquerade-all', '"maybe" is not a boolean'],
    [['--masquerade-all='], '--masquerade-all', 'is not a boolean'],
    [['--iptables-masquerade-bit=abc'], '--iptables-masquerade-bit', '"abc" is not an integer'],
    [['--iptables-masquerade-bit=1.5'], '--iptables-masquerade-bit', 'is not an integer'],
    [['--conntrack-min=3000000000'], '--conntrack-min', 'out of range'],
    [['--iptables-sync-period=30'], '--iptables-sync-period', 'missing unit'],
    [['--iptables-sync-period=1d'], '--iptables-sync-period', 'unknown unit "d"'],
    [['--kube-api-qps=fast'], '--kube-api-qps', 'is not a number'],
    [['--bind-address=1.2.3'], '--bind-address', 'is not a valid IP address'],
    [['--healthz-bind-address=host:80'], '--healthz-bind-address', '"host" is not a valid IP address'],
    [['--healthz-bind-address=1.2.3.4:http'], '--healthz-bind-address', 'is not a valid port'],
    [['--metrics-bind-address=1.2.3.4:80:90'], '--metrics-bind-address', 'not in a valid format'],
    [['--feature-gates=A'], '--feature-gates', 'malformed pair'],
    [['--feature-gates=A=yes'], '--feature-gates', 'invalid value of A'],
    [['-v=-1'], '--v', 'out of range'],
    [['-v=high'], '--v', 'is not an integer'],
    [['--logging-format=xml'], '--logging-format', '"xml" is not one of "json", "text"'],
    [['--iptables-backend=iptables'], '--iptables-backend', 'is not one of "auto", "legacy", "nft"'],
    [['extra'], 'extra', 'takes no arguments'],
  ])('%j', (argv, field, reason) => {
    const err = flagError(argv);
    expect(err.code).toBe('invalid-flag');
    expect(err.issues).toHaveLength(1);
    expect(err.issues[0]!.field).toBe(field);
    expect(err.issues[0]!.reason).toContain(reason);
    expect(err.message).toContain(field);
  });
});

describe('helpText', () => {
  const help = helpText();

  it('lists every visible flag with its type and default', () => {
    for (const f of FLAGS.filter((x) => !x.hidden && !x.deprecated)) {
      expect(help).toContain(`--${f.name}`);
    }
    expect(help).toMatch(/--iptables-sync-period duration +.*\(default 30s\)/);
    expect(help).toMatch(/--conntrack-tcp-timeout-established duration +.*\(default 24h0m0s\)/);
    expect(help).toMatch(/--iptables-masquerade-bit int32 +.*\(default 14\)/);
    expect(help).toMatch(/--metrics-bind-address ipport +.*\(default 127\.0\.0\.1:10249\)/);
    expect(help).toMatch(/-v, --v Level +.*\(default 0\)/);
    expect(help).toMatch(/--logging-format string +.*\(default json\)/);
    expect(help).toMatch(/--iptables-backend string +.*\(default auto\)/);
    expect(help).toMatch(/-h, --help/);
  });

  it('marks accepted-but-ignored upstream flags', () => {
    for (const name of ['kube-api-qps', 'profiling', 'oom-score-adj', 'feature-gates', 'ipvs-scheduler']) {
      const line = help.split('\n').find((l) => l.includes(`--${name} `) || l.endsWith(`--${name}`));
      expect(line, name).toContain('kube-proxy-ts ignores it');
    }
    const line = help.split('\n').find((l) => l.includes('--iptables-sync-period '));
    expect(line).not.toContain('ignores it');
  });

  it('hides the debug flag and the deprecated port flags', () => {
    expect(help).not.toContain('debug-disable-conntrack-cleanup');
    expect(help).not.toContain('--healthz-port');
    expect(help).not.toContain('--metrics-port');
    // ... which still work.
    expect(draftOf(['--debug-disable-conntrack-cleanup=true']).draft.debugDisableConntrackCleanup).toBe(true);
  });

  it('lists flags sorted by name', () => {
    const names = help
      .split('\n')
      .map((l) => /^ {2}(?:-\w, )? *--([\w-]+)/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined && n !== 'help');
    expect(names.length).toBeGreaterThan(40);
    expect(names).toEqual([...names].sort());
  });
});
