import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { NotFoundError, RangeNotSatisfiableError } from '../domain/errors';
import type { ResultEntry } from '../domain/job';
import { syncDir, writeFileAtomic } from './atomic-file';
import { KeyedLock } from './keyed-lock';
import type { OpenedResult, ResultSource, ResultStore, StoredResults } from './store';

const JOB_ID = /^[0-9a-zA-Z_-]{1,64}$/;

const metaSchema = z.object({
  jobId: z.string(),
  owner: z.string(),
  results: z.array(z.object({ filename: z.string(), filesize: z.number(), type: z.enum(['output', 'algorithmLog', 'configrationLog', 'publishLog']) })),
  expireTimestamp: z.number(),
  removed: z.boolean(),
});

/** A stored file name: the base name only, never a path, never `.`/`..`, no control characters. */
export function sanitizeFilename(name: string): string {
  const base = Array.from(path.posix.basename(name.replace(/\\/g, '/')), (c) => (c.charCodeAt(0) < 32 || c.charCodeAt(0) === 127 ? '_' : c)).join('');
  return base === '' || base === '.' || base === '..' ? 'file' : base;
}

function uniqueName(name: string, taken: Set<string>): string {
  if (!taken.has(name)) return name;
  const ext = path.extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let i = 1; ; i++) {
    const candidate = `${stem}-${i}${ext}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/**
 * Results on the local filesystem: `<dataDir>/results/<jobId>/files/<name>` plus `meta.json`. A save
 * builds the whole directory aside and swaps it in, so a retried publishing step replaces an earlier
 * attempt's files instead of mixing with them. Removal and expiry delete the files and keep the meta
 * (marked removed) so the job can still say what happened to its results.
 */
export class LocalResultStore implements ResultStore {
  private readonly root: string;
  private readonly lock = new KeyedLock();

  constructor(
    dataDir: string,
    private readonly now: () => number = Date.now,
  ) {
    this.root = path.join(dataDir, 'results');
  }

  private jobDir(jobId: string): string {
    if (!JOB_ID.test(jobId)) throw new NotFoundError('job_not_found', 'no such job');
    return path.join(this.root, jobId);
  }

  async save(jobId: string, owner: string, files: ResultSource[], expiresAtMs: number): Promise<ResultEntry[]> {
    const dir = this.jobDir(jobId);
    return this.lock.run(jobId, async () => {
      const existing = await this.readMeta(dir);
      if (existing?.removed) return []; // deleted by its owner meanwhile: results must not come back
      await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
      const tmp = path.join(this.root, `.tmp-${jobId}-${randomBytes(6).toString('hex')}`);
      try {
        const results = await this.writeFiles(path.join(tmp, 'files'), files);
        const meta: StoredResults = { jobId, owner: owner.toLowerCase(), results, expireTimestamp: Math.floor(expiresAtMs / 1000), removed: false };
        await writeFileAtomic(path.join(tmp, 'meta.json'), JSON.stringify(meta));
        await this.swapIn(tmp, dir);
        return results;
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
      }
    });
  }

  private async writeFiles(dir: string, files: ResultSource[]): Promise<ResultEntry[]> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const taken = new Set<string>();
    const results: ResultEntry[] = [];
    for (const source of files) {
      const filename = uniqueName(sanitizeFilename(source.filename), taken);
      taken.add(filename);
      let filesize = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          filesize += chunk.length;
          done(null, chunk);
        },
      });
      const target = path.join(dir, filename);
      await pipeline(source.open(), counter, createWriteStream(target, { mode: 0o600 }));
      const handle = await fs.open(target, 'r');
      await handle.sync().finally(() => handle.close());
      results.push({ filename, filesize, type: source.type });
    }
    await syncDir(dir);
    return results;
  }

  /** rename() cannot replace a non-empty directory: move the old one aside first, then drop it. */
  private async swapIn(tmp: string, dir: string): Promise<void> {
    const old = `${path.join(this.root, '.old-')}${path.basename(dir)}-${randomBytes(6).toString('hex')}`;
    let moved = false;
    try {
      await fs.rename(dir, old);
      moved = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await fs.rename(tmp, dir);
    await syncDir(this.root);
    if (moved) await fs.rm(old, { recursive: true, force: true });
  }

  private async readMeta(dir: string): Promise<StoredResults | null> {
    const file = path.join(dir, 'meta.json');
    // Most status reads ask about a job with no results yet: an existence check costs ≈1 µs, a failed open ≈50 µs of CPU (its error and stack).
    if (!existsSync(file)) return null;
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return metaSchema.parse(JSON.parse(text));
  }

  async get(jobId: string): Promise<StoredResults | null> {
    return this.readMeta(this.jobDir(jobId));
  }

  async open(jobId: string, filename: string, range?: { start: number; end?: number }): Promise<OpenedResult> {
    const dir = this.jobDir(jobId);
    const meta = await this.readMeta(dir);
    if (!meta || meta.removed) throw new NotFoundError('result_not_found', 'no results for this job');
    if (this.now() > meta.expireTimestamp * 1000) throw new NotFoundError('result_expired', 'the results of this job have expired');
    const name = sanitizeFilename(filename);
    if (!meta.results.some((r) => r.filename === name)) throw new NotFoundError('result_not_found', 'no such result file');
    const file = path.join(dir, 'files', name);
    let totalSize: number;
    try {
      totalSize = (await fs.stat(file)).size;
    } catch {
      throw new NotFoundError('result_not_found', 'no such result file');
    }
    if (!range) return { stream: createReadStream(file), length: totalSize, totalSize };
    // the caller parsed the Range header against the size it knew; the file itself has the last word
    const served = { start: range.start, end: Math.min(range.end ?? totalSize - 1, totalSize - 1) };
    if (served.start >= totalSize || served.end < served.start) throw new RangeNotSatisfiableError(totalSize);
    return { stream: createReadStream(file, served), length: served.end - served.start + 1, totalSize, range: served };
  }

  async remove(jobId: string): Promise<void> {
    const dir = this.jobDir(jobId);
    return this.lock.run(jobId, async () => {
      const meta = await this.readMeta(dir);
      await this.markRemoved(dir, meta ?? { jobId, owner: '', results: [], expireTimestamp: 0, removed: true });
    });
  }

  private async markRemoved(dir: string, meta: StoredResults): Promise<void> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // Mark first: once the meta says removed, nothing is served even if deleting the files is interrupted.
    await writeFileAtomic(path.join(dir, 'meta.json'), JSON.stringify({ ...meta, removed: true }));
    await fs.rm(path.join(dir, 'files'), { recursive: true, force: true });
  }

  async sweepExpired(nowMs: number): Promise<number> {
    let names: string[];
    try {
      names = await fs.readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let swept = 0;
    for (const jobId of names.filter((n) => JOB_ID.test(n))) {
      const dir = path.join(this.root, jobId);
      const didSweep = await this.lock.run(jobId, async () => {
        const meta = await this.readMeta(dir).catch(() => null);
        if (!meta || meta.removed || nowMs <= meta.expireTimestamp * 1000) return false;
        await this.markRemoved(dir, meta);
        return true;
      });
      if (didSweep) swept++;
    }
    return swept;
  }
}
