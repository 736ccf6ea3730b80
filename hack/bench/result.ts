/**
 * The benchmark's output: one JSON object per cluster size and backend, on its own line, with
 * a fixed key order (so lines diff well), `null` for what a line does not measure; the issue's
 * targets checked against those lines; and a markdown table for the README.
 */

/** Every key of a line, in output order. Unknown keys are appended after these. */
export const FIELD_ORDER = [
  'services',
  'endpointsPerService',
  'backend',
  'rulesFull',
  'natRulesFull',
  'renderFullMs',
  'renderFullWarmMs',
  'restoreFullMs',
  'restoreFullCpuMs',
  'renderFullCpuMs',
  'payloadFullBytes',
  'trackerOneChangeMs',
  'renderPartialMs',
  'renderPartialCpuMs',
  'restorePartialMs',
  'payloadPartialBytes',
  'syncPartialMs',
  'restoreOneRuleMs',
  'restorePartialCpuMs',
  'restoreOneRuleCpuMs',
  'restoreUpstreamStylePartialCpuMs',
  'renderUpstreamStylePartialMs',
  'restoreUpstreamStylePartialMs',
  'payloadUpstreamStylePartialBytes',
  'renderAddMs',
  'restoreAddMs',
  'payloadAddBytes',
  'renderDeleteMs',
  'restoreDeleteMs',
  'payloadDeleteBytes',
  'trackerChanges',
  'trackerRecordMs',
  'trackerApplyMs',
  'trackerLoadMs',
  'latencyChanges',
  'latencyP50Ms',
  'latencyP99Ms',
  'latencyMaxMs',
  'latencyPollMs',
  'minSyncPeriodMs',
  'latencyNote',
  'conntrackEntries',
  'conntrackStale',
  'conntrackCleanupMs',
  'conntrackCpuMs',
  'conntrackNetlinkRequests',
  'conntrackDumpRequests',
  'conntrackDeleteRequests',
  'conntrackNote',
  'kernelNatRules',
  'rendererNatRules',
  'rssBeforeFullSyncMB',
  'rssPeakMB',
  'heapUsedMB',
  'reps',
  'loadAverageStart',
  'loadAverageEnd',
  'wallMs',
  'ok',
  'problems',
] as const;

export type FieldName = (typeof FIELD_ORDER)[number];
export type FieldValue = number | string | boolean | null | readonly string[];
export type BenchLine = Partial<Record<FieldName, FieldValue>> & Record<string, FieldValue>;

export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Median of a non-empty list (mean of the middle two for an even length); NaN when empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100): the smallest value with at least p% at or below it. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  if (p < 0 || p > 100) throw new RangeError(`percentile ${p}`);
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[rank - 1]!;
}

/** One line of output: every known field present (null when missing), known fields first. */
export function formatBenchLine(line: BenchLine): string {
  const out: Record<string, FieldValue> = {};
  for (const k of FIELD_ORDER) {
    const v = line[k];
    out[k] = v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? null : v;
  }
  for (const [k, v] of Object.entries(line)) if (!(k in out)) out[k] = v;
  return JSON.stringify(out);
}

