/**
 * Just enough of Dockerfile and .dockerignore semantics to check hack/deploy/ without Docker:
 * stages, WORKDIR, COPY (with --from), ENTRYPOINT, and the ignore file's pattern matching.
 */
import { posix } from 'node:path';

export interface CopyStep {
  /** Stage name or index given with --from; undefined for the build context. */
  readonly from: string | undefined;
  readonly sources: readonly string[];
  /** Absolute destination (relative ones resolved against the stage's WORKDIR). */
  readonly dest: string;
}

export interface Stage {
  readonly base: string;
  readonly name: string | undefined;
  /** WORKDIR at the end of the stage ('/' if none). */
  readonly workdir: string;
  readonly copies: readonly CopyStep[];
  /** The shell text of every RUN, in order. */
  readonly runs: readonly string[];
  /** ENTRYPOINT in exec form, if set in this stage. */
  readonly entrypoint: readonly string[] | undefined;
}

/** Instructions (keyword upper-cased, arguments joined across `\` continuations), comments dropped. */
export function dockerInstructions(text: string): { keyword: string; args: string }[] {
  const out: { keyword: string; args: string }[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    const continued = line.endsWith('\\');
    pending += `${continued ? line.slice(0, -1) : line} `;
    if (continued) continue;
    const m = /^(\S+)\s*(.*)$/.exec(pending.trim());
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, ' ').trim() });
    pending = '';
  }
  return out;
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let current: {
    base: string;
    name: string | undefined;
    workdir: string;
    copies: CopyStep[];
    runs: string[];
    entrypoint: string[] | undefined;
  } | null = null;
  for (const { keyword, args } of dockerInstructions(text)) {
    if (keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!m) throw new Error(`cannot parse FROM ${args}`);
      current = { base: m[1]!, name: m[2], workdir: '/', copies: [], runs: [], entrypoint: undefined };
      stages.push(current);
      continue;
    }
    if (current === null) {
      if (keyword === 'ARG') continue;
      throw new Error(`${keyword} before FROM`);
    }
    switch (keyword) {
      case 'WORKDIR':
        current.workdir = posix.resolve(current.workdir, args);
        break;
      case 'COPY': {
        const words = args.split(' ');
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
        }
        if (words.length < 2) throw new Error(`COPY needs a source and a destination: ${args}`);
        const dest = words.pop()!;
        current.copies.push({ from, sources: words, dest: posix.resolve(current.workdir, dest) });
        break;
      }
      case 'RUN':
        current.runs.push(args);
        break;
      case 'ENTRYPOINT':
        current.entrypoint = JSON.parse(args) as string[];
        break;
      default:
        break;
    }
  }
  return stages;
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of directories, including none.
      re += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += pattern[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Whether the ignore file keeps `path` (relative to the context) out of the build context: the
 * last pattern matching the path or one of its parent directories decides, `!` re-includes.
 */
export function dockerIgnoreExcludes(ignoreFile: string, path: string): boolean {
  const patterns = ignoreFile
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const re = globToRegExp(posix.normalize(negate ? p.slice(1) : p).replace(/^\/+/, ''));
    if (prefixes.some((prefix) => re.test(prefix))) excluded = !negate;
  }
  return excluded;
}
