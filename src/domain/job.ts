import type { z } from 'zod';
import type { EscrowPayment, ResourceAmount } from './resources';
import type { jobViewSchema, resultEntrySchema, resultTypeSchema, terminationDetailsSchema } from './job-view';

/** What the consumer asked to run, by id only. This is the workflow input: it goes into Temporal's
 * history, so it must never hold a decrypted file location, a key or a signature. */
export interface JobInput {
  jobId: string;
  owner: string; // lower-case 0x address
  environmentId: string;
  /** Main dataset first, then additional datasets. */
  datasets: DatasetRef[];
  algorithm: AlgorithmRef;
  /** epoch milliseconds when the API accepted the job */
  createdAt: number;
  /** which client generation started it: 'v2' = ocean-node's compute API (ocean.js ≥ 4); absent = the Python Provider's (ocean.js 3.x) */
  api?: 'v2';
  /** C2D v2: the resources the job asked for (absent: the environment's per-job fields) */
  resources?: ResourceAmount[];
  /** C2D v2: seconds the job may run (absent: the environment's maxJobDuration) */
  maxJobDuration?: number;
  /** C2D v2 paid jobs: the Escrow lock and claim (absent: free, or paid by datatoken orders) */
  payment?: EscrowPayment;
  /** C2D v2: seconds the job may wait for the environment's capacity; past it the job ends with status 2 (absent: it waits until it runs) */
  queueMaxWaitTime?: number;
  /** C2D v2 free jobs (freeComputeStart) */
  free?: boolean;
}

export interface DatasetRef {
  did: string;
  serviceId: string;
  transferTxId?: string;
  userdata?: Record<string, unknown>;
}

export type AlgorithmRef =
  | { kind: 'published'; did: string; serviceId: string; transferTxId?: string; algocustomdata?: Record<string, unknown>; userdata?: Record<string, unknown> }
  | { kind: 'raw'; container: ContainerSpec; rawcode?: string; url?: string; algocustomdata?: Record<string, unknown> };

export interface ContainerSpec {
  entrypoint: string;
  image: string;
  tag: string;
  checksum: string;
}

export type ResultType = z.infer<typeof resultTypeSchema>;
export type ResultEntry = z.infer<typeof resultEntrySchema>;
export type TerminationDetails = z.infer<typeof terminationDetailsSchema>;
/** The job as the consumer sees it (Ocean's job object plus our fields); the schema is in ./job-view. */
export type JobView = z.infer<typeof jobViewSchema>;

export const RAW_ALGORITHM_DID = 'raw';

/** `jobId` = 32 lower-case hex characters; the workflow id is derived from it. */
export const JOB_ID_PATTERN = /^[0-9a-f]{32}$/;
export const workflowIdForJob = (jobId: string): string => `c2d-${jobId}`;
/** The job of a job workflow's id (workflowIdForJob's inverse). */
export const jobIdOfWorkflow = (workflowId: string): string => workflowId.replace(/^c2d-/, '');

/** The directory name of a dataset under /data/inputs: the DID without its `did:op:` prefix. */
export const inputDirName = (did: string): string => did.replace(/^did:op:/, '');

export const toEpochSecondsString = (ms: number): string => (ms / 1000).toFixed(3);
