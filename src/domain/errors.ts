/**
 * One error base class for everything we raise on purpose. `kind` says what went wrong in terms a
 * caller can act on; the API maps kinds to HTTP statuses in one middleware, the activities map them
 * to retryable or non-retryable Temporal failures. `code` is stable (Ocean's codes where they exist).
 */
export type ErrorKind =
  | 'validation' // the request is malformed or names something that does not exist → 400
  | 'unauthorized' // bad signature or nonce → 401
  | 'forbidden' // the caller may not do this (credentials, trust rules) → 400 with Ocean's error shape
  | 'notFound' // unknown job, file, asset → 404
  | 'conflict' // state does not allow it → 409
  | 'unavailable' // a dependency is down; retrying later may work → 503
  | 'internal'; // a bug → 503 without details

export class C2DError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    /** Ocean's `{"error":{"<resource>":"<code>"}}` shape when set (e.g. `dataset`, `algorithm`). */
    readonly resource?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'C2DError';
  }
}

/** Thrown when input fails validation; `fields` become Ocean's `{"errors":{field:[text]}}`. */
export class ValidationError extends C2DError {
  constructor(
    readonly fields: Record<string, string[]>,
    message = 'Validation error',
  ) {
    super('validation', 'validation_error', message);
    this.name = 'ValidationError';
  }
}

/** Thrown when a requested byte range lies outside the file (HTTP 416); carries the size for Content-Range. */
export class RangeNotSatisfiableError extends ValidationError {
  constructor(readonly totalSize: number) {
    super({ range: [`outside the file (${totalSize} bytes)`] }, 'Range not satisfiable');
    this.name = 'RangeNotSatisfiableError';
  }
}

/** Thrown when an asset rule refuses the job; carries Ocean's resource key and error code. */
export class AccessDeniedError extends C2DError {
  constructor(resource: string, code: string, message?: string) {
    super('forbidden', code, message ?? `${resource}: ${code}`, resource);
    this.name = 'AccessDeniedError';
  }
}

/** Thrown when something the caller named does not exist (job, result index, asset). */
export class NotFoundError extends C2DError {
  constructor(code: string, message: string, resource?: string) {
    super('notFound', code, message, resource);
    this.name = 'NotFoundError';
  }
}

/** Thrown when a signature does not verify or a nonce was already used. */
export class AuthError extends C2DError {
  constructor(code: 'invalid_signature' | 'invalid_nonce' | 'invalid_token' | 'missing_signature', message: string) {
    super('unauthorized', code, message);
    this.name = 'AuthError';
  }
}

/** Thrown when a dependency (Temporal, chain, storage) cannot be reached; retrying later may help. */
export class UnavailableError extends C2DError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super('unavailable', code, message, undefined, options);
    this.name = 'UnavailableError';
  }
}
