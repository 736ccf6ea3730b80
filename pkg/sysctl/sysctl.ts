/**
 * Reading and writing kernel parameters under /proc/sys (upstream: k8s.io/component-helpers
 * node/util/sysctl). Names are written with slashes, as upstream does: `net/netfilter/nf_conntrack_max`.
 *
 * /proc/sys/net shows the network namespace of the calling process, so a process started with
 * `ip netns exec NS` reads and writes that namespace's values. Some values are global and show up
 * read-only (mode 0444) outside the initial namespace, nf_conntrack_max among them: writing them
 * there fails with EACCES even as root.
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';

export type SysctlErrorCode =
  /** EACCES/EPERM: not allowed here (read-only in this namespace, or no privilege). */
  | 'permission-denied'
  /** EROFS: /proc/sys (or /sys) is mounted read-only, as in many containers. */
  | 'read-only'
  /** EOPNOTSUPP: the kernel refuses the change from here (e.g. hashsize outside the initial netns). */
  | 'not-supported'
  /** ENOENT: no such parameter (module not loaded, or a typo). */
  | 'not-found'
  /** EINVAL, or what was read is not the number expected. */
  | 'invalid-value'
  /** A name that would leave /proc/sys (`..`, absolute path) or is empty. */
  | 'invalid-name'
  | 'io-error';

export class SysctlError extends Error {
  override readonly name = 'SysctlError';
  readonly code: SysctlErrorCode;
  /** The sysctl (or file) concerned, e.g. `net/netfilter/nf_conntrack_max`. */
  readonly sysctl: string;
  /** The errno name (`EACCES`, ...) when the failure came from the file system. */
  readonly errno: string | undefined;

  constructor(
    code: SysctlErrorCode,
    sysctl: string,
    message: string,
    opts: { errno?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.sysctl = sysctl;
    this.errno = opts.errno;
  }
}

/** Read and write access to sysctls by name; the real one is `procSysctl`, tests pass a map. */
export interface SysctlIO {
  /** The value, trimmed. */
  read(name: string): Promise<string>;
  write(name: string, value: string): Promise<void>;
}

const ROOT = '/proc/sys';

/** `/proc/sys/<name>`; refuses names that would reach outside /proc/sys. */
export function sysctlPath(name: string): string {
  if (
    name === '' ||
    name.startsWith('/') ||
    name.split('/').some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new SysctlError('invalid-name', name, `bad sysctl name ${JSON.stringify(name)}`);
  }
  return `${ROOT}/${name}`;
}

const ERRNO_CODES: Readonly<Record<string, SysctlErrorCode>> = {
  EACCES: 'permission-denied',
  EPERM: 'permission-denied',
  EROFS: 'read-only',
  EOPNOTSUPP: 'not-supported',
  ENOTSUP: 'not-supported',
  ENOENT: 'not-found',
  EINVAL: 'invalid-value',
};

/** A file-system error on `target` as a SysctlError. */
export function toSysctlError(err: unknown, target: string, action: 'read' | 'write'): SysctlError {
  if (err instanceof SysctlError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const code = (errno && ERRNO_CODES[errno]) || 'io-error';
  const reason = err instanceof Error ? err.message : String(err);
  return new SysctlError(code, target, `cannot ${action} ${target}: ${reason}`, {
    ...(errno ? { errno } : {}),
    cause: err,
  });
}

/** The value of a sysctl, trimmed. Throws SysctlError. */
export async function readSysctl(name: string): Promise<string> {
  const path = sysctlPath(name);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw toSysctlError(err, name, 'read');
  }
}

/** Synchronous readSysctl, for the few values read once at start-up. */
export function readSysctlSync(name: string): string {
  const path = sysctlPath(name);
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw toSysctlError(err, name, 'read');
  }
}

/** Sets a sysctl. Throws SysctlError (`permission-denied` when the value is read-only here). */
export async function writeSysctl(name: string, value: string | number): Promise<void> {
  const path = sysctlPath(name);
  try {
    // One write(2) of the whole value, as `sysctl -w` does; a trailing newline is accepted.
    await writeFile(path, `${value}\n`, { flag: 'w' });
  } catch (err) {
    throw toSysctlError(err, name, 'write');
  }
}

/** The real /proc/sys. */
export const procSysctl: SysctlIO = {
  read: readSysctl,
  write: (name, value) => writeSysctl(name, value),
};

/** Parses a sysctl's value as one integer (e.g. `262144`); throws SysctlError `invalid-value`. */
export function parseIntValue(name: string, text: string): number {
  if (!/^-?\d+$/.test(text.trim())) {
    throw new SysctlError('invalid-value', name, `${name} is ${JSON.stringify(text)}, not an integer`);
  }
  return Number(text.trim());
}

export const TCP_BE_LIBERAL = 'net/netfilter/nf_conntrack_tcp_be_liberal';

/**
 * Whether conntrack accepts out-of-window TCP packets (nf_conntrack_tcp_be_liberal != 0). When it
 * does, the renderer leaves out the INVALID drop rule in KUBE-FORWARD (upstream NewProxier does the
 * same check). A value that cannot be read counts as 0, as upstream: the drop rule is the safe side.
 */
export function readTcpBeLiberal(read: (name: string) => string = readSysctlSync): boolean {
  try {
    return parseIntValue(TCP_BE_LIBERAL, read(TCP_BE_LIBERAL)) !== 0;
  } catch {
    return false;
  }
}
