import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { z } from 'zod';
import { NotFoundError, RangeNotSatisfiableError } from '../domain/errors';
import type { ResultEntry } from '../domain/job';
import { KeyedLock } from './keyed-lock';
import { sanitizeFilename } from './local';
import type { OpenedResult, ResultSource, ResultStore, StoredResults } from './store';

const JOB_ID = /^[0-9a-zA-Z_-]{1,64}$/;
/** S3's smallest part but the last is 5 MiB; 8 MiB parts keep a save's memory bounded whatever the file size. */
const PART_SIZE = 8 << 20;

export interface S3Settings {
  /** unset: AWS's own endpoint for the region */
  endpoint?: string;
  bucket: string;
  region: string;
  /** unset: the SDK's default credential chain (environment, profile, instance role) */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** key prefix, e.g. `c2d/` when the bucket is shared */
  prefix: string;
}

const metaSchema = z.object({
  jobId: z.string(),
  owner: z.string(),
  results: z.array(z.object({ filename: z.string(), filesize: z.number(), type: z.enum(['output', 'algorithmLog', 'configrationLog', 'publishLog']) })),
  expireTimestamp: z.number(),
  removed: z.boolean(),
  /** the save whose files are current: `<prefix>results/<jobId>/<attempt>/<filename>` */
  attempt: z.string(),
});
type Meta = z.output<typeof metaSchema>;

function uniqueName(name: string, taken: Set<string>): string {
  if (!taken.has(name)) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let i = 1; ; i++) if (!taken.has(`${stem}-${i}${ext}`)) return `${stem}-${i}${ext}`;
}

const status = (err: unknown): number | undefined => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

/**
 * Results in an S3-compatible bucket, so that any API replica serves what any worker stored (issue 15).
 * Per job: `results/<jobId>/meta.json` and the files of one save under `results/<jobId>/<attempt>/`.
 * A save uploads a new attempt's files, then swaps the meta in with a conditional PUT (If-Match on the
 * meta it read, If-None-Match when there was none), so a retried publishing step replaces an earlier
 * attempt instead of mixing with it, and a removal by another process meanwhile wins: the meta is the
 * single point of truth, and it is only ever replaced by a writer that saw the current version.
 * Removal and expiry mark the meta removed first, then delete the files (as the local store does).
 * Downloads: `open` streams through the caller (with Range), `presignedUrl` hands out a time-limited
 * URL of the object itself (Range works on it: the Range header is not part of the signature).
 */
export class S3ResultStore implements ResultStore {
  readonly client: S3Client;
  private readonly lock = new KeyedLock();

  constructor(
    private readonly s: S3Settings,
    private readonly now: () => number = Date.now,
  ) {
    this.client = new S3Client({
      region: s.region,
      ...(s.endpoint ? { endpoint: s.endpoint, forcePathStyle: true } : {}),
      ...(s.credentials ? { credentials: s.credentials } : {}),
    });
  }

  private jobPrefix(jobId: string): string {
    if (!JOB_ID.test(jobId)) throw new NotFoundError('job_not_found', 'no such job');
    return `${this.s.prefix}results/${jobId}/`;
  }

  private metaKey(jobId: string): string {
    return `${this.jobPrefix(jobId)}meta.json`;
  }

  private fileKey(jobId: string, attempt: string, filename: string): string {
    return `${this.jobPrefix(jobId)}${attempt}/${filename}`;
  }

