import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { nodeRaw, resultText, waitFor } from './helpers';

/**
 * Two worker processes on one task queue, each with its own work dir (as two hosts would have): a job's
 * steps must all run on the worker that holds its workspace, and a worker killed mid-algorithm is waited
 * for — its job is never run again elsewhere — and re-attaches when it comes back.
 */
const SUM =
  "const rows = require('fs').readFileSync('/data/inputs/' + require('fs').readdirSync('/data/inputs')[0] + '/0', 'utf8').trim().split('\\n').slice(1); require('fs').writeFileSync('/data/outputs/sum.txt', String(rows.map((r) => r.split(',').map(Number)).reduce((a, [x, y]) => a + x + y, 0)));";

describe('several workers, each with its own work dir', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let workerB: ChildProcess;
  let workDirB: string;

  /** the host whose worker logged about this step of the job (its activities' lines carry their host queue) */
  const hostOf = (jobId: string, step: string): string | undefined => {
    for (const line of stack.output().split('\n')) {
      if (!line.includes(jobId) || !line.includes(`"step":"${step}"`)) continue;
      const m = /"hostQueue":"[^"@]*@(host-[ab])"/.exec(line);
      if (m) return m[1];
    }
    return undefined;
  };

  beforeAll(async () => {
    data = await serveFiles({ 'rows.csv': 'x,y\n1,2\n3,4\n5,6\n' });
    stack = await startStack({
      environments: [{ id: 'multi', maxJobs: 6, ramGB: 0.25, maxJobDuration: 300 }],
      env: { C2D_LOG_LEVEL: 'info', C2D_WORKER_HOST: 'host-a' },
      allowHosts: [data.host],
    });
    workDirB = path.join(stack.dataDir, 'host-b');
    workerB = stack.addWorker('b', { C2D_WORK_DIR: workDirB, C2D_WORKER_HOST: 'host-b' });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
  });

  const start = (rawcode: string) =>
    client.startJob({ environment: 'multi', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: nodeRaw(rawcode) });

  test('when jobs spread over both workers, then each one runs all its steps on one host and ends 70 with its output', async () => {
    const hosts = new Set<string>();
    let jobs = 0;
    // the worker that runs a job's workflow task places it: in a few rounds both hosts get some
    for (let round = 0; round < 5 && hosts.size < 2; round++) {
      const started = [];
      for (let i = 0; i < 6; i++) started.push(await start(SUM)); // one consumer: its nonces in order
      const done: JobView[] = await Promise.all(started.map((j) => client.waitForJob(j.jobId, { timeoutMs: 120_000, intervalMs: 300 })));
      for (const job of done) {
        expect({ jobId: job.jobId, status: job.status, details: job.terminationDetails }).toMatchObject({ status: 70 });
        expect(await resultText(client, job, 'sum.txt')).toBe('21');
        const host = hostOf(job.jobId, 'configure');
        expect(host).toBeDefined();
        expect([hostOf(job.jobId, 'algorithm'), hostOf(job.jobId, 'publish')]).toEqual([host, host]);
        hosts.add(host!);
        jobs++;
      }
    }
    expect([...hosts].sort()).toEqual(['host-a', 'host-b']);
    expect(jobs).toBeGreaterThanOrEqual(6);
  });

  test('when the worker holding a running algorithm is killed, then no other worker runs it; restarted, it re-attaches and the job completes, its algorithm started once', async () => {
    const job = await start("require('fs').appendFileSync('/data/outputs/starts.txt', 'start\\n'); setTimeout(() => console.log('done'), 6000)");
    const host = await waitFor('the algorithm to start', () => hostOf(job.jobId, 'algorithm'), 60_000, 100);
    const victim = host === 'host-a' ? stack.worker : workerB;
    victim.kill('SIGKILL');
    await new Promise((r) => victim.once('exit', r));
    // the other worker polls the same shared queue, but the step waits on the dead host's own queue
    await new Promise((r) => setTimeout(r, 12_000)); // past the step's 10 s heartbeat timeout: the retry is scheduled
    expect((await client.job(job.jobId))?.status).toBe(40);
    expect(
      stack
        .output()
        .split('\n')
        .filter((l) => l.includes(job.jobId) && l.includes('"hostQueue"') && l.includes('"msg":"step started"') && l.includes('"step":"algorithm"')),
    ).toHaveLength(1);
    if (host === 'host-a') stack.startWorker();
    else workerB = stack.addWorker('b', { C2D_WORK_DIR: workDirB, C2D_WORKER_HOST: 'host-b' });
    const done = await client.waitForJob(job.jobId, { timeoutMs: 90_000 });
    // a failure says how the step ended and what the workers said of it
    const said = stack
      .output()
      .split('\n')
      .filter((l) => l.includes(job.jobId) && /supervisor|re-attach|step ended|lost/.test(l));
    expect({ status: done.status, details: done.terminationDetails, said: done.status === 70 ? [] : said }).toMatchObject({ status: 70, said: [] });
    expect(await resultText(client, done, 'starts.txt')).toBe('start\n');
    expect(await resultText(client, done, 'algorithm.log')).toContain('done');
    expect(fs.existsSync(path.join(host === 'host-a' ? stack.dataDir : workDirB, 'jobs', job.jobId))).toBe(false);
  }, 180_000);
});
