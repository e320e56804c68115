import { randomBytes } from 'node:crypto';
import { type AuthorizedDataset, authorizeJob } from '../../assets/authorize';
import { C2DError } from '../../domain/errors';
import type { AlgorithmRef, DatasetRef, JobInput, JobView } from '../../domain/job';
import { nextNonce, requireSignedOrToken, requireSignedRequest } from '../auth';
import { authTokensOf } from '../auth-tokens';
import type { AppDeps } from '../deps';
import { findOwnedJob, ownedJob, sameAddress } from '../jobs';
import { KeyedLock } from '../../storage/keyed-lock';
import { jobListSchema } from '../responses';
import { route, SERVICES } from '../route';
import type express from 'express';
import {
  type ComputeStartRequest,
  computeDeleteSchema,
  computeStartSchema,
  computeStatusSchema,
  computeStopSchema,
  type FreeComputeStartRequest,
  freeComputeStartSchema,
  paidComputeStartSchema,
} from '../schemas';
import { paymentTerms, requireLockable } from '../escrow-terms';
import { jobForItsClient, oceanNodeJob } from '../ocean-node';

const randomJobId = (): string => randomBytes(16).toString('hex');

function datasetRefs(body: Pick<ComputeStartRequest, 'dataset' | 'additionalDatasets'>): DatasetRef[] {
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
 * moment late, and the cap must count it meanwhile. A job leaves as soon as the cap has no more need of
 * it: once visibility lists it (from then on the list counts it, while it runs), or once it has ended.
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

  forget(owner: string, environmentId: string, jobId: string): void {
    this.started.get(`${owner} ${environmentId}`)?.delete(jobId);
  }
}

/**
 * The per-consumer cap (C2D_MAX_JOBS_PER_CONSUMER): running + queued jobs of one consumer in one
 * environment. One visibility query, and a look at each job started here in the last seconds that it
 * does not list (side by side): each such job is looked at until it is listed or has ended, so a consumer
 * starting job after job pays for its last one at most, not for every one of the last seconds.
 */
async function requireUnderCap(deps: AppDeps, recent: RecentStarts, owner: string, environmentId: string): Promise<void> {
  const cap = deps.maxJobsPerConsumer ?? 0;
  if (cap <= 0 || !deps.jobs.activeJobIds) return;
  const active = new Set(await deps.jobs.activeJobIds(owner, environmentId, cap));
  const unlisted = recent.of(owner, environmentId).filter((jobId) => {
    if (active.has(jobId)) recent.forget(owner, environmentId, jobId);
    return !active.has(jobId);
  });
  // not listed yet, or listed no more because it ended: its own state says which
  const jobs = await Promise.all(unlisted.map((jobId) => deps.jobs.get(jobId)));
  for (const [i, jobId] of unlisted.entries()) {
    const job = jobs[i];
    if (!job || job.dateFinished === null) active.add(jobId);
    else recent.forget(owner, environmentId, jobId);
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

/**
 * Accepts one job for its owner: the per-consumer cap, the publisher's rules, the network check, the
 * orders it consumes, then the workflow. One per app (shared by both generations' start routes), so
 * the cap holds whichever route a consumer starts through.
 */
type StartJob = (input: Omit<JobInput, 'jobId' | 'createdAt'>, res: express.Response) => Promise<JobView>;
const starters = new WeakMap<AppDeps, StartJob>();

function jobStarter(deps: AppDeps): StartJob {
  const known = starters.get(deps);
  if (known) return known;
  const newJobId = deps.newJobId ?? randomJobId;
  const starts = new KeyedLock();
  const recent = new RecentStarts();
  const start: StartJob = async (input, res) => {
    const environment = deps.environments.find((e) => e.id === input.environmentId);
    if (!environment) throw new C2DError('validation', 'unknown_environment', 'Compute environment does not exist');
    const backend = deps.backendFor(environment.id);
    if (!backend) throw new C2DError('internal', 'no_backend', `no backend runs environment ${environment.id}`);
    const { owner } = input;
    // one start at a time per consumer and environment: the cap cannot be passed by starting in parallel
    return starts.run(`${owner} ${environment.id}`, async () => {
      await requireUnderCap(deps, recent, owner, environment.id);
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
      deps.logger.info({ jobId, environment: environment.id, ...(input.api ? { api: input.api } : {}) }, 'job accepted');
      return job;
    });
  };
  starters.set(deps, start);
  return start;
}

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
    const start = jobStarter(deps);
    return async ({ input: body, res, json }) => {
      await requireSignedRequest(deps.nonces, {
        address: body.consumerAddress,
        parts: [body.consumerAddress, body.dataset.documentId],
        nonce: body.nonce,
        signature: body.signature,
      });
      const input = {
        owner: body.consumerAddress.toLowerCase(),
        environmentId: body.environment,
        datasets: datasetRefs(body),
        algorithm: algorithmRef(body.algorithm),
      };
      json(200, [await start(input, res)]);
    };
  },
});

/** What ocean-node's start takes and this provider does not do: refused by name, never dropped without a word. */
const UNSUPPORTED_START_FIELDS = ['output', 'outputBucketId', 'policyServer', 'encryptedDockerRegistryAuth', 'additionalViewers'] as const;
const given = (v: unknown): boolean => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0);

/**
 * A start of ocean.js ≥ 4 (free or paid): who signed it (address + nonce + `command`, or an auth token),
 * then its fields, once what this provider does not offer was refused by name.
 */
