import type { ContainerSpec, ResultEntry, TerminationDetails } from '../domain/job';
import type { ResourceAmount } from '../domain/resources';
import type { JobStatusCode } from '../domain/status';
import type { PluginStep } from '../plugins/types';

/**
 * What the workflow learns from authorizing a job: ids and limits only, because it lands in history.
 * Decrypted file locations are fetched again by the step that needs them.
 */
export interface JobPlan {
  /** the algorithm's DID, or 'raw' */
  algorithmDid: string;
  /** main dataset first */
  datasetDids: string[];
  container: ContainerSpec;
  allowNetwork: boolean;
  environment: EnvironmentLimits;
  /** publisher plugins of this job (environment settings, dataset filter); absent when none */
  plugins?: PluginStep[];
}

/** The environment settings the workflow acts on (it must not read config itself). */
export interface EnvironmentLimits {
  maxJobs: number;
  /** seconds */
  maxJobDuration: number;
  /** seconds */
  storageExpiry: number;
  /**
   * seconds the algorithm's image may take to be made ready (docker: its pull), a step of its own between
   * configuration and the algorithm that does not count toward maxJobDuration; absent on backends without images
   */
  imagePullSeconds?: number;
  /** what the job uses of each resource while it runs (its request, else each resource's default) */
  resources?: ResourceAmount[];
  /** the environment's resource totals, by resource id */
  resourceTotals?: Record<string, number>;
  /** free jobs of the environment that may run at once (C2D v2 free compute) */
  maxFreeJobs?: number;
}

/** How a step ended, already mapped to Ocean's vocabulary. */
export interface StepResult {
  ok: boolean;
  /** the job's final status when not ok (31, 32, 41, 42) */
  failStatus?: JobStatusCode;
  terminationDetails: TerminationDetails;
  /** the backend ended the step at the environment's maxJobDuration */
  deadline?: boolean;
  /** the algorithm step gave the job's slot back (AlgorithmStepInput.slot) */
  slotReleased?: boolean;
}

/** What was stored for the consumer. A failed publishing step still stores the step logs, so its log tells why. */
export interface PublishResult {
  ok: boolean;
  results: ResultEntry[];
  /** epoch seconds after which the stored files are gone */
  expireTimestamp: number;
  /** when not ok: why publishing failed */
  terminationDetails?: TerminationDetails;
}

/** Where a job's workspace and steps live: a worker host's own task queue, or null for any worker (kubernetes). */
export interface Placement {
  hostQueue: string | null;
}

export interface JobRef {
  jobId: string;
  environmentId: string;
}

/** A job's slot at its environment's capacity workflow, for an activity to give back itself. */
export interface SlotRef {
  /** the environment's capacity workflow */
  slotsWorkflowId: string;
  /** the job workflow holding the slot */
  workflowId: string;
}

export interface AlgorithmStepInput extends JobRef {
  plan: JobPlan;
  /** the job's slot: given back as soon as the algorithm has ended, before the workflow hears of it */
  slot?: SlotRef;
}

export interface PublishStepInput extends JobRef {
  owner: string;
  /** a plugin refused the results: store the logs only */
  withholdOutputs?: boolean;
}

export interface AcquireSlotInput {
  environmentId: string;
  /** the environment's capacity workflow (started on first use) */
  slotsWorkflowId: string;
  /** the job workflow waiting for the slot */
  workflowId: string;
  maxJobs: number;
  leaseMs: number;
  resources?: ResourceAmount[];
  totals?: Record<string, number>;
  free?: boolean;
  maxFreeJobs?: number;
}
