import type express from 'express';
import { NotFoundError } from '../../domain/errors';
import type { JobView } from '../../domain/job';
import { finalStatuses, JobStatus } from '../../domain/status';
import { followLiveLog } from '../../storage/live-logs';
import { requireSignedRequest } from '../auth';
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

/** Signed downloads: a result file (with byte ranges) and the algorithm's log (live while it runs). */
export const computeResult = route({
  name: 'computeResult',
  method: 'get',
  path: `${SERVICES}/computeResult`,
  summary: 'Downloads one result file (signed: consumerAddress + jobId + index + nonce); honours Range',
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
      await requireSignedRequest(deps.nonces, {
        address: q.consumerAddress,
        parts: [q.consumerAddress, q.jobId, q.index],
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
  handler:
    (deps) =>
    async ({ input: q, res }) => {
      res.locals.jobId = q.jobId;
      await requireSignedRequest(deps.nonces, { address: q.consumerAddress, parts: [q.consumerAddress, q.jobId], nonce: q.nonce, signature: q.signature });
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
      const live = deps.liveLogs
        ? job.status >= JobStatus.RunningAlgorithm
          ? followLiveLog(deps.liveLogs, q.jobId, async () => finalStatuses.includes((await deps.jobs.get(q.jobId))?.status ?? 70), abort.signal)
          : null
        : deps.backendFor(job.environment)?.openLog(q.jobId, 'algorithm', { follow: !finalStatuses.includes(job.status), signal: abort.signal });
      if (!live) throw new NotFoundError('log_not_available', 'The algorithm has not started yet');
      res.set(textHeaders).flushHeaders();
      await sendStream(res, live, deps.logger);
    },
});

export const resultRoutes = [computeResult, computeLogs];
