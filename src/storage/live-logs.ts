import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { NotFoundError } from '../domain/errors';
import type { S3Settings } from './s3';

const JOB_ID = /^[0-9a-f]{32}$/;
/** chunk objects: `<offset>-<length>` with the offset in 16 digits, so the bucket lists them in log order */
const CHUNK = /^(\d{16})-(\d+)$/;
const END = /^end-(\d+)$/;

/**
 * The log of a running algorithm where every API replica reads it: the worker that runs the step (on its
 * own host, where the log file is) ships what the step writes as chunk objects keyed by byte offset, and
 * writes an end marker with the log's length once the step ended. Any API follows the chunks in offset
 * order, so a consumer sees every byte once, from whichever API. A retried step's shipper resumes after
 * the last chunk stored. Only with results in S3 (several hosts); on one host the API reads the file.
 */
export interface LiveLogStore {
  /** stores bytes [offset, offset + chunk.length) of the job's algorithm log */
  put(jobId: string, offset: number, chunk: Buffer): Promise<void>;
  /** the log is complete at `length` bytes */
  end(jobId: string, length: number): Promise<void>;
  /** the chunks that start at or after `from`, in order, and the final length once the step has ended */
  list(jobId: string, from: number): Promise<{ chunks: { offset: number; length: number }[]; end: number | null }>;
  read(jobId: string, chunk: { offset: number; length: number }): Promise<Buffer>;
  /** forgets the job's live log (the stored algorithm.log is what stays). Idempotent. */
  remove(jobId: string): Promise<void>;
}

const status = (err: unknown): number | undefined => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

export class S3LiveLogs implements LiveLogStore {
  constructor(
    private readonly client: S3Client,
    private readonly s: Pick<S3Settings, 'bucket' | 'prefix'>,
  ) {}

  private dir(jobId: string): string {
    if (!JOB_ID.test(jobId)) throw new NotFoundError('job_not_found', 'no such job');
    return `${this.s.prefix}live/${jobId}/`;
  }

  async put(jobId: string, offset: number, chunk: Buffer): Promise<void> {
    const key = `${this.dir(jobId)}${String(offset).padStart(16, '0')}-${chunk.length}`;
    await this.client.send(new PutObjectCommand({ Bucket: this.s.bucket, Key: key, Body: chunk, ContentType: 'text/plain' }));
  }

  async end(jobId: string, length: number): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.s.bucket, Key: `${this.dir(jobId)}end-${length}`, Body: '' }));
  }

  async list(jobId: string, from: number): Promise<{ chunks: { offset: number; length: number }[]; end: number | null }> {
    const dir = this.dir(jobId);
    const chunks: { offset: number; length: number }[] = [];
    let end: number | null = null;
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: dir, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const name = (o.Key ?? '').slice(dir.length);
        const c = CHUNK.exec(name);
        const e = END.exec(name);
        if (c && Number(c[1]) >= from) chunks.push({ offset: Number(c[1]), length: Number(c[2]) });
        else if (e) end = Number(e[1]);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { chunks: chunks.sort((a, b) => a.offset - b.offset), end };
  }

  async read(jobId: string, chunk: { offset: number; length: number }): Promise<Buffer> {
    const key = `${this.dir(jobId)}${String(chunk.offset).padStart(16, '0')}-${chunk.length}`;
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.s.bucket, Key: key }));
    return Buffer.from((await out.Body?.transformToByteArray()) ?? new Uint8Array());
  }

  async remove(jobId: string): Promise<void> {
    const dir = this.dir(jobId);
    for (;;) {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: dir }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length === 0) return;
      try {
        await this.client.send(new DeleteObjectsCommand({ Bucket: this.s.bucket, Delete: { Objects: keys, Quiet: true } }));
      } catch (err) {
        if (status(err) !== 404) throw err;
      }
    }
  }
}

/**
 * Ships a step's log (the backend's live stream, read on the step's host) into the store: chunks every
 * `intervalMs` or `maxChunk` bytes, then the end marker once the stream ends. Resumes after what an
 * earlier attempt shipped (a retried step re-attaches and its stream starts again from byte 0).
 */
export async function shipLiveLog(
  store: LiveLogStore,
  jobId: string,
  log: Readable,
  opts: { intervalMs?: number; maxChunk?: number; rest?: () => Readable | null } = {},
): Promise<number> {
  const shipped = await store.list(jobId, 0);
  let offset = shipped.chunks.reduce((end, c) => Math.max(end, c.offset + c.length), 0);
  let seen = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const chunk = Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    await store.put(jobId, offset, chunk);
    offset += chunk.length;
  };
  let last = Date.now();
  // the live stream, then (`rest`) the whole log once more: what the live stream missed at its end is shipped too
  for (let stream: Readable | null = log; stream; stream = stream === log ? (opts.rest?.() ?? null) : null) {
    seen = 0; // each stream starts at the log's first byte
    for await (const data of stream as AsyncIterable<Buffer>) {
      // the bytes shipped already (by an earlier stream or attempt)
      const fresh = seen + data.length <= offset + pendingBytes ? null : data.subarray(Math.max(0, offset + pendingBytes - seen));
      seen += data.length;
      if (fresh && fresh.length > 0) {
        pending.push(fresh);
        pendingBytes += fresh.length;
      }
      if (pendingBytes >= (opts.maxChunk ?? 256 * 1024) || Date.now() - last >= (opts.intervalMs ?? 500)) {
        await flush();
        last = Date.now();
      }
    }
  }
  await flush();
  await store.end(jobId, offset);
  return offset;
}

/**
 * What a follower learns of the job on each poll: `null` while it runs; once it is over, the rest of its
 * stored algorithm log from byte `from` (`rest: null` when none was stored: its worker is gone, or it
 * failed before publishing).
 */
export type JobOver = (from: number) => Promise<{ rest: Readable | null } | null>;

/**
 * Follows a job's shipped log from any API: the chunks in order as they arrive, until the end marker.
 * Once the job is over the stored log has the last word: its worker removes the live chunks when it
 * cleans the job up, maybe before a slow follower read them, so the follower ends with the stored log
 * past what it has sent (or, with none stored, with what chunks remain). Polls every `pollMs`.
 */
export function followLiveLog(store: LiveLogStore, jobId: string, over: JobOver, signal: AbortSignal, pollMs = 300): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    let from = 0;
    for (;;) {
      const ended = await over(from);
      if (ended?.rest) {
        yield* ended.rest as AsyncIterable<Buffer>;
        return;
      }
      const { chunks: found, end } = await store.list(jobId, from);
      for (const c of found) {
        if (c.offset !== from) break; // a gap: that chunk is still being written
        yield await store.read(jobId, c);
        from += c.length;
      }
      if ((end !== null && from >= end) || ended) return;
      await sleep(pollMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
    }
  }
  return Readable.from(chunks());
}
