import { PassThrough, type Readable } from 'node:stream';
import type { ComputeBackend, PublishedFile, StepOutcome } from '../../src/compute/backend';
import type { ContainerSpec, JobInput, JobView } from '../../src/domain/job';
import { finalStatuses, type JobStatusCode, statusText } from '../../src/domain/status';
import type { ResultStore } from '../../src/storage/store';
import type { JobsService } from '../../src/temporal/jobs-service';

/** In-memory JobsService for unit tests of the API module: records what the API asked for. */
export class FakeJobsService implements JobsService {
  readonly jobs = new Map<string, JobView>();
  readonly started: JobInput[] = [];
  readonly stopped: string[] = [];

  constructor(private readonly results: ResultStore) {}

  start(input: JobInput): Promise<JobView> {
    this.started.push(input);
    const existing = this.jobs.get(input.jobId);
    if (existing) return Promise.resolve(existing);
    const job: JobView = {
      agreementId: input.datasets[0]?.transferTxId ?? '',
      jobId: input.jobId,
      owner: input.owner,
      status: 1,
      statusText: statusText[1],
      dateCreated: (input.createdAt / 1000).toFixed(3),
      dateFinished: null,
      stopreq: 0,
      removed: 0,
      algoDID: input.algorithm.kind === 'published' ? input.algorithm.did : 'raw',
      inputDID: input.datasets.map((d) => d.did),
      results: '',
      environment: input.environmentId,
      expireTimestamp: null,
      terminationDetails: null,
      ...(input.api ? { api: input.api } : {}),
    };
    this.jobs.set(job.jobId, job);
    return Promise.resolve(job);
  }

  /** the jobs `get` was asked for, in order (the per-consumer cap looks up what visibility does not list) */
  readonly gets: string[] = [];
  /** Temporal's visibility lagging: it lists none of the jobs (a new workflow is listed a moment late) */
  visibilityLags = false;

  get(jobId: string): Promise<JobView | null> {
    this.gets.push(jobId);
    return Promise.resolve(this.jobs.get(jobId) ?? null);
  }

  /** What the visibility query of the per-consumer cap lists: the consumer's running or queued jobs there. */
  activeJobIds(owner: string, environmentId: string, limit: number): Promise<string[]> {
    if (this.visibilityLags) return Promise.resolve([]);
    const active = [...this.jobs.values()].filter((j) => j.owner === owner && j.environment === environmentId && !finalStatuses.includes(j.status));
    return Promise.resolve(active.map((j) => j.jobId).slice(0, limit));
  }

  listByOwner(owner: string): Promise<JobView[]> {
    return Promise.resolve([...this.jobs.values()].filter((j) => j.owner === owner).reverse());
  }

  stop(jobId: string): Promise<JobView> {
    const job = this.require(jobId);
    this.stopped.push(jobId);
    if (!finalStatuses.includes(job.status)) Object.assign(job, { stopreq: 1, status: 70, statusText: statusText[70] });
    return Promise.resolve(job);
  }

  async remove(jobId: string): Promise<void> {
    await this.results.remove(jobId);
    this.require(jobId).removed = 1;
  }

  currentJobs(environmentId: string): Promise<number> {
    return Promise.resolve([...this.jobs.values()].filter((j) => j.environment === environmentId && j.status === 40).length);
  }

  queuedJobs(environmentId: string): Promise<number> {
    return Promise.resolve([...this.jobs.values()].filter((j) => j.environment === environmentId && j.status === 1).length);
  }

  /** Moves a job along as the workflow would. */
  set(jobId: string, patch: Partial<JobView> & { status?: JobStatusCode }): JobView {
    const job = this.require(jobId);
    Object.assign(job, patch, patch.status ? { statusText: statusText[patch.status] } : {});
    return job;
  }

  private require(jobId: string): JobView {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`fake: no job ${jobId}`);
    return job;
  }
}

/** A backend whose only live parts are the container check and the algorithm log a test pushes to. */
export class FakeBackend implements ComputeBackend {
  readonly kind = 'fake';
  readonly logs = new Map<string, PassThrough>();
  readonly logRequests: { jobId: string; follow: boolean; signal?: AbortSignal }[] = [];

  checkContainer(container: ContainerSpec): string | null {
    return ['node', 'python'].includes(container.image) ? null : `unknown image ${container.image}:${container.tag}`;
  }

  /** A log stream for the job's algorithm step; write to it, end it when the step ends. */
  startLog(jobId: string): PassThrough {
    const stream = new PassThrough();
    this.logs.set(jobId, stream);
    return stream;
  }

  openLog(jobId: string, _step: string, opts: { follow: boolean; signal?: AbortSignal }): Readable | null {
    this.logRequests.push({ jobId, ...opts });
    return this.logs.get(jobId) ?? null;
  }

  runStep(): Promise<StepOutcome> {
    return Promise.reject(new Error('fake backend runs nothing'));
  }
  stopJob(): Promise<void> {
    return Promise.resolve();
  }
  listPublished(): Promise<PublishedFile[]> {
    return Promise.resolve([]);
  }
  cleanup(): Promise<void> {
    return Promise.resolve();
  }
}
