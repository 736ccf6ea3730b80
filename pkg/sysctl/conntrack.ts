/**
 * The conntrack sysctls kube-proxy sets at start-up (upstream: setSysctls and getConntrackMax in
 * pkg/proxy/conntrack/sysctls.go, formerly cmd/kube-proxy/app/conntrack.go and server_linux.go).
 *
 * Upstream fails start-up when a write fails (except a read-only /sys for the hashsize, which it
 * reports as an event). Here every value that cannot be written is skipped with a log line naming
 * it: kube-proxy-ts often runs in a network namespace or a container where these are read-only
 * (nf_conntrack_max is 0444 outside the initial namespace), and the proxy works without them.
 *
 * What is set, and when:
 * - nf_conntrack_max = max(maxPerCore × CPUs, min), capped at 1,048,576 (upstream's cap against
 *   huge tables on many-core machines), only when maxPerCore > 0, and only RAISED: a node whose
 *   admin set a higher limit keeps it (the newest upstream reads the current value first and
 *   writes only when it is lower; older releases also lowered it).
 * - The nf_conntrack module's hashsize (/sys/module/nf_conntrack/parameters/hashsize) is raised to
 *   max/4 when it is lower, as upstream: too few buckets make every lookup walk long lists. The
 *   kernel allows this only from the initial network namespace (EOPNOTSUPP elsewhere).
 * - tcp_timeout_established, tcp_timeout_close_wait, udp_timeout, udp_timeout_stream: the
 *   configured duration in whole seconds, when it is at least one second (0 = leave it).
 * - tcp_be_liberal = 1 when asked for (false leaves it as it is, never resets it to 0).
 * A value already equal to the wanted one is not rewritten.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { ConntrackConfig } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { parseIntValue, procSysctl, type SysctlErrorCode, type SysctlIO, toSysctlError } from './sysctl.ts';

/**
 * The conntrack settings this module applies: the daemon's resolved `conntrack` configuration
 * (pkg/config, where each field's flag and default are documented), narrowed to what is read here.
 */
export type ConntrackSysctlConfig = Pick<
  ConntrackConfig,
  | 'maxPerCore'
  | 'min'
  | 'tcpEstablishedTimeoutMs'
  | 'tcpCloseWaitTimeoutMs'
  | 'tcpBeLiberal'
  | 'udpTimeoutMs'
  | 'udpStreamTimeoutMs'
>;

/** The nf_conntrack module's hash table size: one global value, not per namespace. */
export interface HashsizeIO {
  read(): Promise<number>;
  write(value: number): Promise<void>;
}

export interface ConntrackSysctlDeps {
  /** CPUs of the node (os.cpus().length: every online CPU, not the process's cpuset, #99225). */
  readonly numCPU: number;
  readonly logger: Logger;
  /** Defaults to the real /proc/sys. */
  readonly sysctl?: SysctlIO;
  /** Defaults to the real module parameter in /sys. */
  readonly hashsize?: HashsizeIO;
}

export const NF_CONNTRACK_MAX = 'net/netfilter/nf_conntrack_max';
export const TCP_TIMEOUT_ESTABLISHED = 'net/netfilter/nf_conntrack_tcp_timeout_established';
export const TCP_TIMEOUT_CLOSE_WAIT = 'net/netfilter/nf_conntrack_tcp_timeout_close_wait';
export const TCP_BE_LIBERAL_SYSCTL = 'net/netfilter/nf_conntrack_tcp_be_liberal';
export const UDP_TIMEOUT = 'net/netfilter/nf_conntrack_udp_timeout';
export const UDP_TIMEOUT_STREAM = 'net/netfilter/nf_conntrack_udp_timeout_stream';
export const HASHSIZE_PATH = '/sys/module/nf_conntrack/parameters/hashsize';

/** Upper bound for the scaled nf_conntrack_max (upstream getConntrackMax). */
export const CONNTRACK_MAX_LIMIT = 1_048_576;

/** The nf_conntrack_max kube-proxy wants, or 0 for "leave it alone". Pure. */
export function conntrackMax(cfg: Pick<ConntrackSysctlConfig, 'maxPerCore' | 'min'>, numCPU: number): number {
  if (!(cfg.maxPerCore > 0)) return 0;
  const scaled = cfg.maxPerCore * Math.max(1, numCPU);
  // As upstream, the cap applies to the scaled value before `min` is looked at.
  if (scaled > CONNTRACK_MAX_LIMIT) return CONNTRACK_MAX_LIMIT;
  return Math.max(scaled, cfg.min);
}

