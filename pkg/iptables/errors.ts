/**
 * Errors of the iptables library. Callers branch on `code`, never on message text: the sync loop
 * counts a `restore-failed` and schedules a full resync, `--cleanup` ignores `not-found`, and so on.
 */

export type IptablesErrorCode =
  | 'exec-failed'
  | 'restore-failed'
  | 'lock-timeout'
  | 'not-found'
  | 'parse-error';

export interface IptablesErrorDetails {
  /** The command line that failed, when a process was run (never through a shell). */
  readonly command?: readonly string[];
  /** Exit status of that process (undefined when it could not start or was killed). */
  readonly exitCode?: number;
  /** Its standard error, untrimmed. */
  readonly stderr?: string;
  readonly cause?: unknown;
}

export class IptablesError extends Error {
  override readonly name: string = 'IptablesError';
  readonly code: IptablesErrorCode;
  readonly command: readonly string[] | undefined;
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(code: IptablesErrorCode, message: string, details: IptablesErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.stderr = details.stderr ?? '';
  }
}

/** A line of iptables(-save/-restore) text that the parser refuses; `line` is 1-based. */
export class IptablesParseError extends IptablesError {
  override readonly name = 'IptablesParseError';
  override readonly code = 'parse-error' as const;
  readonly line: number;
  /** The reason without the line number, e.g. `rule for undeclared chain "KUBE-SVC-X"`. */
  readonly reason: string;

  constructor(line: number, reason: string) {
    super('parse-error', `line ${line}: ${reason}`);
    this.line = line;
    this.reason = reason;
  }
}

/** One line of the payload shown around a rejected line. */
export interface PayloadLine {
  readonly line: number;
  readonly text: string;
}

/** How many payload lines are kept on each side of the rejected one (upstream logs a few too). */
export const RESTORE_CONTEXT_LINES = 3;

/**
 * iptables-restore refused the payload. `line` is the payload line it named (1-based; legacy
 * prints "line 7 failed" or "Error occurred at line: 7", nft "line 7: CHAIN_DEL failed ..."),
 * undefined when stderr named none. The message shows that line; `context` holds it with its
 * neighbours so that a log can show what the kernel saw.
 */
export class RestoreError extends IptablesError {
  override readonly name = 'RestoreError';
  override readonly code = 'restore-failed' as const;
  readonly line: number | undefined;
  /** Text of the rejected line, if `line` is inside the payload. */
  readonly lineText: string | undefined;
  readonly context: readonly PayloadLine[];

  constructor(opts: {
    readonly payload: string;
    readonly stderr: string;
    readonly line?: number | undefined;
    readonly command?: readonly string[];
    readonly exitCode?: number;
  }) {
    const line = opts.line ?? restoreErrorLine(opts.stderr);
    const lines = opts.payload.split('\n');
    const lineText = line !== undefined && line >= 1 && line <= lines.length ? lines[line - 1] : undefined;
    const context = line === undefined ? [] : linesAround(lines, line, RESTORE_CONTEXT_LINES);
    const reason = firstMeaningfulLine(opts.stderr);
    const where = line === undefined ? 'at an unknown line' : `at line ${line}`;
    const shown = lineText === undefined ? '' : `: ${JSON.stringify(lineText)}`;
    const around = context.map(
      (l) => `${l.line === line ? '>' : ' '} ${String(l.line).padStart(5)} ${l.text}`,
    );
    const message = [
      `iptables-restore failed ${where}${shown}${reason ? ` (${reason})` : ''}`,
      ...around,
    ].join('\n');
    super('restore-failed', message, {
      stderr: opts.stderr,
      ...(opts.command ? { command: opts.command } : {}),
      ...(opts.exitCode !== undefined ? { exitCode: opts.exitCode } : {}),
    });
    this.line = line;
    this.lineText = lineText;
    this.context = context;
  }
}

// The spellings iptables 1.4-1.8 use (legacy and nft); the first one found wins.
const LINE_PATTERNS = [
  /Error occurred at line: (\d+)/,
  /\bline (\d+) failed/,
  /\bline (\d+):/,
  /\bat line:? (\d+)/,
];

/** The payload line number named in iptables-restore's stderr, if any. */
export function restoreErrorLine(stderr: string): number | undefined {
  for (const re of LINE_PATTERNS) {
    const m = re.exec(stderr);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function linesAround(lines: readonly string[], line: number, n: number): PayloadLine[] {
  // A payload ends with "\n", so split() leaves an empty last element that is not a line.
  const last = lines.length > 0 && lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
  const out: PayloadLine[] = [];
  for (let i = Math.max(1, line - n); i <= Math.min(last, line + n); i++)
    out.push({ line: i, text: lines[i - 1]! });
  return out;
}

function firstMeaningfulLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    // nft prints this for `-W` on every call; it says nothing about the failure.
    .filter(
      (l) => l !== '' && !l.startsWith('Ignoring deprecated --wait-interval') && !l.startsWith('Try `'),
    );
  return lines.join('; ');
}
