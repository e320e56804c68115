import { ActivityFailure, ApplicationFailure, isCancellation } from '@temporalio/workflow';
import type { FailureDetails } from '../activities';
import type { TerminationDetails } from '../domain/job';
import { JobStatus, type JobStatusCode, type StopReqCode } from '../domain/status';

/** How a job ends when it does not finish: its final status and what the consumer reads. */
export interface Failure {
  status: JobStatusCode;
  details: TerminationDetails;
}

/** Thrown inside the job's run to end it with a failure (the workflow catches it; it never leaves the workflow). */
export class JobFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.details.reason);
    this.name = 'JobFailed';
  }
}

export const failed = (status: JobStatusCode, reason: string): Failure => ({ status, details: { exitCode: null, oomKilled: false, reason } });

/** What the consumer reads after a stop without a failure. */
export const stopped = (why: StopReqCode): TerminationDetails => ({
  exitCode: null,
  oomKilled: false,
  reason: { 0: '', 1: 'stopped by owner', 2: 'exceeded maxJobDuration' }[why],
});

/** Message and Ocean resource of an activity failure (our activities put them in the failure's details). */
export function describeFailure(err: unknown): { message: string; resource?: string } {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
    const details = err.cause.details?.[0] as FailureDetails | undefined;
    return { message: err.cause.message, ...(details?.resource ? { resource: details.resource } : {}) };
  }
  if (err instanceof ActivityFailure && err.cause) return { message: err.cause.message };
  return { message: err instanceof Error ? err.message : String(err) };
}

/** Authorization, orders or configuration could not provide the inputs: 32 when the algorithm is to blame, else 31. */
export function provisioningFailure(err: unknown): Failure {
  const { message, resource } = describeFailure(err);
  return failed(resource?.startsWith('algorithm') ? JobStatus.AlgorithmProvisioningFailed : JobStatus.DataProvisioningFailed, message);
}

/** For an activity call's `.catch`: a failure ends the job as `toFailure` says; a cancellation (a stop) passes through. */
export const endWith =
  (toFailure: (err: unknown) => Failure) =>
  (err: unknown): never => {
    if (isCancellation(err)) throw err;
    throw new JobFailed(toFailure(err));
  };
