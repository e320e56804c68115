import { ValidationError } from '../domain/errors';
import type { ResultType } from '../domain/job';

/** The three isolated steps of a job (the seed's configuration pod, algorithm pod, publishing pod), in the order they run. */
export const STEPS = ['configure', 'algorithm', 'publish'] as const;
export type StepName = (typeof STEPS)[number];

/** The step logs as results, in the order consumers see them (every backend lists them so). */
export const STEP_LOGS: readonly { step: StepName; filename: string; type: ResultType }[] = [
  { step: 'algorithm', filename: 'algorithm.log', type: 'algorithmLog' },
  { step: 'configure', filename: 'configure.log', type: 'configrationLog' },
  { step: 'publish', filename: 'publish.log', type: 'publishLog' },
];

/** The most bytes of a step's output kept in its log. */
export const MAX_STEP_LOG_BYTES = 64 * 1024 * 1024;

/** publish-step's exit code when it stopped at the environment's output limit (src/entrypoints/publish-step.ts says the same) */
export const PUBLISH_OVER_LIMIT_EXIT = 3;

const JOB_ID = /^[0-9a-f]{32}$/;

/** Job ids become paths, cgroup and object names: only the 32-hex form reaches a backend. */
export function assertJobId(jobId: string): void {
  if (!JOB_ID.test(jobId))
    throw new ValidationError({ jobId: ['must be 32 lower-case hex characters'] }, `invalid job id ${JSON.stringify(jobId.slice(0, 40))}`);
}

/** What a step wait rejects with once its activity was cancelled: it stops waiting, the step runs on until stopJob. */
export function stepWaitAborted(signal: AbortSignal): Error {
  const err = new Error('stopped waiting for the step: the activity was cancelled', { cause: signal.reason });
  err.name = 'AbortError';
  return err;
}