function num(line: BenchLine, k: FieldName): number | undefined {
  const v = line[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export interface TargetCheck {
  readonly target: string;
  readonly services: number;
  readonly endpointsPerService: number;
  readonly backend: string;
  /** null: the line does not hold what the target needs. */
  readonly met: boolean | null;
  readonly detail: string;
}

const KiB = 1024;

/**
 * The targets, checked on every line they apply to. `minSyncPeriodMs` comes from the
 * line (the latency run's setting).
 */
export function checkTargets(lines: readonly BenchLine[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const l of lines) {
    const services = num(l, 'services') ?? 0;
    const eps = num(l, 'endpointsPerService') ?? 0;
    const backend = String(l.backend ?? '');
    const add = (target: string, met: boolean | null, detail: string) =>
      out.push({ target, services, endpointsPerService: eps, backend, met, detail });
    const need = (...ks: FieldName[]): number[] | undefined => {
      const vs = ks.map((k) => num(l, k));
      return vs.every((v) => v !== undefined) ? (vs as number[]) : undefined;
    };

    const full = need('renderFullMs', 'restoreFullMs');
    add(
      'full sync: render <= 10% of restore',
      full ? full[0]! <= 0.1 * full[1]! : null,
      full
        ? `render ${full[0]} ms vs restore ${full[1]} ms (${round1((100 * full[0]!) / full[1]!)}%)`
        : 'n/a',
    );

    // The same, in CPU time (user + system of this process / of iptables-restore): on a busy
    // machine wall times say as much about the other processes as about the work.
    const fullCpu = need('renderFullCpuMs', 'restoreFullCpuMs');
    add(
      'full sync: render <= 10% of restore (CPU time)',
      fullCpu ? fullCpu[0]! <= 0.1 * fullCpu[1]! : null,
      fullCpu
        ? `render ${fullCpu[0]} ms vs restore ${fullCpu[1]} ms CPU (${round1((100 * fullCpu[0]!) / fullCpu[1]!)}%)`
        : 'n/a',
    );

    const big = services >= 10_000;
    if (big) {
      const bytes = need('payloadPartialBytes');
      add(
        'one endpoint at 10k: payload < 5 KiB',
        bytes ? bytes[0]! < 5 * KiB : null,
        bytes ? `${bytes[0]} bytes` : 'n/a',
      );
      const sync = need('syncPartialMs', 'restoreOneRuleMs');
      add(
        'one endpoint at 10k: sync - restoreOneRule < 20 ms',
        sync ? sync[0]! - sync[1]! < 20 : null,
        sync ? `${round1(sync[0]! - sync[1]!)} ms (sync ${sync[0]}, floor ${sync[1]})` : 'n/a',
      );
      const syncCpu = need(
        'trackerOneChangeMs',
        num(l, 'renderPartialCpuMs') !== undefined ? 'renderPartialCpuMs' : 'renderPartialMs',
        'restorePartialCpuMs',
        'restoreOneRuleCpuMs',
      );
      const overheadCpu = syncCpu
        ? syncCpu[0]! + syncCpu[1]! + Math.max(0, syncCpu[2]! - syncCpu[3]!)
        : Number.NaN;
      add(
        'one endpoint at 10k: sync - restoreOneRule < 20 ms (CPU time)',
        syncCpu ? overheadCpu < 20 : null,
        syncCpu
          ? `${round1(overheadCpu)} ms (tracker ${syncCpu[0]} + render ${syncCpu[1]} + restore CPU above the floor ${round1(Math.max(0, syncCpu[2]! - syncCpu[3]!))}; GNU time counts 10 ms steps)`
          : 'n/a',
      );
      if (backend === 'nft') {
        const c = need('restorePartialCpuMs', 'restoreOneRuleCpuMs', 'restoreUpstreamStylePartialCpuMs');
        add(
          'nft one endpoint at 10k: restorePartial <= 1.5x restoreOneRule (CPU time)',
          c ? c[0]! <= 1.5 * c[1]! : null,
          c ? `${c[0]} ms vs 1.5 x ${c[1]} ms CPU` : 'n/a',
        );
        add(
          'nft one endpoint at 10k: restorePartial <= 1/4 upstream style (CPU time)',
          c ? c[0]! <= c[2]! / 4 : null,
          c ? `${c[0]} ms vs ${c[2]} / 4 ms CPU` : 'n/a',
        );
        const p = need('restorePartialMs', 'restoreOneRuleMs', 'restoreUpstreamStylePartialMs');
        add(
          'nft one endpoint at 10k: restorePartial <= 1.5x restoreOneRule',
          p ? p[0]! <= 1.5 * p[1]! : null,
          p ? `${p[0]} ms vs 1.5 x ${p[1]} = ${round1(1.5 * p[1]!)} ms` : 'n/a',
        );
        add(
          'nft one endpoint at 10k: restorePartial <= 1/4 upstream style',
          p ? p[0]! <= p[2]! / 4 : null,
          p ? `${p[0]} ms vs ${p[2]} / 4 = ${round1(p[2]! / 4)} ms` : 'n/a',
        );
      }
      const lat = need('latencyP99Ms', 'minSyncPeriodMs', 'restoreOneRuleMs');
      const bound = lat ? (backend === 'nft' ? lat[1]! + 250 : lat[1]! + lat[2]! + 250) : Number.NaN;
      add(
        'latency p99 at 10k',
        lat ? lat[0]! <= bound : null,
        lat ? `p99 ${lat[0]} ms vs bound ${round1(bound)} ms` : 'not measured at this size',
      );
      if (eps >= 10) {
        const rss = need('rssPeakMB');
        add('peak RSS at 10k x 10 < 300 MB', rss ? rss[0]! < 300 : null, rss ? `${rss[0]} MB` : 'n/a');
      }
    }
  }
  // Conntrack is measured once per run: checked once.
  const ct = lines.find((l) => num(l, 'conntrackCleanupMs') !== undefined);
  if (ct) {
    const ms = num(ct, 'conntrackCleanupMs')!;
    const entries = num(ct, 'conntrackEntries') ?? 0;
    const stale = num(ct, 'conntrackStale') ?? 0;
    const dumps = num(ct, 'conntrackDumpRequests');
    const deletes = num(ct, 'conntrackDeleteRequests');
    // The target is about 100,000 entries; a smaller (--quick) run cannot meet or miss it.
    const met = entries < 100_000 ? null : ms < 1000 && dumps === 1 && deletes === stale;
    out.push({
      target: 'conntrack: 100k entries, cleanup < 1 s, 1 dump + 1 delete per stale entry',
      services: 0,
      endpointsPerService: 0,
      backend: '-',
      met,
      detail: `${entries} entries, ${ms} ms, ${dumps} dump(s), ${deletes} delete(s) for ${stale} stale`,
    });
  }
  return out;
}

const TABLE_COLUMNS: readonly (readonly [FieldName, string])[] = [
  ['services', 'services'],
  ['endpointsPerService', 'eps/svc'],
  ['backend', 'backend'],
  ['rulesFull', 'rules'],
  ['renderFullMs', 'render full ms'],
  ['restoreFullMs', 'restore full ms'],
  ['payloadFullBytes', 'full bytes'],
  ['renderPartialMs', 'render 1-ep ms'],
  ['restorePartialMs', 'restore 1-ep ms'],
  ['payloadPartialBytes', '1-ep bytes'],
  ['restoreOneRuleMs', 'one-rule floor ms'],
  ['restoreUpstreamStylePartialMs', 'upstream-style ms'],
  ['restoreAddMs', 'add svc ms'],
  ['restoreDeleteMs', 'delete svc ms'],
  ['trackerApplyMs', 'tracker 1k ms'],
  ['latencyP50Ms', 'latency p50 ms'],
  ['latencyP99Ms', 'latency p99 ms'],
  ['rssPeakMB', 'peak RSS MB'],
  ['heapUsedMB', 'heap MB'],
];

export function markdownTable(lines: readonly BenchLine[]): string {
  const head = `| ${TABLE_COLUMNS.map(([, h]) => h).join(' | ')} |`;
  const sep = `|${TABLE_COLUMNS.map(() => '---:').join('|')}|`;
  const rows = lines.map((l) => {
    const cells = TABLE_COLUMNS.map(([k]) => {
      const v = l[k];
      return v === undefined || v === null ? '–' : String(v);
    });
    return `| ${cells.join(' | ')} |`;
  });
  return [head, sep, ...rows].join('\n');
}

export function markdownTargets(checks: readonly TargetCheck[]): string {
  const rows = checks.map((c) => {
    const mark = c.met === null ? 'n/a' : c.met ? 'met' : 'MISSED';
    const where = c.backend === '-' ? 'per run' : `${c.services}x${c.endpointsPerService} ${c.backend}`;
    return `| ${c.target} | ${where} | ${mark} | ${c.detail} |`;
  });
  return ['| target | where | result | numbers |', '|---|---|---|---|', ...rows].join('\n');
}
