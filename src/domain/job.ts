import type { z } from 'zod';
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

/** The directory name of a dataset under /data/inputs: the DID without its `did:op:` prefix. */
export const inputDirName = (did: string): string => did.replace(/^did:op:/, '');

export const toEpochSecondsString = (ms: number): string => (ms / 1000).toFixed(3);
