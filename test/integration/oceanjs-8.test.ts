import crypto from 'node:crypto';
import { Wallet } from 'ethers';
import { ProviderClient } from '../../src/client/provider-client';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { nodeRaw } from './helpers';

/** The calls of the lib's ProviderInstance this test makes, as they are declared in its types (an ES module's types, which this CommonJS project cannot import). */
interface ComputeJob {
  jobId: string;
  status: number;
  statusText: string;
  results: { filename: string }[];
}
interface ProviderInstance {
  getComputeEnvironments(nodeUri: string): Promise<{ id: string; consumerAddress: string; free?: object; resources?: { id: string }[] }[]>;
  freeComputeStart(
    nodeUri: string,
    signer: Wallet | string,
    env: string,
    datasets: { documentId: string; serviceId: string }[],
    algorithm: object,
  ): Promise<ComputeJob | ComputeJob[]>;
  computeStatus(nodeUri: string, signer: Wallet | string, jobId: string): Promise<ComputeJob | ComputeJob[]>;
  computeStreamableLogs(nodeUri: string, signer: Wallet, jobId: string): Promise<AsyncIterable<Uint8Array> | null>;
  getComputeResultUrl(nodeUri: string, signer: Wallet, jobId: string, index: number): Promise<string>;
  computeStop(jobId: string, nodeUri: string, signer: Wallet | string): Promise<ComputeJob | ComputeJob[]>;
  generateAuthToken(signer: Wallet, nodeUri: string): Promise<string>;
  invalidateAuthToken(signer: Wallet, token: string, nodeUri: string): Promise<{ success: boolean }>;
}
// Loaded the way a consumer loads it, unmodified.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ProviderInstance } = require('@oceanprotocol/lib-8') as { ProviderInstance: ProviderInstance };

const FINAL = [2, 31, 32, 41, 42, 61, 62, 70];
const COUNT_JS = [
  "const fs = require('fs');",
  "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
  "const rows = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split('\\n');",
  "console.log('rows', rows.length);",
  "fs.writeFileSync('/data/outputs/count.txt', `rows=${rows.length}`);",
].join('\n');

/**
 * Today's Ocean client, @oceanprotocol/lib 8.6.2, unmodified, against our whole stack (API + worker
 * processes, Temporal, sandbox) through ocean-node's compute API: environments, a free job from start to
 * its result, the live log, and stop. (Paid jobs through Escrow are issue 14's next part.)
 */