  /** The meta and its ETag (for a conditional replace); null when there is none. */
  private async readMeta(jobId: string): Promise<{ meta: Meta; etag: string } | null> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.s.bucket, Key: this.metaKey(jobId) }));
      const text = (await out.Body?.transformToString('utf8')) ?? '';
      return { meta: metaSchema.parse(JSON.parse(text)), etag: out.ETag ?? '' };
    } catch (err) {
      if (status(err) === 404 || (err as Error).name === 'NoSuchKey') return null;
      throw err;
    }
  }

  /** Writes the meta only if it is still the version read (`etag`), or still absent (null); false when another writer came first. */
  private async writeMeta(meta: Meta, etag: string | null): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.s.bucket,
          Key: this.metaKey(meta.jobId),
          Body: JSON.stringify(meta),
          ContentType: 'application/json',
          ...(etag === null ? { IfNoneMatch: '*' } : { IfMatch: etag }),
        }),
      );
      return true;
    } catch (err) {
      if (status(err) === 412 || status(err) === 409) return false; // PreconditionFailed / ConditionalRequestConflict
      throw err;
    }
  }

  async save(jobId: string, owner: string, files: ResultSource[], expiresAtMs: number): Promise<ResultEntry[]> {
    this.jobPrefix(jobId);
    return this.lock.run(jobId, async () => {
      if ((await this.readMeta(jobId))?.meta.removed) return []; // deleted by its owner meanwhile: results must not come back
      const attempt = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
      let results: ResultEntry[];
      try {
        results = await this.uploadFiles(jobId, attempt, files);
      } catch (err) {
        await this.deleteAttempt(jobId, attempt).catch(() => undefined);
        throw err;
      }
      const meta: Meta = { jobId, owner: owner.toLowerCase(), results, expireTimestamp: Math.floor(expiresAtMs / 1000), removed: false, attempt };
      for (;;) {
        const current = await this.readMeta(jobId);
        if (current?.meta.removed) {
          await this.deleteAttempt(jobId, attempt);
          return [];
        }
        if (await this.writeMeta(meta, current?.etag ?? null)) {
          if (current && current.meta.attempt !== attempt) await this.deleteAttempt(jobId, current.meta.attempt);
          return results;
        }
      }
    });
  }

  private async uploadFiles(jobId: string, attempt: string, files: ResultSource[]): Promise<ResultEntry[]> {
    const taken = new Set<string>();
    const results: ResultEntry[] = [];
    for (const source of files) {
      const filename = uniqueName(sanitizeFilename(source.filename), taken);
      taken.add(filename);
      const filesize = await this.upload(this.fileKey(jobId, attempt, filename), source.open());
      results.push({ filename, filesize, type: source.type });
    }
    return results;
  }

  /** One PUT for a small file, a multipart upload of PART_SIZE parts otherwise; returns the byte count. */
  private async upload(key: string, stream: Readable): Promise<number> {
    const Bucket = this.s.bucket;
    let buffered: Buffer[] = [];
    let bufferedLength = 0;
    let total = 0;
    let uploadId: string | undefined;
    const parts: { ETag: string; PartNumber: number }[] = [];
    const flushPart = async (): Promise<void> => {
      if (uploadId === undefined) {
        const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key: key }));
        uploadId = created.UploadId;
      }
      const PartNumber = parts.length + 1;
      const body = Buffer.concat(buffered);
      buffered = [];
      bufferedLength = 0;
      const out = await this.client.send(new UploadPartCommand({ Bucket, Key: key, UploadId: uploadId, PartNumber, Body: body, ContentLength: body.length }));
      parts.push({ ETag: out.ETag ?? '', PartNumber });
    };
    try {
      for await (const chunk of stream) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
        buffered.push(buf);
        bufferedLength += buf.length;
        total += buf.length;
        if (bufferedLength >= PART_SIZE) await flushPart();
      }
      if (uploadId === undefined) {
        const body = Buffer.concat(buffered);
        await this.client.send(new PutObjectCommand({ Bucket, Key: key, Body: body, ContentLength: body.length }));
        return total;
      }
      if (bufferedLength > 0) await flushPart();
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
      return total;
    } catch (err) {
      if (uploadId !== undefined) await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
      throw err;
    }
  }

  private async deletePrefix(prefix: string): Promise<void> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) await this.client.send(new DeleteObjectsCommand({ Bucket: this.s.bucket, Delete: { Objects: keys, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private deleteAttempt(jobId: string, attempt: string): Promise<void> {
    return this.deletePrefix(`${this.jobPrefix(jobId)}${attempt}/`);
  }

  async get(jobId: string): Promise<StoredResults | null> {
    const read = await this.readMeta(jobId);
    if (!read) return null;
    const { attempt: _attempt, ...stored } = read.meta;
    return stored;
  }

  /** The stored entry of a file that may be served now; NotFoundError otherwise. */
  private async servable(jobId: string, filename: string): Promise<{ meta: Meta; entry: ResultEntry }> {
    const read = await this.readMeta(jobId);
    if (!read || read.meta.removed) throw new NotFoundError('result_not_found', 'no results for this job');
    if (this.now() > read.meta.expireTimestamp * 1000) throw new NotFoundError('result_expired', 'the results of this job have expired');
    const name = sanitizeFilename(filename);
    const entry = read.meta.results.find((r) => r.filename === name);
    if (!entry) throw new NotFoundError('result_not_found', 'no such result file');
    return { meta: read.meta, entry };
  }

  async open(jobId: string, filename: string, range?: { start: number; end?: number }): Promise<OpenedResult> {
    const { meta, entry } = await this.servable(jobId, filename);
    const totalSize = entry.filesize;
    let served: { start: number; end: number } | undefined;
    if (range) {
      served = { start: range.start, end: Math.min(range.end ?? totalSize - 1, totalSize - 1) };
      if (served.start >= totalSize || served.end < served.start) throw new RangeNotSatisfiableError(totalSize);
    }
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.s.bucket,
          Key: this.fileKey(jobId, meta.attempt, entry.filename),
          ...(served ? { Range: `bytes=${served.start}-${served.end}` } : {}),
        }),
      );
      const stream = out.Body as Readable;
      return served ? { stream, length: served.end - served.start + 1, totalSize, range: served } : { stream, length: totalSize, totalSize };
    } catch (err) {
      if (status(err) === 404 || (err as Error).name === 'NoSuchKey') throw new NotFoundError('result_not_found', 'no such result file');
      throw err;
    }
  }

  /**
   * A URL that downloads one stored file straight from the bucket for `expiresInSeconds` (never past the
   * results' own expiry). Whoever holds it can download the file: hand it only to the job's owner, and
   * never log it (its query carries a signature).
   */
  async presignedUrl(jobId: string, filename: string, expiresInSeconds = 300): Promise<string> {
    const { meta, entry } = await this.servable(jobId, filename);
    const left = Math.floor(meta.expireTimestamp - this.now() / 1000);
    const expiresIn = Math.max(1, Math.min(expiresInSeconds, left, 7 * 24 * 3600));
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.s.bucket,
        Key: this.fileKey(jobId, meta.attempt, entry.filename),
        ResponseContentDisposition: `attachment; filename="${entry.filename.replace(/["\\]/g, '_')}"`,
      }),
      { expiresIn },
    );
  }

  async remove(jobId: string): Promise<void> {
    this.jobPrefix(jobId);
    return this.lock.run(jobId, () => this.markRemoved(jobId, () => true).then(() => undefined));
  }

  /** Marks the meta removed (when `should` agrees with the current one), then deletes every file of the job. */
  private async markRemoved(jobId: string, should: (meta: Meta | null) => boolean): Promise<boolean> {
    for (;;) {
      const current = await this.readMeta(jobId);
      if (!should(current?.meta ?? null)) return false;
      const meta: Meta = current ? { ...current.meta, removed: true } : { jobId, owner: '', results: [], expireTimestamp: 0, removed: true, attempt: 'none' };
      if (current?.meta.removed || (await this.writeMeta(meta, current?.etag ?? null))) break;
    }
    // everything but the meta: the current attempt and any left by an interrupted save
    const prefix = this.jobPrefix(jobId);
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key && o.Key !== `${prefix}meta.json` ? [{ Key: o.Key }] : []));
      if (keys.length > 0) await this.client.send(new DeleteObjectsCommand({ Bucket: this.s.bucket, Delete: { Objects: keys, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return true;
  }

  async sweepExpired(nowMs: number): Promise<number> {
    let swept = 0;
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.s.bucket, Prefix: `${this.s.prefix}results/`, Delimiter: '/', ContinuationToken: token }),
      );
      for (const p of page.CommonPrefixes ?? []) {
        const jobId = (p.Prefix ?? '').slice(`${this.s.prefix}results/`.length).replace(/\/$/, '');
        if (!JOB_ID.test(jobId)) continue;
        const didSweep = await this.lock.run(jobId, () =>
          this.markRemoved(jobId, (meta) => meta !== null && !meta.removed && nowMs > meta.expireTimestamp * 1000).catch(() => false),
        );
        if (didSweep) swept++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return swept;
  }
}
