import { trustedAlgorithm } from '../../tools/catalog/catalog-publisher';
import type { ProviderClient } from '../../src/client/provider-client';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { jobPids, nodeRaw, readLiveLogUntil, resultText, waitFor } from './helpers';

const SUM_JS = [
  "const fs = require('fs');",
  "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
  "const rows = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split('\\n').slice(1);",
  "const sum = rows.map((r) => r.split(',').map(Number)).reduce((a, [x, y]) => a + x + y, 0);",
  "console.log('rows', rows.length);",
  "fs.writeFileSync('/data/outputs/sum.txt', String(sum));",
].join('\n');
const CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20' };

/** One provider (worker + API processes, real Temporal, real sandbox) driven over HTTP like a consumer. */
describe('a compute job over HTTP', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let algorithm: string;

  beforeAll(async () => {
    data = await serveFiles({
      'rows.csv': 'x,y\n1,2\n3,4\n5,6\n',
      'sum.js': SUM_JS,
    });
    stack = await startStack({
      environments: [
        { id: 'e2e', maxJobs: 3, ramGB: 0.5, maxJobDuration: 600 },
        { id: 'e2e-short', maxJobs: 2, ramGB: 0.5, maxJobDuration: 3 },
      ],
    });
    client = stack.consumer();
    algorithm = await stack.publish(client, { type: 'algorithm', name: 'sum', urls: [data.url('sum.js')], container: CONTAINER });
    dataset = await stack.publish(client, {
      type: 'dataset',
      name: 'rows',
      urls: [data.url('rows.csv')],
      compute: { allowRawAlgorithm: true, publisherTrustedAlgorithms: [trustedAlgorithm(algorithm, CONTAINER, [SUM_JS])] },
    });
  });

  afterAll(async () => {
    await stack?.stop();
    data?.close();
  });

  it('when a consumer starts a trusted algorithm, then the job goes 1 → … → 70 and the output and logs download', async () => {
    const started = await client.startJob({
      environment: 'e2e',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: { documentId: algorithm, serviceId: 'algo' },
    });
    expect(started).toMatchObject({
      owner: client.address.toLowerCase(),
      status: 1,
      stopreq: 0,
      removed: 0,
      algoDID: algorithm,
      inputDID: [dataset],
      results: '',
    });
    expect(started.jobId).toMatch(/^[0-9a-f]{32}$/);
    const seen: number[] = [];
    const done = await client.waitForJob(started.jobId, { intervalMs: 20, onChange: (j) => seen.push(j.status) });
    expect(done.status).toBe(70);
    expect(seen[seen.length - 1]).toBe(70);
    expect(seen.every((s, i) => i === 0 || s > (seen[i - 1] ?? 0))).toBe(true); // never goes backwards
    expect(done.terminationDetails).toMatchObject({ exitCode: 0, oomKilled: false });
    expect(Number(done.dateFinished)).toBeGreaterThanOrEqual(Number(done.dateCreated));
    expect(done.results).toEqual(
      expect.arrayContaining([
        { filename: 'sum.txt', filesize: 2, type: 'output' },
        expect.objectContaining({ filename: 'algorithm.log', type: 'algorithmLog' }),
        expect.objectContaining({ filename: 'configure.log', type: 'configrationLog' }),
        expect.objectContaining({ filename: 'publish.log', type: 'publishLog' }),
      ]),
    );
    expect(await resultText(client, done, 'sum.txt')).toBe('21');
    expect(await resultText(client, done, 'algorithm.log')).toContain('rows 3');
    const res = await client.result(done.jobId, 0, { range: 'bytes=0-0' });
    expect(res.status).toBe(206);
  });

  it('when the consumer passes userdata, then the algorithm reads it from /data/inputs/userdata.json', async () => {
    const job = await client.startJob({
      environment: 'e2e',
      dataset: { documentId: dataset, serviceId: 'compute', userdata: { rows: 2 } },
      algorithm: nodeRaw("require('fs').copyFileSync('/data/inputs/userdata.json', '/data/outputs/u.json')"),
    });
    const done = await client.waitForJob(job.jobId);
    expect(done.status).toBe(70);
    expect(JSON.parse(await resultText(client, done, 'u.json'))).toEqual({ [dataset]: { rows: 2 } });
  });

  it('when the owner stops a running job, then stopreq is 1, its processes are gone within 2 s and the log so far is kept', async () => {
    const job = await client.startJob({
      environment: 'e2e',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw("console.log('working'); setInterval(() => {}, 1000)"),
    });
    await waitFor('the algorithm to run', async () => (await client.job(job.jobId))?.status === 40 && jobPids(job.jobId).length > 0);
    expect(await readLiveLogUntil(client, job.jobId, 'working')).toContain('working'); // live, while it runs
    const t = Date.now();
    const stopped = await client.stopJob(job.jobId);
    expect(stopped?.stopreq).toBe(1);
    await waitFor('the processes to be gone', () => jobPids(job.jobId).length === 0, 2_000, 20);
    expect(Date.now() - t).toBeLessThan(2_000);
    const done = await client.waitForJob(job.jobId);
    expect(done).toMatchObject({ status: 70, stopreq: 1 });
    expect(await resultText(client, done, 'algorithm.log')).toContain('working');
  });

  it('when a job runs past maxJobDuration, then it ends with stopreq 2', async () => {
    const job = await client.startJob({
      environment: 'e2e-short',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw('setInterval(() => {}, 1000)'),
    });
    const done = await client.waitForJob(job.jobId, { timeoutMs: 30_000 });
    expect(done).toMatchObject({ stopreq: 2 });
    expect(done.terminationDetails?.reason).toMatch(/maxJobDuration/);
    expect(jobPids(job.jobId)).toEqual([]);
  });

  it('when the worker is killed -9 while the algorithm runs, then a new worker completes the job and the algorithm ran once', async () => {
    const job = await client.startJob({
      environment: 'e2e',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw("require('fs').appendFileSync('/data/outputs/starts.txt', 'start\\n'); setTimeout(() => console.log('done'), 4000)"),
    });
    await waitFor('the algorithm to run', async () => (await client.job(job.jobId))?.status === 40 && jobPids(job.jobId).length > 0);
    stack.worker.kill('SIGKILL');
    await new Promise((r) => stack.worker.once('exit', r));
    expect(jobPids(job.jobId).length).toBeGreaterThan(0); // the step outlives the worker, as a pod outlives its operator
    stack.startWorker();
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(70);
    expect(done.terminationDetails?.exitCode).toBe(0);
    expect(await resultText(client, done, 'starts.txt')).toBe('start\n');
    expect(await resultText(client, done, 'algorithm.log')).toContain('done');
  });

  it('when 100 consumers start a job at once, then there are 100 jobs and none is lost', async () => {
    const consumers = Array.from({ length: 100 }, () => stack.consumer());
    const sets = await Promise.all(
      consumers.map(async (c) => {
        const d = await stack.publish(c, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
        return { c, d };
      }),
    );
    const jobs = await Promise.all(
      sets.map(({ c, d }) =>
        c.startJob({
          environment: 'e2e',
          dataset: { documentId: d, serviceId: 'compute' },
          algorithm: nodeRaw("require('fs').writeFileSync('/data/outputs/ok', 'ok')"),
        }),
      ),
    );
    expect(new Set(jobs.map((j) => j.jobId)).size).toBe(100);
    const done = await Promise.all(jobs.map((j, i) => consumers[i]!.waitForJob(j.jobId, { timeoutMs: 240_000, intervalMs: 500 }))).catch((e) => {
      console.log(
        stack
          .output()
          .split('\n')
          .filter((l) => l.includes('failed') || l.includes('rror'))
          .join('\n'),
      );
      throw e;
    });
    expect(done.filter((j) => j.status === 70)).toHaveLength(100);
    // each consumer sees exactly their own job
    const mine = await (await consumers[7]!.request('GET', `/api/services/compute?consumerAddress=${consumers[7]!.address}`)).json();
    expect(mine).toHaveLength(1);
  }, 300_000);
});
