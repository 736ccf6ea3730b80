/**
 * API errors as the Kubernetes API server reports them: an HTTP code plus a `Status` object
 * (kind Status, status Failure, a machine-readable reason, details). Clients branch on the
 * reason and code (client-go's apierrors.IsNotFound, IsConflict, IsGone...), never on the
 * message, so every error the development server raises goes through one of the helpers below.
 */

/** metav1.StatusReason values we produce. */
export type StatusReason =
  | 'BadRequest'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Gone'
  | 'Expired'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'InternalError';

/** One field error, as upstream's field.Error renders into details.causes. */
export interface StatusCause {
  readonly reason: string;
  readonly message: string;
  readonly field: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
}

/** The wire form of metav1.Status for a failure. */
export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: StatusReason;
  details?: StatusDetails;
  code: number;
}

/** Identifies the object an error is about, for the message and details. */
export interface ErrorSubject {
  readonly group: string;
  /** Plural resource name, as upstream's messages use it (`services "x" not found`). */
  readonly resource: string;
  readonly kind: string;
  readonly name: string;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: StatusReason;
  readonly httpStatus: number;
  readonly details: StatusDetails | undefined;

  constructor(httpStatus: number, reason: StatusReason, message: string, details?: StatusDetails) {
    super(message);
    this.httpStatus = httpStatus;
    this.code = reason;
    this.details = details;
  }

  toStatus(): StatusObject {
    const s: StatusObject = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.code,
      code: this.httpStatus,
    };
    if (this.details) s.details = this.details;
    return s;
  }
}

const qualified = (s: ErrorSubject) => (s.group ? `${s.resource}.${s.group}` : s.resource);
const subjectDetails = (s: ErrorSubject): StatusDetails => ({
  name: s.name,
  group: s.group,
  kind: s.resource,
});

export function notFound(s: ErrorSubject): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(s)} "${s.name}" not found`, subjectDetails(s));
}

export function alreadyExists(s: ErrorSubject): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualified(s)} "${s.name}" already exists`, subjectDetails(s));
}

export function conflict(s: ErrorSubject, why: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(s)} "${s.name}": ${why}`,
    subjectDetails(s),
  );
}

/** 422 with one cause per field error; the message lists them as upstream's NewInvalid does. */
export function invalid(s: ErrorSubject, causes: StatusCause[]): ApiError {
  const what = s.group ? `${s.kind}.${s.group}` : s.kind;
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const list = parts.length === 1 ? parts[0]! : `[${parts.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${what} "${s.name}" is invalid: ${list}`, {
    name: s.name,
    group: s.group,
    kind: s.kind,
    causes,
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function forbidden(s: ErrorSubject, why: string): ApiError {
  return new ApiError(
    403,
    'Forbidden',
    `${qualified(s)} "${s.name}" is forbidden: ${why}`,
    subjectDetails(s),
  );
}

/** A watch from a resourceVersion older than the retained history (client-go: IsResourceExpired). */
export function expired(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

export function methodNotAllowed(method: string, path: string): ApiError {
  return new ApiError(
    405,
    'MethodNotAllowed',
    `the server does not allow this method on the requested resource`,
    {
      name: `${method} ${path}`,
    },
  );
}

export function unsupportedMediaType(contentType: string): ApiError {
  return new ApiError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format: ${contentType}`,
  );
}

export function pathNotFound(path: string): ApiError {
  return new ApiError(404, 'NotFound', `the server could not find the requested resource (${path})`);
}

export function internalError(message: string): ApiError {
  return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
}

/** Field error constructors, named after upstream's field.Invalid, field.Required, ... */
export const fieldError = {
  invalid: (field: string, value: unknown, detail: string): StatusCause => ({
    reason: 'FieldValueInvalid',
    message: `Invalid value: ${JSON.stringify(value)}: ${detail}`,
    field,
  }),
  required: (field: string, detail = ''): StatusCause => ({
    reason: 'FieldValueRequired',
    message: detail ? `Required value: ${detail}` : 'Required value',
    field,
  }),
  notSupported: (field: string, value: unknown, allowed: readonly string[]): StatusCause => ({
    reason: 'FieldValueNotSupported',
    message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((a) => `"${a}"`).join(', ')}`,
    field,
  }),
  duplicate: (field: string, value: unknown): StatusCause => ({
    reason: 'FieldValueDuplicate',
    message: `Duplicate value: ${JSON.stringify(value)}`,
    field,
  }),
  forbidden: (field: string, detail: string): StatusCause => ({
    reason: 'FieldValueForbidden',
    message: `Forbidden: ${detail}`,
    field,
  }),
};
