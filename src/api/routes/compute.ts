import { randomBytes } from 'node:crypto';
import { authorizeJob } from '../../assets/authorize';
import { C2DError } from '../../domain/errors';
import type { AlgorithmRef, DatasetRef, JobInput, JobView } from '../../domain/job';
import { nextNonce, requireSignedRequest } from '../auth';
import type { AppDeps } from '../deps';
import { findOwnedJob, ownedJob, sameAddress } from '../jobs';
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
      const input: Omit<JobInput, 'jobId' | 'createdAt'> = {
        owner: body.consumerAddress.toLowerCase(),
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
      const job = await deps.jobs.start({ ...input, jobId, createdAt: Date.now() });
      deps.logger.info({ jobId, environment: environment.id }, 'job accepted');
      json(200, [job]);
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
