/**
 * The real Iptables: runs the iptables binaries of one IP family and one backend (upstream:
 * pkg/util/iptables/iptables.go). Every call is one process, argv only (no shell); restore
 * payloads go through stdin. The version, and from it the lock-wait flags, is detected once, on
 * first use.
 */
import type { Logger } from '../log/logger.ts';
import { silentLogger } from '../log/logger.ts';
import { IptablesError, type IptablesErrorCode, RestoreError } from './errors.ts';
import { type Exec, type ExecResult, spawnExec } from './exec.ts';
import { payloadChunks, payloadText } from './payload.ts';
import { planSplit, sectionTexts } from './split.ts';
import type { Backend, Family, Iptables, RestoreOptions, RestorePayload, Table } from './types.ts';
import {
  iptablesWaitFlags,
  MIN_CHECK_VERSION,
  parseVersion,
  RANDOM_FULLY_MIN_VERSION,
  restoreWaitFlags,
  versionAtLeast,
} from './version.ts';

export type { Backend, Family, Iptables, RestoreOptions, RulePosition, Table } from './types.ts';

export interface IptablesRunnerOptions {
  readonly family: Family;
  readonly backend: Backend;
  /** Prepended to every command, e.g. `['ip', 'netns', 'exec', NS]` in kernel tests. */
  readonly execPrefix?: readonly string[];
  readonly logger?: Logger;
  /** Replaces process execution (tests). */
  readonly exec?: Exec;
}

export interface Binaries {
  readonly iptables: string;
  readonly restore: string;
  readonly save: string;
}

/** The binaries of one family and backend: `iptables-legacy`, `ip6tables-nft-restore`, ... */
export function binariesFor(family: Family, backend: Backend): Binaries {
  const base = `${family === 'IPv6' ? 'ip6tables' : 'iptables'}-${backend}`;
  return { iptables: base, restore: `${base}-restore`, save: `${base}-save` };
}

// Calls slower than this are logged, as upstream traces them.
const SLOW_CALL_MS = 2000;
// Upstream lets `-C` run for 5 minutes before giving up; the same bound is used for every call.
const CALL_TIMEOUT_MS = 5 * 60 * 1000;

// iptables' "it is not there" answers (upstream isNotFoundError), legacy and nft spellings.
const NOT_FOUND = [
  'No chain/target/match by that name',
  'No such file or directory',
  'does a matching rule exist',
  'does not exist',
];

/** The error code for a failed iptables process. */
export function classifyFailure(r: Pick<ExecResult, 'code' | 'stderr'>): IptablesErrorCode {
  // Exit status 4 is iptables' RESOURCE_PROBLEM; with legacy that is mostly the xtables lock.
  if (r.code === 4 && /xtables lock|holding the .*lock/i.test(r.stderr)) return 'lock-timeout';
  if (NOT_FOUND.some((s) => r.stderr.includes(s))) return 'not-found';
  return 'exec-failed';
}

interface Detected {
  readonly version: string;
  readonly waitFlags: readonly string[];
  readonly restoreWaitFlags: readonly string[];
}