async function v2Job(deps: AppDeps, req: express.Request, body: FreeComputeStartRequest, command: string): Promise<Omit<JobInput, 'jobId' | 'createdAt'>> {
  await requireSignedOrToken(deps.nonces, authTokensOf(deps), req, { address: body.consumerAddress, command, nonce: body.nonce, signature: body.signature });
  const unsupported = UNSUPPORTED_START_FIELDS.filter((f) => given(body[f]));
  if (unsupported.length > 0)
    throw new C2DError(
      'validation',
      'unsupported_field',
      `this provider does not support ${unsupported.join(', ')}: start the job without ${unsupported.length > 1 ? 'them' : 'it'}`,
    );
  const [main, ...more] = body.datasets;
  return {
    owner: body.consumerAddress.toLowerCase(),
    environmentId: body.environment,
    datasets: datasetRefs({ dataset: main!, additionalDatasets: more }),
    algorithm: algorithmRef(body.algorithm),
    api: 'v2',
    ...(body.resources ? { resources: body.resources } : {}),
    ...(body.maxJobDuration !== undefined ? { maxJobDuration: body.maxJobDuration } : {}),
    ...(body.queueMaxWaitTime ? { queueMaxWaitTime: body.queueMaxWaitTime } : {}),
  };
}

/** ocean.js ≥ 4's freeComputeStart (ocean-node's POST /freeCompute): a free job within the environment's free limits. */
export const freeComputeStart = route({
  name: 'freeCompute',
  method: 'post',
  path: `${SERVICES}/freeCompute`,
  summary:
    'Starts a free job, within the environment\'s free limits (ocean-node\'s API; signed: consumerAddress + nonce + "freeStartCompute", or an auth token)',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: freeComputeStartSchema },
  responses: jobs,
  handler: (deps: AppDeps) => {
    const start = jobStarter(deps);
    return async ({ input: body, req, res, json }) => {
      const input = await v2Job(deps, req, body, 'freeStartCompute');
      const environment = deps.environments.find((e) => e.id === body.environment);
      if (environment && !environment.free)
        throw new C2DError(
          'validation',
          'no_free_compute',
          `Compute environment ${environment.id} offers no free compute: choose an environment whose computeEnvironments entry has free limits, or start a paid job`,
        );
      json(200, [oceanNodeJob(await start({ ...input, free: true }, res))]);
    };
  },
});

/**
 * ocean.js ≥ 4's computeStart (ocean-node's paid POST /compute, told apart by its `payment`): the job's
 * price is locked in the consumer's Escrow deposit when it starts and the minutes it ran are claimed when
 * it ends (the workflow's payment saga). What the Escrow would refuse is refused here first.
 */
export const paidComputeStart = route({
  name: 'computeStart',
  method: 'post',
  path: COMPUTE_PATH,
  summary:
    'Starts a job paid through the Escrow contract (ocean-node\'s API: a body with `payment`; signed: consumerAddress + nonce + "startCompute", or an auth token)',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  variant: { of: 'computeStart', when: (req) => typeof (req.body as { payment?: unknown } | undefined)?.payment === 'object' },
  input: { from: 'params', schema: paidComputeStartSchema },
  responses: jobs,
  handler: (deps: AppDeps) => {
    const start = jobStarter(deps);
    return async ({ input: body, req, res, json }) => {
      const input = await v2Job(deps, req, body, 'startCompute');
      const terms = await paymentTerms(deps, body);
      await requireLockable(deps, terms);
      const paid = { ...input, resources: terms.payment.resources, maxJobDuration: terms.payment.maxJobDuration, payment: terms.payment };
      json(200, [oceanNodeJob(await start(paid, res))]);
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
    async ({ input: { consumerAddress, jobId, documentId, agreementId }, res, json }) => {
      const wanted = (job: JobView): boolean => mentions(job, documentId) && (!agreementId || job.agreementId.toLowerCase() === agreementId.toLowerCase());
      if (jobId) {
        res.locals.jobId = jobId;
        const job = await findOwnedJob(deps.jobs, jobId, consumerAddress);
        return json(200, job && wanted(job) ? [jobForItsClient(job)] : []);
      }
      const jobs = await deps.jobs.listByOwner(consumerAddress.toLowerCase());
      json(200, jobs.filter((j) => sameAddress(j.owner, consumerAddress) && wanted(j)).map(jobForItsClient));
    },
});

export const computeStop = route({
  name: 'computeStop',
  method: 'put',
  path: COMPUTE_PATH,
  summary: 'Stops a job (signed: consumerAddress + jobId + documentId + nonce, or ocean-node\'s consumerAddress + nonce + "stopCompute")',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeStopSchema },
  responses: jobs,
  handler:
    (deps) =>
    async ({ input: body, req, res, json }) => {
      res.locals.jobId = body.jobId;
      // the Python Provider's form, or ocean-node's (ocean.js ≥ 4: signed, or an auth token)
      await requireSignedOrToken(deps.nonces, authTokensOf(deps), req, {
        address: body.consumerAddress,
        // ocean.js 3.4.6 (nautilus' pin) signs address + jobId without the nonce; a replay could only stop the same job again
        alternatives: [
          { parts: [body.consumerAddress, body.jobId, body.documentId ?? ''] },
          { command: 'stopCompute' },
          { unbound: body.consumerAddress + body.jobId },
        ],
        nonce: body.nonce,
        signature: body.signature,
      });
      await ownedJob(deps.jobs, body.jobId, body.consumerAddress);
      json(200, [jobForItsClient(await deps.jobs.stop(body.jobId))]);
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
      json(200, job ? [jobForItsClient(job)] : []);
    },
});

export const computeRoutes = [paidComputeStart, computeStart, freeComputeStart, computeStatus, computeStop, computeDelete];
