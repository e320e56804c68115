import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { JobView } from '../domain/job';
import type { ResourceAmount } from '../domain/resources';

/** Names shared by the workflows and the client wrapper: the job's public handles and the capacity protocol. */

/** The job as the consumer sees it, from workflow state. */
export const statusQuery = defineQuery<JobView>('status');
/** The owner asks the job to stop (stopreq 1); returns the view. A finished job is returned as it is. */
export const stopUpdate = defineUpdate<JobView>('stop');

/**
 * The capacity workflow of an environment served on a task queue: deployments sharing a namespace (and
 * environment ids) on other task queues have capacity of their own.
 */
export const environmentWorkflowId = (environmentId: string, taskQueue: string): string => `c2d-env-${environmentId}@${taskQueue}`;

export interface AcquireRequest {
  /** the job workflow that waits for the slot (it receives `slotGranted`) */
  workflowId: string;
  /** the environment's maxJobs as the job saw it; the latest request wins */
  maxJobs: number;
  /** how long a granted slot is held at most: a holder that dies without releasing loses it then */
  leaseMs: number;
  /** what the job uses of each resource while it holds its slot (absent: a slot alone, as before resources) */
  resources?: ResourceAmount[];
  /** the environment's resource totals as the job saw them (resource id → total); the latest request wins */
  totals?: Record<string, number>;
  /** a free job (C2D v2 freeComputeStart): at most maxFreeJobs of them hold a slot at once */
  free?: boolean;
  maxFreeJobs?: number;
}

/** A job asks for a slot; sent with signalWithStart so the capacity workflow starts on first use. */
export const acquireSignal = defineSignal<[AcquireRequest]>('acquire');
/** A job gives its slot back, or leaves the queue while still waiting. Idempotent. */
export const releaseSignal = defineSignal<[string]>('release');
/** Sent by the capacity workflow to the job workflow whose turn it is. */
export const slotGrantedSignal = defineSignal('slotGranted');
/** The algorithm image's pull, one line at a time (sent by the prepareAlgorithm activity, throttled): the job's current details. */
export const imagePullProgressSignal = defineSignal<[string]>('imagePullProgress');
/** How many jobs hold a slot now (computeEnvironments' currentJobs). */
export const holdersQuery = defineQuery<number>('holders');
/** What the slot holders use now, per resource id (computeEnvironments' resources[].inUse). */
export const resourcesInUseQuery = defineQuery<Record<string, number>>('resourcesInUse');
/** Job workflow ids waiting for a slot, in grant order. */
export const waitersQuery = defineQuery<string[]>('waiters');