export function createIptablesRunner(opts: IptablesRunnerOptions): Iptables {
  const { family, backend } = opts;
  const prefix = opts.execPrefix ?? [];
  const exec = opts.exec ?? spawnExec;
  const log = (opts.logger ?? silentLogger()).child({ component: 'iptables', family, backend });
  const bin = binariesFor(family, backend);

  async function runRaw(argv: readonly string[], stdin?: string | Iterable<string>): Promise<ExecResult> {
    const full = [...prefix, ...argv];
    const start = performance.now();
    let r: ExecResult;
    try {
      r = await exec(full, { ...(stdin !== undefined ? { stdin } : {}), timeoutMs: CALL_TIMEOUT_MS });
    } catch (e) {
      throw new IptablesError('exec-failed', `cannot run ${full.join(' ')}: ${(e as Error).message}`, {
        command: full,
        cause: e,
      });
    }
    const ms = performance.now() - start;
    if (ms > SLOW_CALL_MS) log.info({ command: argv.join(' '), ms: Math.round(ms) }, 'slow iptables call');
    else log.trace({ command: argv.join(' '), ms: Math.round(ms), code: r.code }, 'iptables call');
    if (r.signal !== null) {
      throw new IptablesError('exec-failed', `${full.join(' ')} was killed by ${r.signal}`, {
        command: full,
        stderr: r.stderr,
      });
    }
    return r;
  }

  function failure(argv: readonly string[], r: ExecResult): IptablesError {
    const full = [...prefix, ...argv];
    return new IptablesError(classifyFailure(r), `${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`, {
      command: full,
      stderr: r.stderr,
      ...(r.code !== null ? { exitCode: r.code } : {}),
    });
  }

  let detected: Promise<Detected> | undefined;
  function detect(): Promise<Detected> {
    detected ??= (async () => {
      let version: string | undefined;
      try {
        version = parseVersion((await runRaw([bin.iptables, '--version'])).stdout);
      } catch (e) {
        log.warn({ err: e }, 'cannot run iptables --version');
      }
      if (version === undefined) {
        // As upstream: carry on with the oldest version that has everything we use.
        log.warn({ assumed: MIN_CHECK_VERSION }, 'iptables version unknown, assuming the minimum');
        version = MIN_CHECK_VERSION;
      }
      let restoreReportsVersion = true;
      if (!versionAtLeast(version, '1.6.2')) {
        // Only restore builds that understand --version understand -w (upstream getIPTablesRestoreWaitFlag).
        const r = await runRaw([bin.restore, '--version']).catch(() => undefined);
        restoreReportsVersion = r !== undefined && parseVersion(r.stdout) !== undefined;
      }
      log.debug({ version }, 'iptables version');
      return {
        version,
        waitFlags: iptablesWaitFlags(version),
        restoreWaitFlags: restoreWaitFlags(version, restoreReportsVersion),
      };
    })();
    return detected;
  }

  /** Runs `iptables <wait flags> <op> <chain> -t <table> <args>`; returns the raw result. */
  async function iptables(
    op: string,
    table: Table,
    chain: string,
    args: readonly string[] = [],
  ): Promise<{ argv: string[]; r: ExecResult }> {
    const d = await detect();
    const argv = [bin.iptables, ...d.waitFlags, op, chain, '-t', table, ...args];
    return { argv, r: await runRaw(argv) };
  }

  async function iptablesOk(
    op: string,
    table: Table,
    chain: string,
    args: readonly string[] = [],
  ): Promise<void> {
    const { argv, r } = await iptables(op, table, chain, args);
    if (r.code !== 0) throw failure(argv, r);
  }

  /** `-C`: true when present, false on exit status 1 (absent), an error otherwise. */
  async function check(table: Table, chain: string, args: readonly string[]): Promise<boolean> {
    const { argv, r } = await iptables('-C', table, chain, args);
    if (r.code === 0) return true;
    if (r.code === 1) return false;
    throw failure(argv, r);
  }

  async function restoreWith(
    extra: readonly string[],
    given: RestorePayload,
    o: RestoreOptions,
  ): Promise<void> {
    const d = await detect();
    const argv = [bin.restore, ...d.restoreWaitFlags, ...extra];
    if (!o.flush) argv.push('--noflush');
    if (o.counters) argv.push('--counters');
    // Only --noflush: with flush, every section would empty the table again. The sections are
    // made as iptables-restore reads them, so the payload is never held twice.
    const plan = backend === 'nft' && !o.flush ? planSplit(given) : undefined;
    const r = await runRaw(argv, plan === undefined ? payloadChunks(given) : sectionTexts(plan));
    if (r.code === 0) return;
    // Line numbers in iptables' message count lines of what it was fed.
    const payload = plan === undefined ? payloadText(given) : [...sectionTexts(plan)].join('');
    if (classifyFailure(r) === 'lock-timeout') throw failure(argv, r);
    const err = new RestoreError({
      payload,
      stderr: r.stderr,
      command: [...prefix, ...argv],
      ...(r.code !== null ? { exitCode: r.code } : {}),
    });
    log.error({ line: err.line, context: err.context, stderr: r.stderr.trim() }, 'iptables-restore failed');
    throw err;
  }

  async function saveWith(args: readonly string[]): Promise<string> {
    const argv = [bin.save, ...args];
    const r = await runRaw(argv);
    if (r.code !== 0) throw failure(argv, r);
    return r.stdout;
  }

  return {
    family,
    backend,
    restoreAll: (payload, o) => restoreWith([], payload, o),
    restore: (table, payload, o) => restoreWith(['-T', table], payload, o),
    save: (table) => saveWith(['-t', table]),
    saveAll: () => saveWith([]),

    async ensureChain(table, chain) {
      const { argv, r } = await iptables('-N', table, chain);
      if (r.code === 0) return false;
      // Exit status 1 with "Chain already exists" (legacy and nft); upstream trusts the status.
      if (r.code === 1 && /already exists/i.test(r.stderr)) return true;
      throw failure(argv, r);
    },

    async ensureRule(position, table, chain, args) {
      if (await check(table, chain, args)) return true;
      await iptablesOk(position === 'prepend' ? '-I' : '-A', table, chain, args);
      return false;
    },

    async deleteRule(table, chain, args) {
      if (!(await check(table, chain, args))) return;
      await iptablesOk('-D', table, chain, args);
    },

    async chainExists(table, chain) {
      const { argv, r } = await iptables('-S', table, chain);
      if (r.code === 0) return true;
      if (r.code === 1) return false;
      throw failure(argv, r);
    },

    flushChain: (table, chain) => iptablesOk('-F', table, chain),

    async deleteChain(table, chain) {
      const { argv, r } = await iptables('-F', table, chain);
      if (r.code !== 0) {
        if (classifyFailure(r) === 'not-found') return;
        throw failure(argv, r);
      }
      await iptablesOk('-X', table, chain);
    },

    version: async () => (await detect()).version,
    hasRandomFully: async () => versionAtLeast((await detect()).version, RANDOM_FULLY_MIN_VERSION),
  };
}
