import { status } from '@grpc/grpc-js';
import {
  Client,
  Connection,
  isGrpcServiceError,
  ServiceError,
  type WorkflowExecutionInfo,
  type WorkflowHandle,
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
} from '@temporalio/client';
import type { Config } from '../config';
import { C2DError, NotFoundError, UnavailableError } from '../domain/errors';
import { type JobInput, type JobView, toEpochSecondsString, workflowIdForJob } from '../domain/job';
import { finalStatuses, JobStatus, type JobStatusCode, StopReq, statusText } from '../domain/status';
import type { ResultStore } from '../storage/store';
import type { computeJob } from '../workflows/compute-job';
import { environmentWorkflowId, holdersQuery, resourcesInUseQuery, statusQuery, stopUpdate, waitersQuery } from '../workflows/definitions';
import { agreementIdOf, algorithmDidOf, initialJobState, jobView, type LiveView } from '../workflows/job-view';
import { C2DAlgorithmDid, C2DDatasetDids, C2DEnvironment, C2DOwner, C2DStatus } from '../workflows/search-attributes';
import { dataConverterFor } from './codec';
import type { JobsService } from './jobs-service';

const JOB_WORKFLOW_TYPE = 'computeJob';

/** What describe() and list() both give. */
type ExecutionInfo = Omit<WorkflowExecutionInfo, 'raw'>;

/** Connects to the configured Temporal frontend. Throws UnavailableError when it cannot be reached. */
export async function connectTemporal(
  config: { temporal: Pick<Config['temporal'], 'address' | 'namespace'> } & { codec?: Pick<Config['codec'], 'keys'> },
): Promise<Client> {
  try {
    const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5s' });
    return new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverterFor(config.codec?.keys ?? []) });
  } catch (err) {
    throw new UnavailableError('temporal_unavailable', `Temporal is unreachable at ${config.temporal.address}`, { cause: err });
  }
}

/** The gRPC status code of a Temporal service error, if it is one. */
function grpcCodeOf(err: unknown): number | undefined {
  if (isGrpcServiceError(err)) return err.code;
  if (err instanceof ServiceError && isGrpcServiceError(err.cause)) return err.cause.code;
  return undefined;
}

/** " (DEADLINE_EXCEEDED)": the status name (grpc's enum maps codes back to names), what an operator searches Temporal's docs and logs for. */
const statusName = (code: number | undefined): string => (code === undefined ? '' : ` (${status[code] ?? `gRPC status ${code}`})`);

/** "Temporal is unavailable (DEADLINE_EXCEEDED)": which refusal it was (a status name, never a detail of the request). */
function unavailable(err: unknown): UnavailableError {
  return new UnavailableError('temporal_unavailable', `Temporal is unavailable${statusName(grpcCodeOf(err))}`, { cause: err });
}

/**
 * What Temporal answers when the server itself is down, overloaded or slow: trying again later may work
 * (503, temporal_unavailable). Every other status (INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND,
 * PERMISSION_DENIED, …) says the provider's request or its settings are wrong: waiting will not help.
 */
const TRANSIENT = new Set<number>([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
  status.CANCELLED,
  status.UNKNOWN,
  status.INTERNAL,
]);

/**
 * Refusals an attempt (a start, the per-consumer cap's count) is tried again for: the server or the
 * attempt's own deadline gave up (persistence was slow: a start may have happened, its answer lost), or
 * the client's retries on an overloaded or unreachable frontend ran out.
 */
/** how early before an attempt's deadline the server's own end of it may come (see attempts) */
const DEADLINE_SLACK_MS = 100;
const RETRIED = new Set<number>([status.DEADLINE_EXCEEDED, status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.ABORTED]);

/**
 * Errors of the Temporal service: an outage means "try again later" to the API; a refusal of what the
 * provider asked is an internal error (its cause in the log, "Internal error" to the caller), so a bug
 * or a wrong setting never reads as a passing outage. Our own errors pass through.
 */