export const moduleHashsize: HashsizeIO = {
  async read() {
    try {
      return parseIntValue(HASHSIZE_PATH, await readFile(HASHSIZE_PATH, 'utf8'));
    } catch (err) {
      throw toSysctlError(err, HASHSIZE_PATH, 'read');
    }
  },
  async write(value) {
    try {
      await writeFile(HASHSIZE_PATH, String(value));
    } catch (err) {
      throw toSysctlError(err, HASHSIZE_PATH, 'write');
    }
  },
};

export interface SysctlOutcome {
  /** The sysctl name, or HASHSIZE_PATH for the module parameter. */
  readonly name: string;
  readonly desired: number;
  /** The value found before, when it could be read. */
  readonly previous?: number;
  /** set: written; unchanged: already right (or higher, for nf_conntrack_max); skipped: not writable. */
  readonly action: 'set' | 'unchanged' | 'skipped';
  /** Why it was skipped. */
  readonly code?: SysctlErrorCode;
  readonly reason?: string;
}

/** Whole seconds of a duration, as upstream's `int(d / time.Second)`. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * Applies the conntrack settings as upstream does (see the file comment). Never throws: each
 * outcome, including the skipped ones, is logged and returned in order.
 */
export async function applyConntrackSysctls(
  cfg: ConntrackSysctlConfig,
  deps: ConntrackSysctlDeps,
): Promise<SysctlOutcome[]> {
  const sys = deps.sysctl ?? procSysctl;
  const hashsize = deps.hashsize ?? moduleHashsize;
  const log = deps.logger.child({ component: 'conntrack-sysctls' });
  const out: SysctlOutcome[] = [];

  async function current(name: string): Promise<number | undefined> {
    try {
      return parseIntValue(name, await sys.read(name));
    } catch {
      // As upstream (`val, _ := GetSysctl`): unreadable means "write it".
      return undefined;
    }
  }

  function skipped(name: string, desired: number, previous: number | undefined, err: unknown): SysctlOutcome {
    const e = toSysctlError(err, name, 'write');
    log.warn({ sysctl: name, value: desired, code: e.code, err: e.message }, `cannot set ${name}; skipped`);
    return {
      name,
      desired,
      ...(previous !== undefined ? { previous } : {}),
      action: 'skipped',
      code: e.code,
      reason: e.message,
    };
  }

  /** Sets `name` to `desired` unless it already is (or, with onlyRaise, is at least that). */
  async function setInt(name: string, desired: number, onlyRaise = false): Promise<void> {
    const previous = await current(name);
    const base = { name, desired, ...(previous !== undefined ? { previous } : {}) };
    if (previous !== undefined && (previous === desired || (onlyRaise && previous > desired))) {
      log.debug({ sysctl: name, value: previous, wanted: desired }, 'sysctl already set');
      out.push({ ...base, action: 'unchanged' });
      return;
    }
    try {
      await sys.write(name, String(desired));
    } catch (err) {
      out.push(skipped(name, desired, previous, err));
      return;
    }
    log.info({ sysctl: name, value: desired, previous }, 'set sysctl');
    out.push({ ...base, action: 'set' });
  }

  const max = conntrackMax(cfg, deps.numCPU);
  if (max > 0) {
    await setInt(NF_CONNTRACK_MAX, max, true);
    const buckets = Math.floor(max / 4);
    let previous: number | undefined;
    try {
      previous = await hashsize.read();
    } catch (err) {
      out.push(skipped(HASHSIZE_PATH, buckets, undefined, err));
    }
    if (previous !== undefined) {
      if (previous >= buckets) {
        out.push({ name: HASHSIZE_PATH, desired: buckets, previous, action: 'unchanged' });
      } else {
        try {
          await hashsize.write(buckets);
          log.info({ hashsize: buckets, previous }, 'set conntrack hashsize');
          out.push({ name: HASHSIZE_PATH, desired: buckets, previous, action: 'set' });
        } catch (err) {
          out.push(skipped(HASHSIZE_PATH, buckets, previous, err));
        }
      }
    }
  }

  // A sub-second duration is 0 s; upstream would write 0 (expire at once), here it means "leave it".
  const timeouts: readonly (readonly [string, number])[] = [
    [TCP_TIMEOUT_ESTABLISHED, cfg.tcpEstablishedTimeoutMs],
    [TCP_TIMEOUT_CLOSE_WAIT, cfg.tcpCloseWaitTimeoutMs],
  ];
  for (const [name, ms] of timeouts) if (seconds(ms) > 0) await setInt(name, seconds(ms));
  if (cfg.tcpBeLiberal) await setInt(TCP_BE_LIBERAL_SYSCTL, 1);
  for (const [name, ms] of [
    [UDP_TIMEOUT, cfg.udpTimeoutMs],
    [UDP_TIMEOUT_STREAM, cfg.udpStreamTimeoutMs],
  ] as const) {
    if (seconds(ms) > 0) await setInt(name, seconds(ms));
  }
  return out;
}
