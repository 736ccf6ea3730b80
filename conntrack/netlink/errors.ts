/** Errors of the conntrack client; callers branch on `code`. */

export type ConntrackErrorCode =
  /** The kernel answered a dump with an error (errno set). */
  | 'dump-failed'
  /** Messages were lost (ENOBUFS) on every attempt. */
  | 'dump-overrun'
  /** No answer within the timeout. */
  | 'timeout'
  /** The socket could not be opened or written (errno set when the system gave one). */
  | 'socket-failed'
  /** The client was closed. */
  | 'closed'
  /** A message from the kernel could not be parsed. */
  | 'parse-error';

export class ConntrackError extends Error {
  override readonly name = 'ConntrackError';
  readonly code: ConntrackErrorCode;
  /** Positive errno, when the kernel or the system gave one. */
  readonly errno: number | undefined;

  constructor(code: ConntrackErrorCode, message: string, errno?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.errno = errno;
  }
}
