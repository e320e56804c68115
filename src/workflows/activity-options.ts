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
 * The steps of a job whose workspace lives on one worker host (process, docker) go to that host's own
 * task queue. A retry after a worker crash waits there for the worker to come back (same host, same
 * work dir: it re-attaches to the running step, so the algorithm never runs twice); past this wait the
 * job fails, saying its worker host is gone.
 */
export const HOST_WAIT = '30m';

export const onHost = (options: ActivityOptions, hostQueue: string | undefined): ActivityOptions =>
  hostQueue ? { ...options, taskQueue: hostQueue, scheduleToStartTimeout: HOST_WAIT } : options;

/**
 * A publisher plugin: its own timeout and retries as the settings and the plugin decided (the plan),
 * on its own task queue when it has one, else on the job's worker host (it may read the workspace). A refusal is never retried.
 */
export const pluginCall = (p: PluginStep, hostQueue?: string): ActivityOptions => ({
  ...(p.taskQueue ? { taskQueue: p.taskQueue } : hostQueue ? { taskQueue: hostQueue } : {}),
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
