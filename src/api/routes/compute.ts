import { randomBytes } from 'node:crypto';
import { type AuthorizedDataset, authorizeJob } from '../../assets/authorize';
import { C2DError } from '../../domain/errors';
import type { AlgorithmRef, DatasetRef, JobInput, JobView } from '../../domain/job';
import { nextNonce, requireSignedRequest } from '../auth';
import type { AppDeps } from '../deps';
import { findOwnedJob, ownedJob, sameAddress } from '../jobs';
import { KeyedLock } from '../../storage/keyed-lock';
import { jobListSchema } from '../responses';
import { route, SERVICES } from '../route';
import { type ComputeStartRequest, computeDeleteSchema, computeStartSchema, computeStatusSchema, computeStopSchema } from '../schemas';

const randomJobId = (): string => randomBytes(16).toString('hex');

function datasetRefs(body: ComputeStartRequest): DatasetRef[] {
  return [body.dataset, ...(body.additionalDatasets ?? [])].map((d) => ({
    did: d.documentId,
    serviceId: d.serviceId,
    transferTxId: d.transferTxId,
    userdata: d.userdata,
  }));
}

function algorithmRef(algorithm: ComputeStartRequest['algorithm']): AlgorithmRef {
  if ('documentId' in algorithm) {
    return {
      kind: 'published',
      did: algorithm.documentId,
      serviceId: algorithm.serviceId,
      transferTxId: algorithm.transferTxId,
      algocustomdata: algorithm.algocustomdata,
      userdata: algorithm.userdata,
    };
  }
  return {
    kind: 'raw',
    container: algorithm.meta.container,
    rawcode: algorithm.meta.rawcode,
    url: algorithm.meta.url,
    algocustomdata: algorithm.algocustomdata,
  };
}

/**
 * Jobs this API process started in the last seconds: Temporal's visibility may list a new workflow a
 * moment late, and the cap must count it meanwhile.
 */
class RecentStarts {
  private readonly started = new Map<string, Map<string, number>>();
  private static readonly KEEP_MS = 5_000;

  add(owner: string, environmentId: string, jobId: string): void {
    const key = `${owner} ${environmentId}`;
    const jobs = this.started.get(key) ?? new Map<string, number>();
    jobs.set(jobId, Date.now());
    this.started.set(key, jobs);
  }

  of(owner: string, environmentId: string): string[] {
    const key = `${owner} ${environmentId}`;
    const jobs = this.started.get(key);
    if (!jobs) return [];
    for (const [id, at] of jobs) if (Date.now() - at > RecentStarts.KEEP_MS) jobs.delete(id);
    if (jobs.size === 0) this.started.delete(key);
    return [...jobs.keys()];
  }
}

/** The per-consumer cap (C2D_MAX_JOBS_PER_CONSUMER): running + queued jobs of one consumer in one environment. */
async function requireUnderCap(deps: AppDeps, recent: RecentStarts, owner: string, environmentId: string): Promise<void> {
  const cap = deps.maxJobsPerConsumer ?? 0;
  if (cap <= 0 || !deps.jobs.activeJobIds) return;
  const active = new Set(await deps.jobs.activeJobIds(owner, environmentId, cap));
  for (const jobId of recent.of(owner, environmentId)) {
    if (active.has(jobId)) continue;
    // not listed yet, or listed no more because it ended: its own state says which
    const job = await deps.jobs.get(jobId);
    if (!job || job.dateFinished === null) active.add(jobId);
  }
  if (active.size >= cap)
    throw new C2DError(
      'conflict',
      'too_many_jobs',
      `consumer ${owner} already has ${active.size} running or queued jobs in environment ${environmentId}, the most one consumer may have (C2D_MAX_JOBS_PER_CONSUMER = ${cap}): wait for one to finish, or stop one`,
    );
}

/**
 * A paid order funds one job (docs/security.md): the order of every on-chain dataset is recorded as
 * consumed by this job, under the consumer's address (someone else naming the transaction cannot use it
 * up: the worker refuses their job, whose order is not theirs). The second job naming it is a 400. The
 * algorithm's order is not consumed: its provider fee is zero (initializeCompute), it pays no compute,
 * and Ocean reuses it while it is valid. Returns the transactions claimed.
 */
async function consumeOrders(deps: AppDeps, owner: string, jobId: string, refs: DatasetRef[], datasets: AuthorizedDataset[]): Promise<string[]> {
  const store = deps.consumedOrders;
  if (!store) return [];
  const claimed: string[] = [];
  for (const [i, ref] of refs.entries()) {
    const tx = ref.transferTxId?.trim().toLowerCase();
    if (!tx || !datasets[i]?.service.datatokenAddress) continue;
    const earlier = await store.claim(`${owner}:${tx}`, { jobId, did: ref.did, serviceId: ref.serviceId, at: Date.now() });
    if (earlier) {
      await Promise.all(claimed.map((t) => store.release(`${owner}:${t}`, jobId)));
      const resource = i === 0 ? 'dataset' : `datasets[${i}]`;
      throw new C2DError(
        'validation',
        'order_already_used',
        `${resource}: order ${ref.transferTxId} already funded job ${earlier.jobId}; a paid order funds one job: order again (initializeCompute, then reuseOrder with the new provider fee) to start another`,
      );
    }
    claimed.push(tx);
  }
  return claimed;
}

const mentions = (job: JobView, documentId: string | undefined): boolean => !documentId || job.inputDID.includes(documentId) || job.algoDID === documentId;

/** Start, status, stop and delete: Ocean's four methods on `/api/services/compute`. */
export const COMPUTE_PATH = `${SERVICES}/compute`;
const jobs = { 200: { description: 'The job(s)', schema: jobListSchema } };