function asServiceFailure(err: unknown): unknown {
  if (err instanceof C2DError) return err;
  if (!(err instanceof ServiceError || isGrpcServiceError(err))) return err;
  const code = grpcCodeOf(err);
  if (code === undefined || TRANSIENT.has(code)) return unavailable(err);
  return new C2DError('internal', 'temporal_refused', `Temporal refused the provider's request${statusName(code)}`, undefined, { cause: err });
}

const jobIdOf = (workflowId: string): string => workflowId.replace(/^c2d-/, '');

export interface TemporalJobsDeps {
  client: Client;
  taskQueue: string;
  /** `removed` and, for a workflow that died, the stored results */
  results: Pick<ResultStore, 'get' | 'remove'>;
  /** how long remove() lets a stopped job finish publishing before deleting its results; default 10 s */
  settleMs?: number;
  /** the most one operation may take against Temporal before it counts as unavailable; default 15 s */
  rpcTimeoutMs?: number;
  /** the most one attempt of a start or of the per-consumer cap's count may take: a slower one is tried again within rpcTimeoutMs; default 5 s */
  attemptTimeoutMs?: number;
  /** how long a running job's status query may wait for a worker before its visibility record answers instead; default 5 s */
  queryTimeoutMs?: number;
}

/** JobsService over Temporal: one computeJob workflow per job; state from its query, lists from search attributes. */
export class TemporalJobsService implements JobsService {
  constructor(private readonly deps: TemporalJobsDeps) {}

