/**
 * Markdown for the README from saved benchmark lines: the results table and the targets.
 *
 *   node hack/bench/report.ts results.jsonl [more.jsonl ...]
 *
 * Lines of several runs can be combined (e.g. a `--skip-sync` latency run next to a sync run):
 * lines of one size and backend are merged in file order, later non-null values winning.
 */
import { readFileSync } from 'node:fs';
import { type BenchLine, checkTargets, markdownTable, markdownTargets } from './result.ts';

/** Merges lines by (services, endpointsPerService, backend), keeping first-seen order. */
export function mergeLines(lines: readonly BenchLine[]): BenchLine[] {
  const byKey = new Map<string, BenchLine>();
  for (const l of lines) {
    const key = `${l.services}x${l.endpointsPerService}/${l.backend}`;
    const prev = byKey.get(key) ?? {};
    const next: BenchLine = { ...prev };
    for (const [k, v] of Object.entries(l)) if (v !== null && v !== undefined) next[k] = v;
    byKey.set(key, next);
  }
  return [...byKey.values()];
}

export function parseLines(text: string): BenchLine[] {
  return text
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as BenchLine);
}

if (import.meta.main) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: node hack/bench/report.ts results.jsonl [more.jsonl ...]\n');
    process.exitCode = 2;
  } else {
    const lines = mergeLines(files.flatMap((f) => parseLines(readFileSync(f, 'utf8'))));
    process.stdout.write(`${markdownTable(lines)}\n\n${markdownTargets(checkTargets(lines))}\n`);
  }
}