export const computeStart = route({
  name: 'computeStart',
  method: 'post',
  path: COMPUTE_PATH,
  summary: 'Starts a job (signed: consumerAddress + dataset.documentId + nonce)',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeStartSchema },
  responses: jobs,
  handler: (deps: AppDeps) => {
    const newJobId = deps.newJobId ?? randomJobId;
    const starts = new KeyedLock();
    const recent = new RecentStarts();
    return async ({ input: body, res, json }) => {
      await requireSignedRequest(deps.nonces, {
        address: body.consumerAddress,
        parts: [body.consumerAddress, body.dataset.documentId],
        nonce: body.nonce,
        signature: body.signature,
      });
      const environment = deps.environments.find((e) => e.id === body.environment);
      if (!environment) throw new C2DError('validation', 'unknown_environment', 'Compute environment does not exist');
      const backend = deps.backendFor(environment.id);
      if (!backend) throw new C2DError('internal', 'no_backend', `no backend runs environment ${environment.id}`);
      const owner = body.consumerAddress.toLowerCase();
      // one start at a time per consumer and environment: the cap cannot be passed by starting in parallel
      await starts.run(`${owner} ${environment.id}`, async () => {
        await requireUnderCap(deps, recent, owner, environment.id);
        const input: Omit<JobInput, 'jobId' | 'createdAt'> = {
          owner,
          environmentId: environment.id,
          datasets: datasetRefs(body),
          algorithm: algorithmRef(body.algorithm),
        };
        const authorized = await authorizeJob(
          {
            resolver: deps.resolver,
            decryptor: deps.decryptor,
            checkContainer: (c) => backend.checkContainer(c),
            ...(deps.remoteFiles ? { remoteFiles: deps.remoteFiles } : {}),
            ...(deps.fetchPolicy ? { fetchPolicy: deps.fetchPolicy } : {}),
          },
          input,
        );
        if (authorized.allowNetwork && !environment.algorithmNetwork) {
          throw new C2DError(
            'validation',
            'network_unavailable',
            `Compute environment ${environment.id} gives algorithms no network access, and every dataset of this job allows it (allowNetworkAccess): choose an environment that offers network, or a dataset without allowNetworkAccess`,
          );
        }
        const jobId = newJobId();
        res.locals.jobId = jobId;
        const claimed = await consumeOrders(deps, owner, jobId, input.datasets, authorized.datasets);
        let job;
        try {
          job = await deps.jobs.start({ ...input, jobId, createdAt: Date.now() });
        } catch (err) {
          const store = deps.consumedOrders;
          if (store) await Promise.all(claimed.map((tx) => store.release(`${owner}:${tx}`, jobId)));
          throw err;
        }
        recent.add(owner, environment.id, jobId);
        deps.logger.info({ jobId, environment: environment.id }, 'job accepted');
        json(200, [job]);
      });
    };
  },
});

export const computeStatus = route({
  name: 'computeStatus',
  method: 'get',
  path: COMPUTE_PATH,
  summary: "The caller's jobs, or one of them",
  tags: ['compute'],
  auth: 'none',
  service: true,
  input: { from: 'params', schema: computeStatusSchema },
  responses: jobs,
  handler:
    (deps) =>
    async ({ input: { consumerAddress, jobId, documentId }, res, json }) => {
      if (jobId) {
        res.locals.jobId = jobId;
        const job = await findOwnedJob(deps.jobs, jobId, consumerAddress);
        return json(200, job && mentions(job, documentId) ? [job] : []);
      }
      const jobs = await deps.jobs.listByOwner(consumerAddress.toLowerCase());
      json(
        200,
        jobs.filter((j) => sameAddress(j.owner, consumerAddress) && mentions(j, documentId)),
      );
    },
});

export const computeStop = route({
  name: 'computeStop',
  method: 'put',
  path: COMPUTE_PATH,
  summary: 'Stops a job (signed: consumerAddress + jobId + documentId + nonce)',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeStopSchema },
  responses: jobs,
  handler:
    (deps) =>
    async ({ input: body, res, json }) => {
      res.locals.jobId = body.jobId;
      await requireSignedRequest(deps.nonces, {
        address: body.consumerAddress,
        parts: [body.consumerAddress, body.jobId, body.documentId ?? ''],
        nonce: body.nonce,
        signature: body.signature,
      });
      await ownedJob(deps.jobs, body.jobId, body.consumerAddress);
      json(200, [await deps.jobs.stop(body.jobId)]);
    },
});

export const computeDelete = route({
  name: 'computeDelete',
  method: 'delete',
  path: COMPUTE_PATH,
  summary: "Deletes a job's results (signed like stop; the nonce may be omitted: then stored + 1 is signed and consumed)",
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeDeleteSchema },
  responses: jobs,
  handler:
    (deps) =>
    async ({ input: body, res, json }) => {
      res.locals.jobId = body.jobId;
      const signed = { address: body.consumerAddress, parts: [body.consumerAddress, body.jobId, body.documentId ?? ''], signature: body.signature };
      // Ocean's client 3.3.0 sends no nonce on delete: it signs stored + 1, which is consumed like a sent one, so the signed call cannot be replayed
      const nonce = body.nonce ?? nextNonce(await deps.nonces.get(body.consumerAddress));
      await requireSignedRequest(deps.nonces, { ...signed, nonce });
      await ownedJob(deps.jobs, body.jobId, body.consumerAddress);
      await deps.jobs.remove(body.jobId);
      const job = await deps.jobs.get(body.jobId);
      json(200, job ? [job] : []);
    },
});

export const computeRoutes = [computeStart, computeStatus, computeStop, computeDelete];
