/**
 * Logging: one pino root logger per process, a child per component. `-v` levels follow upstream's
 * klog habit: 0 info, 1-3 debug, 4 and above trace.
 */
import { type Logger, pino } from 'pino';

export type { Logger };
export type LogFormat = 'json' | 'text';

export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  if (v >= 4) return 'trace';
  if (v >= 1) return 'debug';
  return 'info';
}

export interface LoggerOptions {
  readonly verbosity?: number;
  readonly format?: LogFormat;
  /** Where lines go; defaults to stderr (stdout is kept for command output such as `render`). */
  readonly destination?: NodeJS.WritableStream;
}

/** Formats one pino JSON line for a terminal: `time LEVEL component: msg key=value ...`. */
export function formatTextLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { time, level, msg, component, pid: _pid, hostname: _host, ...rest } = rec;
  const names: Record<number, string> = {
    10: 'TRACE',
    20: 'DEBUG',
    30: 'INFO',
    40: 'WARN',
    50: 'ERROR',
    60: 'FATAL',
  };
  const when = typeof time === 'number' ? new Date(time).toISOString() : '';
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const who = typeof component === 'string' ? `${component}: ` : '';
  return `${when} ${names[level as number] ?? String(level)} ${who}${String(msg ?? '')}${extra ? ` ${extra}` : ''}`;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? process.stderr;
  const level = levelForVerbosity(opts.verbosity ?? 0);
  // Secrets never belong in logs; these paths cover kubeconfig material if it is ever logged.
  const redact = [
    'token',
    '*.token',
    'password',
    '*.password',
    'keyData',
    '*.keyData',
    'authorization',
    '*.authorization',
  ];
  if (opts.format === 'text') {
    const stream = {
      write(chunk: string) {
        for (const l of chunk.split('\n')) if (l) dest.write(`${formatTextLine(l)}\n`);
      },
    };
    return pino({ level, redact, base: null }, stream);
  }
  return pino({ level, redact, base: null }, dest as unknown as pino.DestinationStream);
}

/** A logger that drops everything, for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
