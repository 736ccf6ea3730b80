/**
 * Errors of the API-client layer. Callers branch on `code`, never on message text.
 */

export type KubeConfigErrorCode = 'KUBECONFIG_NOT_FOUND' | 'KUBECONFIG_INVALID' | 'NO_KUBECONFIG';

/** The client configuration could not be built; the daemon cannot start without one. */
export class KubeConfigError extends Error {
  readonly code: KubeConfigErrorCode;
  constructor(code: KubeConfigErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KubeConfigError';
    this.code = code;
  }
}

/**
 * The API server answered with a non-success status (or a watch ERROR event carried one).
 * `statusCode` is the HTTP code, or the `code` of the Status object of a watch ERROR event.
 */
export class ApiStatusError extends Error {
  readonly code = 'API_STATUS' as const;
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'ApiStatusError';
    this.statusCode = statusCode;
  }
}

/** The informer was stopped (or its start signal aborted) before it finished starting. */
export class InformerStoppedError extends Error {
  readonly code = 'INFORMER_STOPPED' as const;
  constructor(kind: string) {
    super(`${kind} informer stopped before it synced`);
    this.name = 'InformerStoppedError';
  }
}

/** 410 Gone: the resourceVersion we hold is too old; the only cure is a fresh list. */
export function isGone(err: unknown): boolean {
  return err instanceof ApiStatusError ? err.statusCode === 410 : statusCodeOf(err) === 410;
}

/** The HTTP status carried by an error from client-node (`statusCode`) or from us. */
export function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const v = (err as { statusCode?: unknown }).statusCode;
  return typeof v === 'number' ? v : undefined;
}
