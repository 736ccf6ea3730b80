import { describe, expect, it } from 'vitest';
import { localhostNodePortsEnabled } from '../../../cmd/kube-proxy-ts/render-config.ts';
import { resolveConfig } from '../../../pkg/config/resolve.ts';

function config(...flags: string[]) {
  const r = resolveConfig(['--hostname-override=n1', ...flags]);
  if ('help' in r) throw new Error('unexpected help');
  return r.config;
}

describe('localhost NodePorts (and so route_localnet) as upstream decides them', () => {
  it.each([
    ['on by default', [], true],
    ['off by flag', ['--iptables-localhost-nodeports=false'], false],
    ['off when nodeport addresses leave loopback out', ['--nodeport-addresses=192.168.100.0/24'], false],
    [
      'on when nodeport addresses include loopback',
      ['--nodeport-addresses=127.0.0.0/8,192.168.100.0/24'],
      true,
    ],
    ['on when nodeport addresses name only IPv6', ['--nodeport-addresses=fd00::/64'], true],
    ['off for primary', ['--nodeport-addresses=primary'], false],
  ])('%s', (_name, flags, want) => {
    expect(localhostNodePortsEnabled(config(...flags))).toBe(want);
  });
});
