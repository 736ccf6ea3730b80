/** An in-memory /proc/sys and hashsize for tests, with failures injectable per name. */
import type { HashsizeIO } from '../../../pkg/sysctl/conntrack.ts';
import type { SysctlIO } from '../../../pkg/sysctl/sysctl.ts';

export function errnoError(errno: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${errno}: operation failed, open '${path}'`), { code: errno });
}

export interface MemorySysctl extends SysctlIO {
  readonly values: Map<string, string>;
  /** Names whose writes fail with this errno. */
  readonly failWrites: Map<string, string>;
  /** Every successful write, in order. */
  readonly writes: [string, string][];
}

export function memorySysctl(initial: Record<string, string | number>): MemorySysctl {
  const values = new Map(Object.entries(initial).map(([k, v]) => [k, String(v)] as const));
  const failWrites = new Map<string, string>();
  const writes: [string, string][] = [];
  return {
    values,
    failWrites,
    writes,
    async read(name) {
      const v = values.get(name);
      if (v === undefined) throw errnoError('ENOENT', `/proc/sys/${name}`);
      return v.trim();
    },
    async write(name, value) {
      const errno = failWrites.get(name);
      if (errno) throw errnoError(errno, `/proc/sys/${name}`);
      if (!values.has(name)) throw errnoError('ENOENT', `/proc/sys/${name}`);
      values.set(name, value);
      writes.push([name, value]);
    },
  };
}

export function memoryHashsize(
  value: number,
  failWith?: string,
): HashsizeIO & { value: number; writes: number[] } {
  const h = {
    value,
    writes: [] as number[],
    async read() {
      return h.value;
    },
    async write(v: number) {
      if (failWith) throw errnoError(failWith, '/sys/module/nf_conntrack/parameters/hashsize');
      h.value = v;
      h.writes.push(v);
    },
  };
  return h;
}
