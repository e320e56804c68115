import { z } from 'zod';
import type { StepName, StepOutcome } from '../compute/backend';
import type { TerminationDetails } from '../domain/job';
import { JobStatus } from '../domain/status';
import type { StepResult } from './types';

const stepLabel: Record<StepName, string> = { configure: 'configuration step', algorithm: 'algorithm', publish: 'publishing step' };

/** A human sentence for how a step ended (no paths, no file locations: it is shown to the consumer). */
export function describeOutcome(step: StepName, o: StepOutcome): string {
  const what = stepLabel[step];
  if (o.oomKilled || o.reason === 'oom') return `${what} ran out of memory and was killed`;
  if (o.reason === 'deadline') return `${what} exceeded maxJobDuration`;
  if (o.reason === 'stopped') return `${what} was stopped`;
  if (o.reason === 'output-limit') return `${what} wrote more output than the environment allows`;
  if (o.reason.startsWith('signal:')) return `${what} was killed by ${o.reason.slice('signal:'.length)}`;
  if (o.reason.startsWith('start-failed')) return `${what} could not start: ${o.reason.replace(/^start-failed:?\s*/, '')}`;
  if (o.exitCode !== 0) return `${what} exited with code ${String(o.exitCode)}`;
  return o.reason ? `${what}: ${o.reason}` : `${what} finished`;
}

const succeeded = (o: StepOutcome): boolean => o.exitCode === 0 && !o.oomKilled && o.reason === '';

const details = (step: StepName, o: StepOutcome, reason = describeOutcome(step, o)): TerminationDetails => ({ exitCode: o.exitCode, oomKilled: o.oomKilled || o.reason === 'oom', reason });

export function algorithmResult(o: StepOutcome): StepResult {
  if (succeeded(o)) return { ok: true, terminationDetails: details('algorithm', o) };
  if (o.reason === 'output-limit') return { ok: false, failStatus: JobStatus.DiskQuotaExceeded, terminationDetails: details('algorithm', o) };
  return { ok: false, failStatus: JobStatus.AlgorithmFailed, terminationDetails: details('algorithm', o), ...(o.reason === 'deadline' ? { deadline: true } : {}) };
}

/**
 * The configuration step's report names what it could not fetch. Read leniently: any of these
 * shapes says which input failed; a message is passed on only when the step wrote one (it must not
 * contain file locations — the step program reports the input by DID/index, never by URL).
 */
const configureReportSchema = z.looseObject({
  resource: z.string().optional(),
  kind: z.string().optional(),
  message: z.string().optional(),
  error: z.string().optional(),
  failed: z
    .looseObject({ resource: z.string().optional(), kind: z.string().optional(), message: z.string().optional(), error: z.string().optional() })
    .optional(),
});

export function configureResult(o: StepOutcome): StepResult {
  if (succeeded(o)) return { ok: true, terminationDetails: details('configure', o) };
  const parsed = configureReportSchema.safeParse(o.report);
  const r = parsed.success ? parsed.data : {};
  const resource = r.failed?.resource ?? r.failed?.kind ?? r.resource ?? r.kind ?? '';
  const message = r.failed?.message ?? r.failed?.error ?? r.message ?? r.error;
  const algorithm = resource.startsWith('algorithm');
  const subject = algorithm ? 'the algorithm' : resource ? `input ${resource}` : 'the inputs';
  const reason = message ? `could not fetch ${subject}: ${message}` : `could not fetch ${subject} (${describeOutcome('configure', o)})`;
  return {
    ok: false,
    failStatus: algorithm ? JobStatus.AlgorithmProvisioningFailed : JobStatus.DataProvisioningFailed,
    terminationDetails: details('configure', o, reason),
  };
}

export function publishFailure(o: StepOutcome): TerminationDetails {
  return details('publish', o, `could not publish results: ${describeOutcome('publish', o)}`);
}