describe('@oceanprotocol/lib 8.6.2 drives free compute on this provider unmodified', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let consumer: Wallet;
  let dataset: string;
  let url: string;

  beforeAll(async () => {
    data = await serveFiles({ 'rows.csv': 'a\nb\nc\n' });
    stack = await startStack({
      environments: [
        { id: 'v2-free', desc: 'free jobs for ocean.js 8', maxJobs: 2, ramGB: 0.5, maxJobDuration: 600, free: { maxJobDuration: 60, maxJobs: 2 } },
      ],
    });
    url = stack.baseUrl;
    consumer = new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`);
    dataset = await stack.publish(new ProviderClient(url, consumer), {
      type: 'dataset',
      name: 'rows',
      urls: [data.url('rows.csv')],
      compute: { allowRawAlgorithm: true },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
  });

  const one = (jobs: ComputeJob | ComputeJob[]): ComputeJob => (Array.isArray(jobs) ? jobs[0]! : jobs);
  const waitStatus = async (jobId: string, done: (s: number) => boolean, timeoutMs = 60_000): Promise<ComputeJob> => {
    for (const t = Date.now(); ; await new Promise((r) => setTimeout(r, 300))) {
      const job = one(await ProviderInstance.computeStatus(url, consumer, jobId));
      if (done(job.status)) return job;
      if (Date.now() - t > timeoutMs) throw new Error(`job ${jobId} still at ${job.status} (${job.statusText})`);
    }
  };
  const start = async (rawcode: string): Promise<ComputeJob> =>
    one(await ProviderInstance.freeComputeStart(url, consumer, 'v2-free', [{ documentId: dataset, serviceId: 'compute' }], nodeRaw(rawcode)));

  test('when it lists environments, then it finds ours with resources and free limits', async () => {
    const envs = await ProviderInstance.getComputeEnvironments(url);
    const env = envs.find((e) => e.id === 'v2-free');
    expect(env).toMatchObject({ consumerAddress: expect.stringMatching(/^0x[0-9a-fA-F]{40}$/), free: { maxJobDuration: 60, maxJobs: 2 } });
    expect(env!.resources!.map((r) => r.id)).toEqual(['cpu', 'ram', 'disk']);
  });

  test('when it starts a free job, then the job reaches 70 in ocean-node statuses, the log streams, and the result downloads', async () => {
    const started = await start(COUNT_JS);
    expect(started).toMatchObject({ jobId: expect.stringMatching(/^[0-9a-f]{32}$/), status: 1, statusText: 'Job queued' });
    const done = await waitStatus(started.jobId, (s) => FINAL.includes(s));
    expect({ status: done.status, statusText: done.statusText }).toEqual({ status: 70, statusText: 'Job finished' });

    const log = await ProviderInstance.computeStreamableLogs(url, consumer, started.jobId);
    let text = '';
    for await (const chunk of log!) text += Buffer.from(chunk).toString();
    expect(text).toBe('rows 3\n');

    const index = done.results.findIndex((r) => r.filename === 'count.txt');
    const resultUrl = await ProviderInstance.getComputeResultUrl(url, consumer, started.jobId, index);
    const res = await fetch(resultUrl);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('rows=3');
  });

  test('when it follows the log of a running job, then the lines stream while the algorithm runs, each once, and the stream ends with the job', async () => {
    const started = await start("let i = 0; const t = setInterval(() => { console.log('tick ' + ++i); if (i === 4) clearInterval(t); }, 400);");
    await waitStatus(started.jobId, (s) => s === 40);
    const log = await ProviderInstance.computeStreamableLogs(url, consumer, started.jobId);
    let text = '';
    let statusAtFirstLine: number | undefined;
    for await (const chunk of log!) {
      text += Buffer.from(chunk).toString();
      if (statusAtFirstLine === undefined && text.includes('tick 1'))
        statusAtFirstLine = one(await ProviderInstance.computeStatus(url, consumer, started.jobId)).status;
    }
    expect(statusAtFirstLine).toBe(40);
    expect(text).toBe('tick 1\ntick 2\ntick 3\ntick 4\n');
    expect((await waitStatus(started.jobId, (s) => FINAL.includes(s))).status).toBe(70);
  });

  test('when it stops a running free job, then the job ends 70 with its stop recorded', async () => {
    const started = await start("console.log('started'); setInterval(() => {}, 1000);");
    await waitStatus(started.jobId, (s) => s === 40);
    const stopped = one(await ProviderInstance.computeStop(started.jobId, url, consumer));
    expect(stopped.jobId).toBe(started.jobId);
    const done = await waitStatus(started.jobId, (s) => FINAL.includes(s));
    expect(done).toMatchObject({ status: 70, stopreq: 1 });
  });

  test('when it works with an auth token, then start, status and stop need no signature; once invalidated, the token is refused', async () => {
    const token = await ProviderInstance.generateAuthToken(consumer, url);
    const started = one(
      await ProviderInstance.freeComputeStart(url, token, 'v2-free', [{ documentId: dataset, serviceId: 'compute' }], nodeRaw('setInterval(() => {}, 1000);')),
    );
    expect(one(await ProviderInstance.computeStatus(url, token, started.jobId)).jobId).toBe(started.jobId);
    await waitStatus(started.jobId, (s) => s === 40);
    expect(one(await ProviderInstance.computeStop(started.jobId, url, token)).jobId).toBe(started.jobId);
    expect(await waitStatus(started.jobId, (s) => FINAL.includes(s))).toMatchObject({ status: 70, stopreq: 1 });
    expect(await ProviderInstance.invalidateAuthToken(consumer, token, url)).toEqual({ success: true });
    await expect(ProviderInstance.computeStop(started.jobId, url, token)).rejects.toThrow(/invalid_token|Invalid auth token/);
  });
});