  /** Bounds an operation in time (the client would otherwise retry an unreachable server for a long while) and maps service errors. */
  private async guarded<T>(fn: (deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + (this.deps.rpcTimeoutMs ?? 15_000);
    try {
      return await this.deps.client.connection.withDeadline(deadline, () => fn(deadline));
    } catch (err) {
      throw asServiceFailure(err);
    }
  }

  /**
   * Starts the job's workflow, again on a transient refusal until the deadline: the workflow id is the job's,
   * so a start whose answer was lost finds its workflow (already started) instead of failing a consumer
   * whose job runs. Past the deadline the consumer gets 503 and the start route releases its orders.
   */
  start(input: JobInput): Promise<JobView> {
    return this.guarded((deadline) => this.attempts(deadline, () => this.startOnce(input)));
  }

  /**
   * Runs `fn` again on a transient refusal until `deadline`, each attempt bounded by attemptTimeoutMs: an
   * attempt stuck on a slow server (its answer late, or lost) is given up and tried again, instead of
   * spending the whole deadline. Only for what is safe to repeat (a start under the job's own workflow id, a read).
   */
  private async attempts<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const attemptDeadline = Math.min(deadline, Date.now() + (this.deps.attemptTimeoutMs ?? 5_000));
      try {
        return await this.deps.client.connection.withDeadline(attemptDeadline, fn);
      } catch (err) {
        const pause = Math.min(100 * 2 ** attempt, 2000);
        const code = grpcCodeOf(err);
        // The server learns the attempt's deadline too (grpc-timeout, counted from its arrival and rounded)
        // and may give up on the call first: it resets the stream, and the answer is CANCELLED ("Call
        // cancelled"), not the client's own DEADLINE_EXCEEDED. We cancel nothing ourselves, so a
        // cancellation at the attempt's deadline (give or take the rounding) is that attempt timing out.
        const timedOut = code === status.CANCELLED && Date.now() >= attemptDeadline - DEADLINE_SLACK_MS;
        if (code === undefined || !(RETRIED.has(code) || timedOut) || Date.now() + pause >= deadline) throw err;
        await delay(pause);
      }
    }
  }

  private async startOnce(input: JobInput): Promise<JobView> {
    try {
      await this.deps.client.workflow.start<typeof computeJob>(JOB_WORKFLOW_TYPE, {
        workflowId: workflowIdForJob(input.jobId),
        taskQueue: this.deps.taskQueue,
        args: [input],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        typedSearchAttributes: [
          { key: C2DOwner, value: input.owner },
          { key: C2DStatus, value: JobStatus.WarmingUp },
          { key: C2DEnvironment, value: input.environmentId },
          { key: C2DDatasetDids, value: input.datasets.map((d) => d.did) },
          { key: C2DAlgorithmDid, value: algorithmDidOf(input) },
        ],
        memo: { agreementId: agreementIdOf(input), createdAt: input.createdAt, ...(input.api ? { api: input.api } : {}) },
        // shown by the Web UI at the top of the workflow (ids only)
        staticSummary: `Compute job on ${input.environmentId}: ${algorithmDidOf(input)} over ${input.datasets.map((d) => d.did).join(', ')}`,
      });
      return jobView(input, initialJobState());
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const existing = await this.get(input.jobId);
      if (!existing) throw err;
      return existing;
    }
  }

  get(jobId: string): Promise<JobView | null> {
    return this.guarded(async () => {
      let info: ExecutionInfo;
      try {
        info = await this.deps.client.workflow.getHandle(workflowIdForJob(jobId)).describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
      if (info.type !== JOB_WORKFLOW_TYPE) return null;
      return this.viewOf(info);
    });
  }

  listByOwner(owner: string): Promise<JobView[]> {
    return this.guarded(async () => {
      const query = `WorkflowType = '${JOB_WORKFLOW_TYPE}' AND C2DOwner = '${owner.replace(/[\\']/g, '')}'`;
      const infos: ExecutionInfo[] = [];
      for await (const info of this.deps.client.workflow.list({ query })) infos.push(info);
      infos.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
      return Promise.all(infos.map((info) => this.viewOf(info)));
    });
  }

  stop(jobId: string): Promise<JobView> {
    return this.guarded(async () => {
      const handle = this.deps.client.workflow.getHandle(workflowIdForJob(jobId));
      const current = await this.get(jobId);
      if (!current) throw new NotFoundError('job_not_found', 'No such job');
      if (finalStatuses.includes(current.status)) return current;
      try {
        const view = await handle.executeUpdate(stopUpdate);
        return { ...view, removed: await this.removedFlag(jobId) };
      } catch (err) {
        // the job finished between our look and the update
        const after = await this.get(jobId);
        if (after && finalStatuses.includes(after.status)) return after;
        throw err;
      }
    });
  }

  remove(jobId: string): Promise<void> {
    return this.guarded(async () => {
      const handle = this.deps.client.workflow.getHandle(workflowIdForJob(jobId));
      let running = false;
      try {
        running = (await handle.describe()).status.name === 'RUNNING';
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      if (running) {
        await this.stop(jobId);
        // let the job store what it publishes after the stop, or our delete would be overwritten by it
        await Promise.race([handle.result().catch(() => undefined), delay(this.deps.settleMs ?? 10_000)]);
      }
      await this.deps.results.remove(jobId);
    });
  }

  currentJobs(environmentId: string): Promise<number> {
    // a job holds its slot from configuration to publishing
    return this.slots(environmentId, (handle) => handle.query(holdersQuery), 'C2DStatus IN (20, 30, 40, 50, 60)');
  }

  queuedJobs(environmentId: string): Promise<number> {
    return this.slots(environmentId, async (handle) => (await handle.query(waitersQuery)).length, 'C2DStatus = 1');
  }

  /** From the environment's capacity workflow; {} when it is not running (no job asked lately). */
  resourcesInUse(environmentId: string): Promise<Record<string, number>> {
    return this.guarded(async () => {
      const handle = await this.capacityWorkflow(environmentId);
      if (!handle) return {};
      return this.deps.client.connection.withDeadline(Date.now() + (this.deps.queryTimeoutMs ?? 5_000), () => handle.query(resourcesInUseQuery));
    });
  }

  /**
   * A count from the environment's capacity workflow; 0 when it is not running (no job asked lately). When
   * its worker does not answer the query in time (busy, or none running), the running jobs' visibility
   * records in the given statuses are counted instead.
   */
  private slots(environmentId: string, read: (handle: WorkflowHandle) => Promise<number>, statuses: string): Promise<number> {
    return this.guarded(async () => {
      const handle = await this.capacityWorkflow(environmentId);
      if (!handle) return 0;
      try {
        return await this.deps.client.connection.withDeadline(Date.now() + (this.deps.queryTimeoutMs ?? 5_000), () => read(handle));
      } catch (err) {
        if (err instanceof C2DError) throw err;
        const query = `WorkflowType = '${JOB_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND C2DEnvironment = '${environmentId.replace(/[\\']/g, '')}' AND ${statuses}`;
        return (await this.deps.client.workflow.count(query)).count;
      }
    });
  }

  /** The environment's capacity workflow while it runs; null when it does not (no job asked lately). */
  private async capacityWorkflow(environmentId: string): Promise<WorkflowHandle | null> {
    const handle = this.deps.client.workflow.getHandle(environmentWorkflowId(environmentId, this.deps.taskQueue));
    try {
      return (await handle.describe()).status.name === 'RUNNING' ? handle : null;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Readiness: describing our namespace needs a reachable frontend and an existing namespace, and is cheap. */
  async ping(): Promise<void> {
    try {
      const { client } = this.deps;
      await client.connection.withDeadline(Date.now() + 3000, () => client.workflowService.describeNamespace({ namespace: client.options.namespace }));
    } catch (err) {
      throw unavailable(err);
    }
  }

  private async removedFlag(jobId: string): Promise<0 | 1> {
    return (await this.deps.results.get(jobId))?.removed ? 1 : 0;
  }

  private async viewOf(info: ExecutionInfo): Promise<JobView> {
    const handle = this.deps.client.workflow.getHandle(info.workflowId, info.runId);
    const jobId = jobIdOf(info.workflowId);
    let view: JobView;
    const live = info.status.name === 'RUNNING' ? liveOf(info) : null;
    // A running job's view, from what describe gave: its status, its input, its memo (no round trip through a worker).
    // Once it has results (settling, or final and cleaning up) its state holds more than the memo: asked by query.
    if (live) return { ...live, removed: await this.removedFlag(jobId) };
    if (info.status.name === 'RUNNING') {
      try {
        view = await this.deps.client.connection.withDeadline(Date.now() + (this.deps.queryTimeoutMs ?? 5_000), () => handle.query(statusQuery));
      } catch (err) {
        if (err instanceof C2DError) throw err;
        // No worker answered in time (all busy, or none running): the job's status as it last recorded it in visibility.
        return this.synthesize(info, jobId);
      }
    } else if (info.status.name === 'COMPLETED') view = (await handle.result()) as JobView;
    else return this.synthesize(info, jobId);
    return { ...view, removed: await this.removedFlag(jobId) };
  }

  /**
   * A job's view from what visibility and the store know, without asking the workflow: for a workflow that
   * failed, was terminated or timed out (answered as a finished job), and for a running one whose worker
   * does not answer the status query in time (its last recorded status).
   */
  private async synthesize(info: ExecutionInfo, jobId: string): Promise<JobView> {
    const stored = await this.deps.results.get(jobId);
    const last = recordedStatus(info);
    const running = info.status.name === 'RUNNING';
    const status: JobStatusCode =
      running || finalStatuses.includes(last) ? last : last >= JobStatus.RunningAlgorithm ? JobStatus.AlgorithmFailed : JobStatus.DataProvisioningFailed;
    return {
      ...visibleView(info, status),
      removed: stored?.removed ? 1 : 0,
      results: stored?.results ?? (running ? '' : []),
      expireTimestamp: stored?.expireTimestamp ?? null,
      terminationDetails: running
        ? null
        : { exitCode: null, oomKilled: false, reason: `the job's workflow ended abnormally (${info.status.name.toLowerCase()})` },
    };
  }

  /**
   * Ids of the consumer's jobs in the environment that are running or queued, from Temporal visibility, at
   * most `limit` of them (enough to compare with a cap): the per-consumer cap. A job whose status is final
   * (or settling its payment) no longer counts, though its workflow may still be cleaning up after it.
   */
  activeJobIds(owner: string, environmentId: string, limit: number): Promise<string[]> {
    return this.guarded((deadline) => this.attempts(deadline, () => this.listActiveJobIds(owner, environmentId, limit)));
  }

  private async listActiveJobIds(owner: string, environmentId: string, limit: number): Promise<string[]> {
    const quote = (v: string): string => v.replace(/[\\']/g, '');
    const query = `WorkflowType = '${JOB_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND C2DStatus NOT IN (${[...finalStatuses, JobStatus.Settling].join(', ')}) AND C2DOwner = '${quote(owner)}' AND C2DEnvironment = '${quote(environmentId)}'`;
    const ids: string[] = [];
    for await (const info of this.deps.client.workflow.list({ query, pageSize: Math.max(1, limit) })) {
      ids.push(info.workflowId.replace(/^c2d-/, ''));
      if (ids.length >= limit) break;
    }
    return ids;
  }
}

const recordedStatus = (info: ExecutionInfo): JobStatusCode => (info.typedSearchAttributes.get(C2DStatus) ?? JobStatus.WarmingUp) as JobStatusCode;

/** A job's view from its visibility record alone (search attributes, memo at the start), in the given status; nothing published yet. */
function visibleView(info: ExecutionInfo, status: JobStatusCode): JobView {
  const sa = info.typedSearchAttributes;
  const memo = info.memo ?? {};
  const createdAt = typeof memo.createdAt === 'number' ? memo.createdAt : info.startTime.getTime();
  return {
    agreementId: typeof memo.agreementId === 'string' ? memo.agreementId : '',
    jobId: jobIdOf(info.workflowId),
    owner: sa.get(C2DOwner) ?? '',
    status,
    statusText: statusText[status],
    dateCreated: toEpochSecondsString(createdAt),
    dateFinished: info.closeTime ? toEpochSecondsString(info.closeTime.getTime()) : null,
    stopreq: StopReq.None,
    removed: 0,
    algoDID: sa.get(C2DAlgorithmDid) ?? '',
    inputDID: sa.get(C2DDatasetDids) ?? [],
    results: '',
    environment: sa.get(C2DEnvironment) ?? '',
    expireTimestamp: null,
    terminationDetails: null,
    ...(memo.api === 'v2' ? { api: 'v2' as const } : {}),
  };
}

/**
 * A running job's view from describe, as its status query would give it, while it has published nothing: the
 * status it recorded, the memo `live` the workflow keeps (computeJob). null once it may hold results (settling,
 * or a final status while it cleans up), and for a workflow older than the memo: those are asked by query.
 */
function liveOf(info: ExecutionInfo): JobView | null {
  const status = recordedStatus(info);
  if (finalStatuses.includes(status) || status === JobStatus.Settling) return null;
  const memo = info.memo ?? {};
  if (typeof memo.createdAt !== 'number') return null;
  const live = (memo.live ?? {}) as Partial<LiveView>;
  return {
    ...visibleView(info, status),
    ...(live.stopreq !== undefined ? { stopreq: live.stopreq } : {}),
    ...(live.terminationDetails ? { terminationDetails: live.terminationDetails } : {}),
    ...(live.payment ? { payment: live.payment } : {}),
    ...(live.pullingImage ? { pullingImage: true as const } : {}),
    ...(live.imagePullFailed ? { imagePullFailed: true as const } : {}),
  };
}

const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
