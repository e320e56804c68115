import { randomBytes } from 'node:crypto';
import express, { type Router } from 'express';
import { authorizeJob } from '../../assets/authorize';
import { C2DError } from '../../domain/errors';
import type { AlgorithmRef, DatasetRef, JobInput, JobView } from '../../domain/job';
import { requireSignedRequest, requireSignedWithoutNonce } from '../auth';
import type { AppDeps } from '../deps';
import { endpoints } from '../endpoints';
import { findOwnedJob, ownedJob, sameAddress } from '../jobs';
import { parseParams } from '../params';
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
  return { kind: 'raw', container: algorithm.meta.container, rawcode: algorithm.meta.rawcode, url: algorithm.meta.url, algocustomdata: algorithm.algocustomdata };
}

const mentions = (job: JobView, documentId: string | undefined): boolean => !documentId || job.inputDID.includes(documentId) || job.algoDID === documentId;

/** Start, status, stop and delete: Ocean's four methods on `/api/services/compute`. */
export function computeRoutes(deps: AppDeps): Router {
  const router = express.Router();
  const path = endpoints.computeStart[1];
  const newJobId = deps.newJobId ?? randomJobId;

  router.post(path, async (req, res) => {
    const body = parseParams(computeStartSchema, req);
    await requireSignedRequest(deps.nonces, { address: body.consumerAddress, parts: [body.consumerAddress, body.dataset.documentId], nonce: body.nonce, signature: body.signature });
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
    const authorized = await authorizeJob({ resolver: deps.resolver, decryptor: deps.decryptor, checkContainer: (c) => backend.checkContainer(c), ...(deps.remoteFiles ? { remoteFiles: deps.remoteFiles } : {}) }, input);
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
    res.json([job]);
  });

  router.get(path, async (req, res) => {
    const { consumerAddress, jobId, documentId } = parseParams(computeStatusSchema, req);
    if (jobId) {
      res.locals.jobId = jobId;
      const job = await findOwnedJob(deps.jobs, jobId, consumerAddress);
      res.json(job && mentions(job, documentId) ? [job] : []);
      return;
    }
    const jobs = await deps.jobs.listByOwner(consumerAddress.toLowerCase());
    res.json(jobs.filter((j) => sameAddress(j.owner, consumerAddress) && mentions(j, documentId)));
  });

  router.put(path, async (req, res) => {
    const body = parseParams(computeStopSchema, req);
    res.locals.jobId = body.jobId;
    await requireSignedRequest(deps.nonces, { address: body.consumerAddress, parts: [body.consumerAddress, body.jobId, body.documentId ?? ''], nonce: body.nonce, signature: body.signature });
    await ownedJob(deps.jobs, body.jobId, body.consumerAddress);
    res.json([await deps.jobs.stop(body.jobId)]);
  });

  router.delete(path, async (req, res) => {
    const body = parseParams(computeDeleteSchema, req);
    res.locals.jobId = body.jobId;
    const signed = { address: body.consumerAddress, parts: [body.consumerAddress, body.jobId, body.documentId ?? ''], signature: body.signature };
    if (body.nonce !== undefined) await requireSignedRequest(deps.nonces, { ...signed, nonce: body.nonce });
    else await requireSignedWithoutNonce(deps.nonces, signed);
    await ownedJob(deps.jobs, body.jobId, body.consumerAddress);
    await deps.jobs.remove(body.jobId);
    const job = await deps.jobs.get(body.jobId);
    res.json(job ? [job] : []);
  });

  return router;
}
