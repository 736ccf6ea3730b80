/**
 * Network namespaces for kernel tests. Every address a test uses lives only inside namespaces
 * made here: links are created inside a namespace (`ip -n NS link add ...`), never in the
 * machine's own one, and nothing in the machine's namespace is ever changed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv (no shell) and collects its output. */
export function run(argv: readonly string[], input?: string, timeoutMs = 20_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    if (child.stdin) {
      // A command that exits without reading its input closes the pipe; that is not our error.
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    }
  });
}

/** Like `run`, but throws with the command and its stderr when it exits non-zero. */
export async function runOk(argv: readonly string[], input?: string): Promise<string> {
  const r = await run(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const created = new Set<string>();

/** A fresh namespace with loopback up; deleted by `deleteNetns` or at process exit. */
export async function createNetns(label: string): Promise<string> {
  const name = `kpt-${label}-${randomBytes(3).toString('hex')}`;
  await runOk(['ip', 'netns', 'add', name]);
  created.add(name);
  await runOk(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/** argv run inside `ns`. */
export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

export function execIn(ns: string, argv: readonly string[], input?: string): Promise<ExecResult> {
  return run(inNetns(ns, argv), input);
}

export function execInOk(ns: string, argv: readonly string[], input?: string): Promise<string> {
  return runOk(inNetns(ns, argv), input);
}

/** Kills whatever still runs inside `ns`, then removes it. Safe to call twice. */
export async function deleteNetns(ns: string): Promise<void> {
  const pids = await run(['ip', 'netns', 'pids', ns]);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run(['ip', 'netns', 'del', ns]);
  created.delete(ns);
}

/** A veth pair between two test namespaces, addresses given as `ip/prefix`, links up. */
export async function vethPair(
  a: { ns: string; ifname: string; addr?: string },
  b: { ns: string; ifname: string; addr?: string },
): Promise<void> {
  await runOk([
    'ip',
    '-n',
    a.ns,
    'link',
    'add',
    a.ifname,
    'type',
    'veth',
    'peer',
    'name',
    b.ifname,
    'netns',
    b.ns,
  ]);
  for (const end of [a, b]) {
    if (end.addr) await runOk(['ip', '-n', end.ns, 'addr', 'add', end.addr, 'dev', end.ifname]);
    await runOk(['ip', '-n', end.ns, 'link', 'set', end.ifname, 'up']);
  }
}

// A crashed test must not leave namespaces behind: remove whatever this process made.
process.on('exit', () => {
  for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
});
