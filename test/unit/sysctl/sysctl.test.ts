import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  readSysctl,
  readTcpBeLiberal,
  SysctlError,
  sysctlPath,
  toSysctlError,
} from '../../../pkg/sysctl/sysctl.ts';
import { errnoError } from './memory.ts';

describe('sysctlPath', () => {
  it('maps slash names under /proc/sys', () => {
    expect(sysctlPath('net/netfilter/nf_conntrack_max')).toBe('/proc/sys/net/netfilter/nf_conntrack_max');
  });

  it.each(['', '/etc/passwd', 'net/../../etc/passwd', 'net//ipv4', 'net/./ipv4', 'net/ipv4/'])(
    'refuses %j',
    (name) => {
      expect(() => sysctlPath(name)).toThrow(SysctlError);
      try {
        sysctlPath(name);
      } catch (e) {
        expect((e as SysctlError).code).toBe('invalid-name');
      }
    },
  );
});

describe('toSysctlError', () => {
  it.each([
    ['EACCES', 'permission-denied'],
    ['EPERM', 'permission-denied'],
    ['EROFS', 'read-only'],
    ['EOPNOTSUPP', 'not-supported'],
    ['ENOENT', 'not-found'],
    ['EINVAL', 'invalid-value'],
    ['EIO', 'io-error'],
  ])('%s → %s', (errno, code) => {
    const e = toSysctlError(errnoError(errno, '/proc/sys/x'), 'net/x', 'write');
    expect(e).toMatchObject({ code, errno, sysctl: 'net/x' });
    expect(e.message).toContain('cannot write net/x');
  });
});

describe('readSysctl', () => {
  it('reads a value of this process’s namespace, trimmed', async () => {
    expect(await readSysctl('net/netfilter/nf_conntrack_max')).toMatch(/^\d+$/);
  });

  it('reports a missing sysctl as not-found', async () => {
    await expect(readSysctl('net/netfilter/no_such_value_here')).rejects.toMatchObject({ code: 'not-found' });
  });
});

describe('readTcpBeLiberal', () => {
  it.each([
    ['1', true],
    ['2', true],
    ['0', false],
    ['yes', false],
  ])('%j → %s', (value, expected) => {
    expect(readTcpBeLiberal(() => value)).toBe(expected);
  });

  it('is false when the value cannot be read (the INVALID drop rule stays)', () => {
    expect(
      readTcpBeLiberal(() => {
        throw errnoError('ENOENT', '/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal');
      }),
    ).toBe(false);
  });

  it('reads the real value of this namespace by default', () => {
    const raw = readFileSync('/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal', 'utf8').trim();
    expect(readTcpBeLiberal()).toBe(raw !== '0');
  });
});
