import type { ErrorRequestHandler, RequestHandler } from 'express';
import { C2DError, type ErrorKind, NotFoundError, RangeNotSatisfiableError, ValidationError } from '../domain/errors';
import type { Logger } from '../domain/logger';

/** Thrown for HEAD on signed routes (Ocean answers 405 there). */
export class MethodNotAllowedError extends C2DError {
  constructor() {
    super('validation', 'method_not_allowed', 'Method not allowed');
    this.name = 'MethodNotAllowedError';
  }
}

/** Thrown when the caller proved who it is but may not use the route at all (decrypt: not an authorized decrypter) → 403. */
export class ForbiddenError extends C2DError {
  constructor(code: string, message: string) {
    super('forbidden', code, message);
    this.name = 'ForbiddenError';
  }
}

const statusOfKind: Record<ErrorKind, number> = {
  validation: 400,
  unauthorized: 401,
  // Ocean answers a refused permission with 400 and `{"error":{"<resource>":"<code>"}}`
  forbidden: 400,
  notFound: 404,
  conflict: 409,
  unavailable: 503,
  internal: 503,
};

/** body-parser's errors carry `type` and `status`. */
function bodyParserError(err: unknown): { type: string; status: number } | null {
  if (typeof err !== 'object' || err === null) return null;
  const { type, status } = err as { type?: unknown; status?: unknown };
  return typeof type === 'string' && typeof status === 'number' ? { type, status } : null;
}

interface HttpError {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

function toHttp(err: unknown): HttpError {
  if (err instanceof RangeNotSatisfiableError) {
    return { status: 416, body: { error: err.message }, headers: { 'Content-Range': `bytes */${err.totalSize}` } };
  }
  if (err instanceof MethodNotAllowedError) return { status: 405, body: { error: err.message } };
  if (err instanceof ForbiddenError) return { status: 403, body: { error: err.message } };
  if (err instanceof ValidationError) return { status: 400, body: { message: 'Validation error', errors: err.fields, success: false } };
  if (err instanceof C2DError) {
    const status = statusOfKind[err.kind];
    if (err.kind === 'internal') return { status, body: { error: 'Internal error' } };
    if (err.kind === 'forbidden' && err.resource) return { status, body: { error: { [err.resource]: err.code } } };
    return { status, body: { error: err.message } };
  }
  const parser = bodyParserError(err);
  if (parser?.type === 'entity.parse.failed')
    return { status: 400, body: { message: 'Validation error', errors: { body: ['malformed JSON'] }, success: false } };
  if (parser?.type === 'entity.too.large') return { status: 413, body: { error: 'Request body too large' } };
  if (parser && parser.status >= 400 && parser.status < 500) return { status: parser.status, body: { error: 'Bad request body' } };
  // Anything else is a bug or an outage we did not classify: say nothing about it (no stack, no URL).
  return { status: 503, body: { error: 'Service unavailable' } };
}

/** A 5xx must be debuggable from the log, but a foreign error's message might quote a location: drop URLs. */
const redactUrls = (text: string): string => text.replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, '<url>');

/** The one place where errors become HTTP responses, in Ocean's three error shapes. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (res.headersSent) {
      // The stream broke after the status line went out: all we can do is cut the connection.
      res.destroy();
      return;
    }
    const http = toHttp(err);
    const fields = {
      route: req.path,
      method: req.method,
      status: http.status,
      error: err instanceof Error ? err.name : typeof err,
      code: err instanceof C2DError ? err.code : undefined,
    };
    if (http.status >= 500) {
      // an error we did not classify is a bug: its first frames say where it came from (no URLs)
      const where = err instanceof Error && !(err instanceof C2DError) ? redactUrls(err.stack?.split('\n').slice(1, 4).join(' | ') ?? '') : undefined;
      logger.error(
        { ...fields, message: err instanceof Error ? redactUrls(err.message).slice(0, 300) : undefined, ...(where ? { where } : {}) },
        'request failed',
      );
    }
    if (http.headers) res.set(http.headers);
    res.status(http.status).json(http.body);
  };
}

export const notFoundHandler: RequestHandler = () => {
  throw new NotFoundError('route_not_found', 'Not found');
};
