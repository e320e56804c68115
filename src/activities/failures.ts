import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { C2DError, type ErrorKind, ValidationError } from '../domain/errors';

/** Error kinds that retrying cannot fix: the job ends with the matching status. */
const permanentKinds: readonly ErrorKind[] = ['validation', 'forbidden', 'notFound', 'unauthorized', 'conflict'];

/** What the workflow reads from a failure's details to pick the job's status. */
export interface FailureDetails {
  kind: ErrorKind | 'unknown';
  code: string;
  /** Ocean's resource key (`dataset`, `datasets[1]`, `algorithm`) when the error names one */
  resource?: string;
}

/** A ValidationError's default message says nothing; its fields say what was wrong. */
function messageOf(err: C2DError): string {
  if (!(err instanceof ValidationError)) return err.message;
  const fields = Object.entries(err.fields).map(([field, problems]) => `${field}: ${problems.join(', ')}`);
  return fields.length > 0 && err.message === 'Validation error' ? fields.join('; ') : err.message;
}

/**
 * The one place where our errors become Temporal failures. Permanent kinds are non-retryable with
 * `type` = the error's stable code. The cause chain is cut at our error: a lower-level error (a fetch,
 * a decrypt) may carry a file location in its message, and failures are stored in history.
 */
export function toActivityFailure(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof C2DError) {
    // a ValidationError names the offending input by its field (e.g. `algorithm` for an unknown image)
    const resource = err.resource ?? (err instanceof ValidationError ? Object.keys(err.fields)[0] : undefined);
    const details: FailureDetails = { kind: err.kind, code: err.code, ...(resource ? { resource } : {}) };
    const cause = new Error(err.message);
    cause.name = err.name;
    return ApplicationFailure.create({
      type: err.code,
      message: messageOf(err),
      nonRetryable: permanentKinds.includes(err.kind),
      details: [details],
      cause,
    });
  }
  const name = err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  const details: FailureDetails = { kind: 'unknown', code: name };
  return ApplicationFailure.create({ type: name, message, nonRetryable: false, details: [details] });
}

/** Runs an activity body and converts whatever it throws. */
export async function mapFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CancelledFailure) throw err;
    throw toActivityFailure(err);
  }
}
