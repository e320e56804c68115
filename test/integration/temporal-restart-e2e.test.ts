import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type LocalStack, serveFiles, startLocalStack } from '../../tools/local-stack';
import { Connection } from '@temporalio/client';
import { freePort, retentionFor, startDevServer } from '../../tools/temporal-server';
import { nodeRaw, resultText, waitFor } from './helpers';

/** Jobs live in the dev server's SQLite file: a restart of the server mid-job loses nothing. */
describe('a restart of the Temporal dev server mid-job', () => {
  let dir: string;
  let port: number;
  let uiPort: number;
  let server: ChildProcess;
  let stack: LocalStack;
  let data: Awaited<ReturnType<typeof serveFiles>>;

  const start = (): Promise<ChildProcess> =>
    startDevServer({
      port,
      uiPort,
      dbFile: path.join(dir, 'temporal.db'),
      namespace: 'default',
      headless: true,
      logFile: path.join(dir, 'temporal.log'),
      retentionSeconds: retentionFor([7 * 24 * 3600]),
    });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-restart-'));
    port = await freePort();
    uiPort = await freePort();
    server = await start();
    data = await serveFiles({ 'a.csv': 'a\n1\n' });
    stack = await startLocalStack({
      temporalAddress: `127.0.0.1:${port}`,
      environments: [{ id: 'restart', maxJobs: 2, ramGB: 0.25 }],
      allowHosts: [data.host],
    });
  });

  afterAll(async () => {
    await stack?.stop();
    server?.kill('SIGTERM');
    data?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('when the dev server is started for results kept 7 days, then finished jobs are kept at least as long (not its default 24 h)', async () => {
    const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    try {
      const ns = await connection.workflowService.describeNamespace({ namespace: 'default' });
      expect(Number(ns.config?.workflowExecutionRetentionTtl?.seconds)).toBeGreaterThanOrEqual(8 * 24 * 3600);
    } finally {
      await connection.close();
    }
  });

  it('when the server stops while the algorithm runs and comes back on the same db file, then the job completes', async () => {
    const client = stack.consumer();
    const dataset = await stack.publish(client, { type: 'dataset', name: 'a', urls: [data.url('a.csv')], compute: { allowRawAlgorithm: true } });
    const job = await client.startJob({
      environment: 'restart',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw("setTimeout(() => require('fs').writeFileSync('/data/outputs/out.txt', 'survived'), 5000)"),
    });
    await waitFor('the algorithm to run', async () => (await client.job(job.jobId))?.status === 40);
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    expect((await client.request('GET', `/api/services/compute?consumerAddress=${client.address}&jobId=${job.jobId}`)).status).toBe(503);
    await new Promise((r) => setTimeout(r, 2000));
    server = await start();
    await waitFor(
      'the API to reach Temporal again',
      async () => (await client.request('GET', `/api/services/compute?consumerAddress=${client.address}&jobId=${job.jobId}`)).status === 200,
      60_000,
      500,
    );
    const done = await client.waitForJob(job.jobId, { timeoutMs: 90_000, intervalMs: 500 });
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'out.txt')).toBe('survived');
  }, 120_000);
});
