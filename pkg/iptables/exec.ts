/**
 * Running one iptables binary: argv straight to the kernel's exec (never a shell), optional
 * input on stdin, stdout and stderr collected. The runner takes this as a parameter so that its
 * own tests can replace the binaries.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Writable } from 'node:stream';

export interface ExecResult {
  /** Exit status; null when the process was killed (see `signal`). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ExecOptions {
  /** The input; pieces are written one at a time as the pipe drains, and made only then. */
  readonly stdin?: string | Iterable<string>;
  /** Kill the process after this long (SIGKILL). */
  readonly timeoutMs?: number;
}

/** Runs argv; rejects only when the process cannot be started (e.g. ENOENT). */
export type Exec = (argv: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

export const spawnExec: Exec = (argv, opts = {}) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      reject(new RangeError('empty argv'));
      return;
    }
    // Without input, stdin is /dev/null: nothing to write, so nothing to fail with EPIPE.
    const child = spawn(file, args, {
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    // A child that exits before reading all of stdin makes the write fail with EPIPE; its exit
    // status and stderr tell what went wrong, so the write error itself is not interesting.
    child.stdin?.on('error', () => {});
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    const input = opts.stdin;
    if (child.stdin && input !== undefined) {
      if (typeof input === 'string') child.stdin.end(input);
      else void feed(child.stdin, input);
    }
  });

async function feed(stdin: Writable, pieces: Iterable<string>): Promise<void> {
  try {
    for (const piece of pieces) {
      if (!stdin.write(piece)) await once(stdin, 'drain');
    }
    stdin.end();
  } catch {
    // The child went away (EPIPE) or the stream was destroyed: its exit tells what happened.
    stdin.destroy();
  }
}
