import { z } from 'zod';
import { PUBLISH_STEP_MAX_SECONDS, type StepName, type StepOutcome } from '../compute/backend';
import type { TerminationDetails } from '../domain/job';
import { JobStatus } from '../domain/status';
import type { StepResult } from './types';

const stepLabel: Record<StepName, string> = { configure: 'configuration step', algorithm: 'algorithm', publish: 'publishing step' };

/** A human sentence for how a step ended (no paths, no file locations: it is shown to the consumer). */
export function describeOutcome(step: StepName, o: StepOutcome): string {
  const what = stepLabel[step];
  if (o.oomKilled || o.reason === 'oom') return `${what} ran out of memory and was killed`;
  if (o.reason === 'deadline') return step === 'publish' ? `${what} took longer than ${PUBLISH_STEP_MAX_SECONDS} s` : `${what} exceeded maxJobDuration`;
  if (o.reason === 'stopped') return `${what} was stopped`;
  if (o.reason === 'output-limit') return `${what} wrote more output than the environment allows`;
  if (o.reason.startsWith('signal:')) return `${what} was killed by ${o.reason.slice('signal:'.length)}`;
  if (o.reason.startsWith('start-failed')) return `${what} could not start: ${o.reason.replace(/^start-failed:?\s*/, '')}`;
  if (o.reason.startsWith('image-pull:')) return `${what} could not start: ${o.reason.slice('image-pull:'.length).trim()}`;
  if (o.exitCode !== 0) return `${what} exited with code ${String(o.exitCode)}`;
  return o.reason ? `${what}: ${o.reason}` : `${what} finished`;
}

const succeeded = (o: StepOutcome): boolean => o.exitCode === 0 && !o.oomKilled && o.reason === '';

const details = (step: StepName, o: StepOutcome, reason = describeOutcome(step, o)): TerminationDetails => ({
  exitCode: o.exitCode,
  oomKilled: o.oomKilled || o.reason === 'oom',
  reason,
});

export function algorithmResult(o: StepOutcome): StepResult {
  if (succeeded(o)) return { ok: true, terminationDetails: details('algorithm', o) };
  if (o.reason === 'output-limit') return { ok: false, failStatus: JobStatus.DiskQuotaExceeded, terminationDetails: details('algorithm', o) };
  // the algorithm's image never arrived: its provisioning failed, it did not run
  if (o.reason.startsWith('image-pull:')) return { ok: false, failStatus: JobStatus.AlgorithmProvisioningFailed, terminationDetails: details('algorithm', o) };
  return {
    ok: false,
    failStatus: JobStatus.AlgorithmFailed,
    terminationDetails: details('algorithm', o),
    ...(o.reason === 'deadline' ? { deadline: true } : {}),
  };
}

/**
 * The configuration step's report (src/entrypoints/configure-step.ts): which input failed and why.
 * Its reason never holds a file location: the step program reports inputs by position, never by URL.
 */
const configureReportSchema = z.looseObject({
  failed: z.enum(['dataset', 'algorithm']).optional(),
  index: z.number().int().nonnegative().optional(),
  reason: z.string().optional(),
});

/** configure-step's exit code when the algorithm could not be fetched */
const ALGORITHM_FETCH_FAILED = 11;

export function configureResult(o: StepOutcome): StepResult {
  if (succeeded(o)) return { ok: true, terminationDetails: details('configure', o) };
  const parsed = configureReportSchema.safeParse(o.report);
  const r = parsed.success ? parsed.data : {};
  const algorithm = r.failed === 'algorithm' || (r.failed === undefined && o.exitCode === ALGORITHM_FETCH_FAILED);
  const subject = algorithm ? 'the algorithm' : r.failed === 'dataset' ? (r.index ? `dataset ${r.index}` : 'the dataset') : 'the inputs';
  const reason = r.reason ? `could not fetch ${subject}: ${r.reason}` : `could not fetch ${subject} (${describeOutcome('configure', o)})`;
  return {
    ok: false,
    failStatus: algorithm ? JobStatus.AlgorithmProvisioningFailed : JobStatus.DataProvisioningFailed,
    terminationDetails: details('configure', o, reason),
  };
}

export function publishFailure(o: StepOutcome): TerminationDetails {
  return details('publish', o, `could not publish results: ${describeOutcome('publish', o)}`);
}
