import { Readable } from 'node:stream';
import type express from 'express';
import type { z } from 'zod';
import { NotFoundError } from '../../domain/errors';
import type { JobView } from '../../domain/job';
import { finalStatuses, JobStatus } from '../../domain/status';
import { followLiveLog, type JobOver } from '../../storage/live-logs';
import { requireSignedOrToken, type SignedForm } from '../auth';
import { authTokensOf } from '../auth-tokens';
import type { AppDeps } from '../deps';
import { ownedJob } from '../jobs';
import { requestedRange } from '../range';
import { bytesSchema, handledError, textSchema } from '../responses';
import { route, SERVICES } from '../route';
import { computeLogsSchema, computeResultSchema } from '../schemas';
import { sendStream } from '../stream';

/**
 * Ocean's Provider writes `attachment;filename=<name>` and its client (downloadFile) reads the name with
 * exactly that pattern; a name that is not a plain token gets the RFC 6266 form (quoted, plus filename*).
 */
function attachmentHeader(res: express.Response, filename: string): void {
  if (/^[A-Za-z0-9._-]+$/.test(filename)) res.set('Content-Disposition', `attachment;filename=${filename}`);
  else res.attachment(filename);
}

const storedAlgorithmLog = (job: JobView) => (Array.isArray(job.results) ? job.results.find((r) => r.type === 'algorithmLog') : undefined);

/** Once the job is over, the rest of its stored algorithm log from byte `from` (see JobOver); null while it runs. */
const jobOver =
  (deps: Pick<AppDeps, 'jobs' | 'results'>, jobId: string): JobOver =>
  async (from) => {
    const job = await deps.jobs.get(jobId);
    if (job && !finalStatuses.includes(job.status)) return null;
    const stored = job ? storedAlgorithmLog(job) : undefined;
    if (!stored || from >= stored.filesize) return { rest: null };
    return { rest: (await deps.results.open(jobId, stored.filename, { start: from })).stream };
  };

/**
 * The step's log as the backend streams it on this host, then what the stored log holds past it: a live
 * log opened as the job's files went away (the job just ended) ends short, the stored one is whole.
 */
function withStoredRest(live: Readable | null | undefined, over: JobOver): Readable | null {
  if (!live) return null;
  async function* whole(): AsyncGenerator<Buffer> {
    let sent = 0;
    for await (const chunk of live as AsyncIterable<Buffer>) {
      sent += chunk.length;
      yield chunk;
    }
    const ended = await over(sent);
    if (ended?.rest) yield* ended.rest as AsyncIterable<Buffer>;
  }
  return Readable.from(whole(), { objectMode: false });
}

/** Signed downloads: a result file (with byte ranges) and the algorithm's log (live while it runs). */
export const computeResult = route({
  name: 'computeResult',
  method: 'get',
  path: `${SERVICES}/computeResult`,
  summary:
    'Downloads one result file (signed: consumerAddress + jobId + index + nonce, or ocean-node\'s consumerAddress + nonce + "getComputeResult"); honours Range',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeResultSchema },
  responses: {
    200: { description: 'The file', type: 'application/octet-stream', schema: bytesSchema },
    206: { description: 'The requested byte range', type: 'application/octet-stream', schema: bytesSchema },
    416: handledError('Range not satisfiable'),
  },
  handler:
    (deps) =>
    async ({ input: q, req, res }) => {
      res.locals.jobId = q.jobId;
      // the Python Provider's form, or ocean-node's (ocean.js ≥ 4's getComputeResultUrl: signed, or an auth token)
      await requireSignedOrToken(deps.nonces, authTokensOf(deps), req, {
        address: q.consumerAddress,
        alternatives: [{ parts: [q.consumerAddress, q.jobId, q.index] }, { command: 'getComputeResult' }],
        nonce: q.nonce,
        signature: q.signature,
      });
      const job = await ownedJob(deps.jobs, q.jobId, q.consumerAddress);
      const entry = Array.isArray(job.results) ? job.results[Number(q.index)] : undefined;
      if (!entry) throw new NotFoundError('result_not_found', 'No result with this index');
      const opened = await deps.results.open(q.jobId, entry.filename, requestedRange(req, entry.filesize));
      attachmentHeader(res, entry.filename);
      res.set({
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(opened.length),
        'Accept-Ranges': 'bytes',
        'X-Content-Type-Options': 'nosniff',
      });
      if (opened.range) res.status(206).set('Content-Range', `bytes ${opened.range.start}-${opened.range.end}/${opened.totalSize}`);
      await sendStream(res, opened.stream, deps.logger);
    },
});

/**
 * The algorithm's log for its owner: the stored one once published, else the running step's, followed
 * until it ends (or the client leaves). Both generations' routes serve it; they differ in what is signed.
 */
const algorithmLog =
  (signedAs: (q: z.output<typeof computeLogsSchema>) => SignedForm) =>
  (deps: AppDeps) =>
  async ({ input: q, req, res }: { input: z.output<typeof computeLogsSchema>; req: express.Request; res: express.Response }): Promise<void> => {
    res.locals.jobId = q.jobId;
    await requireSignedOrToken(deps.nonces, authTokensOf(deps), req, { address: q.consumerAddress, ...signedAs(q), nonce: q.nonce, signature: q.signature });
    const job = await ownedJob(deps.jobs, q.jobId, q.consumerAddress);
    const textHeaders = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };

    const stored = storedAlgorithmLog(job);
    if (stored) {
      const opened = await deps.results.open(q.jobId, stored.filename);
      res.set({ ...textHeaders, 'Content-Length': String(opened.length) });
      await sendStream(res, opened.stream, deps.logger);
      return;
    }
    // Not published yet: follow the running step's log until the step ends (or the client leaves).
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    const over = jobOver(deps, q.jobId);
    const live = deps.liveLogs
      ? job.status >= JobStatus.RunningAlgorithm
        ? followLiveLog(deps.liveLogs, q.jobId, over, abort.signal)
        : null
      : withStoredRest(
          deps.backendFor(job.environment)?.openLog(q.jobId, 'algorithm', { follow: !finalStatuses.includes(job.status), signal: abort.signal }),
          over,
        );
    if (!live) throw new NotFoundError('log_not_available', 'The algorithm has not started yet');
    res.set(textHeaders).flushHeaders();
    await sendStream(res, live, deps.logger);
  };

export const computeLogs = route({
  name: 'computeLogs',
  method: 'get',
  path: `${SERVICES}/computeLogs`,
  summary: "The algorithm's log, streamed live while it runs (signed: consumerAddress + jobId + nonce)",
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeLogsSchema },
  responses: { 200: { description: 'Plain text', type: 'text/plain', schema: textSchema } },
  handler: algorithmLog((q) => ({ parts: [q.consumerAddress, q.jobId] })),
});

/** ocean.js ≥ 4's computeStreamableLogs (ocean-node's route): the same log, signed consumerAddress + nonce + "getComputeStreamableLogs". */
export const computeStreamableLogs = route({
  name: 'computeStreamableLogs',
  method: 'get',
  path: `${SERVICES}/computeStreamableLogs`,
  summary: 'The algorithm\'s log, streamed live while it runs (ocean-node\'s API; signed: consumerAddress + nonce + "getComputeStreamableLogs")',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: computeLogsSchema },
  responses: { 200: { description: 'Plain text', type: 'text/plain', schema: textSchema } },
  handler: algorithmLog(() => ({ command: 'getComputeStreamableLogs' })),
});

export const resultRoutes = [computeResult, computeLogs, computeStreamableLogs];
