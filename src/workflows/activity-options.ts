import type { ActivityOptions } from '@temporalio/workflow';
import { PLUGIN_REFUSED, type PluginStep } from '../plugins/types';

/**
 * Activity option profiles. Permanent errors (bad input, refused access, unknown asset) are thrown
 * non-retryable by the activities' failure mapping; the types listed here are a second guard for
 * failures raised outside it.
 */
const nonRetryableErrorTypes = ['validation_error', 'ZodError'];

/** Short calls to our own services (authorize, stop, cleanup). */
export const quick: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 6, nonRetryableErrorTypes },
};

/** Killing a job's steps must happen now: a short timeout, quick retries. */
export const urgent: ActivityOptions = {
  startToCloseTimeout: '15s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 10, nonRetryableErrorTypes },
};

/** Asking for a capacity slot: the job waits in status 1 anyway, so it keeps trying while Temporal is reachable. */
export const waiting: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes },
};

/**
 * Configuration and publishing: they move data, so a generous start-to-close, but a 10 s heartbeat
 * timeout so a crashed worker is noticed fast; a retry re-attaches to the running step.
 */
export const step: ActivityOptions = {
  startToCloseTimeout: '1h',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes },
};

/**
 * The algorithm: one attempt may last the environment's maxJobDuration (plus a margin for a retry that
 * re-attaches late). Retries are safe because the backend re-attaches instead of starting it again.
 */
export const longStep = (maxJobDurationSeconds: number): ActivityOptions => ({
  ...step,
  startToCloseTimeout: `${maxJobDurationSeconds + 300}s`,
});

/**
 * Order verification on chain: a refused order fails at once (non-retryable), an unreachable chain is
 * retried with backoff for as long as it takes, the job waiting in status 1 meanwhile.
 */
export const chainCall: ActivityOptions = {
  startToCloseTimeout: '2m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes },
};

/**
 * A publisher plugin: its own timeout and retries as the settings and the plugin decided (the plan),
 * on its own task queue when it has one. A refusal is never retried.
 */
export const pluginCall = (p: PluginStep): ActivityOptions => ({
  ...(p.taskQueue ? { taskQueue: p.taskQueue } : {}),
  startToCloseTimeout: `${p.policy.timeoutSeconds}s`,
  ...(p.policy.scheduleToCloseSeconds ? { scheduleToCloseTimeout: `${p.policy.scheduleToCloseSeconds}s` } : {}),
  retry: {
    initialInterval: `${p.policy.retryIntervalMs}ms`,
    backoffCoefficient: 2,
    maximumInterval: `${p.policy.maxRetryIntervalSeconds}s`,
    ...(p.policy.maxAttempts > 0 ? { maximumAttempts: p.policy.maxAttempts } : {}),
    nonRetryableErrorTypes: [...nonRetryableErrorTypes, PLUGIN_REFUSED],
  },
});
