import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { Wallet } from 'ethers';
import request from 'supertest';
import { signRequest } from '../helpers/api';
import { type ApiHarness, apiHarness, expectNoSecretLeaked } from './harness';

const RESULT = '/api/services/computeResult';
const LOGS = '/api/services/computeLogs';
const OUTPUT = 'The quick brown fox jumps over the lazy dog';

/** supertest parser that keeps an octet-stream body as bytes */
const bytes = (res: request.Response, done: (err: Error | null, body: Buffer) => void) => {
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => done(null, Buffer.concat(chunks)));
};

describe('API: results and logs', () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness();
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    h.cleanup();
  });

  const finish = async (jobId: string, owner: string, expiresAtMs = Date.now() + 3600_000) => {
    const results = await h.results.save(
      jobId,
      owner,
      [
        { filename: 'out.txt', type: 'output', open: () => Readable.from([Buffer.from(OUTPUT)]) },
        { filename: 'algorithm.log', type: 'algorithmLog', open: () => Readable.from([Buffer.from('stored log\n')]) },
      ],
      expiresAtMs,
    );
    h.jobs.set(jobId, { status: 70, results, expireTimestamp: Math.floor(expiresAtMs / 1000) });
  };

  const resultQuery = async (wallet: Wallet, jobId: string, index: number) => {
    const nonce = await h.nextNonce(wallet);
    return { consumerAddress: wallet.address, jobId, index, nonce, signature: await signRequest(wallet, [wallet.address, jobId, String(index)], nonce) };
  };

  const logsQuery = async (wallet: Wallet, jobId: string) => {
    const nonce = await h.nextNonce(wallet);
    return { consumerAddress: wallet.address, jobId, nonce, signature: await signRequest(wallet, [wallet.address, jobId], nonce) };
  };

  describe('computeResult', () => {
    it('when the owner downloads a result by index, then the file streams as an attachment with its length', async () => {
      const jobId = await h.startJob();
      await finish(jobId, h.consumer.address);
      const res = await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 0))
        .buffer(true)
        .parse(bytes)
        .expect(200);
      expect((res.body as Buffer).toString('utf8')).toBe(OUTPUT);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-disposition']).toBe('attachment;filename=out.txt'); // the form Ocean's client parses
      expect(res.headers['content-length']).toBe(String(OUTPUT.length));
      expect(res.headers['accept-ranges']).toBe('bytes');
    });

    it('when a Range is asked, then 206 with exactly those bytes and a Content-Range', async () => {
      const jobId = await h.startJob();
      await finish(jobId, h.consumer.address);
      const res = await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 0))
        .set('Range', 'bytes=4-8')
        .buffer(true)
        .parse(bytes)
        .expect(206);
      expect((res.body as Buffer).toString('utf8')).toBe('quick');
      expect(res.headers['content-range']).toBe(`bytes 4-8/${OUTPUT.length}`);
      expect(res.headers['content-length']).toBe('5');
      const tail = await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 0))
        .set('Range', 'bytes=-3')
        .buffer(true)
        .parse(bytes)
        .expect(206);
      expect((tail.body as Buffer).toString('utf8')).toBe('dog');
    });

    it('when the Range lies outside the file, then 416 with the size', async () => {
      const jobId = await h.startJob();
      await finish(jobId, h.consumer.address);
      const res = await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 0))
        .set('Range', 'bytes=999-')
        .expect(416);
      expect(res.headers['content-range']).toBe(`bytes */${OUTPUT.length}`);
      expect(res.body).toEqual({ error: 'Range not satisfiable' });
    });

    it("when another consumer asks for the owner's result, then 404 without details", async () => {
      const jobId = await h.startJob(h.consumer);
      await finish(jobId, h.consumer.address);
      const res = await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.other, jobId, 0))
        .expect(404);
      expect(res.body).toEqual({ error: 'Job not found' });
      expect(res.text).not.toContain(OUTPUT);
    });

    it('when the index is past the results, or results are not published yet, then 404', async () => {
      const jobId = await h.startJob();
      await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 0))
        .expect(404);
      await finish(jobId, h.consumer.address);
      await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 7))
        .expect(404);
    });

    it('when the results have expired or were deleted, then 404', async () => {
      const jobId = await h.startJob();
      await finish(jobId, h.consumer.address, Date.now() - 1000);
      await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, jobId, 0))
        .expect(404);
      const second = await h.startJob();
      await finish(second, h.consumer.address);
      await h.results.remove(second);
      await request(h.app)
        .get(RESULT)
        .query(await resultQuery(h.consumer, second, 0))
        .expect(404);
    });

    it('when the signature covers another index, then 401', async () => {
      const jobId = await h.startJob();
      await finish(jobId, h.consumer.address);
      const q = await resultQuery(h.consumer, jobId, 1);
      await request(h.app)
        .get(RESULT)
        .query({ ...q, index: 0 })
        .expect(401);
    });
  });

  describe('computeLogs', () => {
    let server: http.Server;
    let base: string;
    beforeEach(async () => {
      server = http.createServer(h.app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterEach(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    /** Opens the log stream and hands back the response once its headers are in. */
    const openLogs = (query: Record<string, string | number>) =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
        http.get(`${base}${LOGS}?${qs.toString()}`, resolve).on('error', reject);
      });
    const nextChunk = (res: http.IncomingMessage) => new Promise<string>((resolve) => res.once('data', (c: Buffer) => resolve(c.toString('utf8'))));

    it('when the algorithm is running, then its log streams live and the response ends when the step ends', async () => {
      const jobId = await h.startJob();
      h.jobs.set(jobId, { status: 40 });
      const log = h.backend.startLog(jobId);
      const res = await openLogs(await logsQuery(h.consumer, jobId));
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect(h.backend.logRequests.at(-1)).toMatchObject({ jobId, follow: true });

      const first = nextChunk(res);
      log.write('step 1\n');
      expect(await first).toBe('step 1\n');
      const second = nextChunk(res);
      log.write('step 2\n');
      expect(await second).toBe('step 2\n');
      const ended = new Promise<void>((resolve) => res.on('end', resolve));
      log.end();
      await ended;
    });

    it('when the client goes away, then the follow is aborted', async () => {
      const jobId = await h.startJob();
      h.jobs.set(jobId, { status: 40 });
      h.backend.startLog(jobId);
      const res = await openLogs(await logsQuery(h.consumer, jobId));
      res.destroy();
      const signal = h.backend.logRequests.at(-1)?.signal;
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(signal?.aborted).toBe(true);
    });

    it('when the results are published, then the stored algorithm log is served', async () => {
      const jobId = await h.startJob();
      await finish(jobId, h.consumer.address);
      const res = await request(h.app)
        .get(LOGS)
        .query(await logsQuery(h.consumer, jobId))
        .expect(200);
      expect(res.text).toBe('stored log\n');
      expect(h.backend.logRequests).toHaveLength(0);
    });

    it('when the algorithm has not started, then 404', async () => {
      const jobId = await h.startJob();
      const res = await request(h.app)
        .get(LOGS)
        .query(await logsQuery(h.consumer, jobId))
        .expect(404);
      expect(res.body.error).toMatch(/not started/);
    });

    it('when another consumer asks for the log, then 404 and the backend is never asked', async () => {
      const jobId = await h.startJob(h.consumer);
      h.jobs.set(jobId, { status: 40 });
      h.backend.startLog(jobId).write('private\n');
      const res = await request(h.app)
        .get(LOGS)
        .query(await logsQuery(h.other, jobId))
        .expect(404);
      expect(res.text).not.toContain('private');
      expect(h.backend.logRequests).toHaveLength(0);
    });
  });
});
