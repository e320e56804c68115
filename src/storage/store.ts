import type { Readable } from 'node:stream';
import type { ResultEntry } from '../domain/job';

export interface StoredResults {
  jobId: string;
  owner: string;
  results: ResultEntry[];
  /** epoch seconds after which results are no longer served */
  expireTimestamp: number;
  removed: boolean;
}

export interface ResultSource {
  filename: string;
  type: ResultEntry['type'];
  open(): Readable;
}

export interface OpenedResult {
  stream: Readable;
  /** bytes in this stream */
  length: number;
  /** size of the whole file */
  totalSize: number;
  /** inclusive byte range served, when a range was asked */
  range?: { start: number; end: number };
}

/**
 * Where a job's outputs and logs are kept for the consumer until the environment's storageExpiry.
 * Local filesystem by default; S3-compatible later — same interface.
 */
export interface ResultStore {
  /** Stores the files (replacing any earlier attempt's) and returns the job's `results` list, in the order given. */
  save(jobId: string, owner: string, files: ResultSource[], expiresAtMs: number): Promise<ResultEntry[]>;
  /** null when nothing was ever stored for the job. */
  get(jobId: string): Promise<StoredResults | null>;
  /** Opens one stored file. Throws NotFoundError when missing, removed or expired; a range outside the file is a ValidationError. */
  open(jobId: string, filename: string, range?: { start: number; end?: number }): Promise<OpenedResult>;
  /** Deletes the files at once and marks the job removed. Idempotent. */
  remove(jobId: string): Promise<void>;
  /** Deletes every job's files past their expiry; returns how many jobs were swept. */
  sweepExpired(nowMs: number): Promise<number>;
}
