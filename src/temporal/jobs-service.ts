import type { JobInput, JobView } from '../domain/job';

/**
 * What the API needs from the orchestrator. State lives in Temporal (workflow state read by a query,
 * search attributes for listing); there is no job table.
 */
export interface JobsService {
  /** Starts the job's workflow (id c2d-<jobId>). Starting the same jobId twice returns the existing job. */
  start(input: JobInput): Promise<JobView>;
  /** null when no such job exists. `removed` reflects the result store. */
  get(jobId: string): Promise<JobView | null>;
  /** Jobs whose owner is `owner` (lower-case address), newest first. */
  listByOwner(owner: string): Promise<JobView[]>;
  /** Asks a running job to stop (stopreq 1); a finished job is returned as it is. */
  stop(jobId: string): Promise<JobView>;
  /** Stops the job if running and deletes its results; the job then reads `removed: 1`. */
  remove(jobId: string): Promise<void>;
  /** Algorithm steps currently holding a slot of the environment (computeEnvironments' currentJobs). */
  currentJobs(environmentId: string): Promise<number>;
  /** Jobs waiting (status 1) for a slot of the environment: the queue depth operators watch. */
  queuedJobs?(environmentId: string): Promise<number>;
  /** What the jobs holding a slot of the environment use, per resource id (C2D v2 environments' inUse); {} when none runs. */
  resourcesInUse?(environmentId: string): Promise<Record<string, number>>;
  /** Resolves when the orchestrator answers (readiness); throws UnavailableError otherwise. Optional: fakes may omit it. */
  ping?(): Promise<void>;
  /** Ids of the consumer's running or queued jobs in the environment, at most `limit` (the per-consumer cap). Optional: fakes may omit it. */
  activeJobIds?(owner: string, environmentId: string, limit: number): Promise<string[]>;
}
