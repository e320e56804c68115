import type { Request } from 'express';
import type { z } from 'zod';
import type { JobView } from '../domain/job';
import type { JobStatusCode } from '../domain/status';
import type { oceanNodeJobSchema } from './responses';

export type OceanNodeJob = z.infer<typeof oceanNodeJobSchema>;

/**
 * ocean-node's compute API (C2D v2, ocean.js ≥ 4) beside the Python Provider's (ocean.js 3.x): how a
 * request of today's client is told apart, and how a job it started is shown. The two generations share
 * routes (`/api/services/compute`, `computeResult`, `computeEnvironments`), so a job keeps the vocabulary of
 * the client that started it (JobInput.api) wherever it is read.
 */

/** ocean-node's status codes and texts (src/@types/C2D/C2D.ts, v3.2.0): the wire contract of 8.x clients. */
export const oceanNodeStatusText: Record<number, string> = {
  0: 'Job started',
  1: 'Job queued',
  2: 'Job expired in queue',
  10: 'Pulling algorithm image',
  11: 'Pulling algorithm image failed',
  20: 'Configuring volumes',
  30: 'Provisioning data',
  31: 'Data provisioning failed',
  32: 'Algorithm provisioning failed',
  40: 'Running algorithm ',
  41: 'Failed to run algorithm',
  42: 'Error: disk quota exceeded',
  50: 'Filtering results',
  60: 'Publishing results',
  61: 'Failed to get outputs folder from container',
  62: 'Failed to upload results to storage',
  70: 'Job finished',
  71: 'Job settling',
};

/**
 * Our statuses in ocean-node's vocabulary. Where the numbers mean the same they stay; ours 1 ("Warming up":
 * the job is checked and waits for capacity) is ocean-node's 1, "Job queued"; 10 ("Job started") its 0.
 */
export function oceanNodeStatus(status: JobStatusCode): number {
  return status === 10 ? 0 : status;
}

/** A job as ocean-node shows it (ComputeJob): its statuses, `results` an array from the start, `terminationDetails.OOMKilled`. */
export function oceanNodeJob(job: JobView): OceanNodeJob {
  // ocean-node pulls the image before it configures; we configure first, then pull (still our 20): its 10 meanwhile
  // and its 11 when the pull failed (ours 32, as for any algorithm that could not be provisioned)
  const status = job.pullingImage ? 10 : job.imagePullFailed && job.status === 32 ? 11 : oceanNodeStatus(job.status);
  return {
    ...job,
    status,
    statusText: oceanNodeStatusText[status] ?? job.statusText,
    results: job.results === '' ? [] : job.results,
    terminationDetails: job.terminationDetails && { ...job.terminationDetails, OOMKilled: job.terminationDetails.oomKilled },
  };
}

/** A job as the client generation that started it reads it. */
export const jobForItsClient = (job: JobView): JobView | OceanNodeJob => (job.api === 'v2' ? oceanNodeJob(job) : job);

/**
 * Whether the root document is asked for by ocean.js ≥ 4: its `GET /` (made before every call) carries an
 * `Authorization` header — the literal `undefined` without a token — and 3.x's carries none. Where the two
 * generations send the same request (GET computeEnvironments), the root document each gets names a
 * different form of the route (OCEAN_NODE_QUERY).
 */
export const fromOceanNodeClient = (req: Request): boolean => req.headers.authorization !== undefined;

/** The query that selects ocean-node's form of a route both generations call alike. */
export const OCEAN_NODE_QUERY = 'api=v2';
