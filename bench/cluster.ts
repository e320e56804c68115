import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProviderClient } from '../src/client/provider-client';
import type { JobView } from '../src/domain/job';
import { migrateDatabase } from '../src/storage/pg-nonces';
import { type LocalStack, serveFiles, startLocalStack } from '../tools/local-stack';
import { freePort, startDevServer } from '../tools/temporal-server';
import { clusterProviderEnv, databaseUrlOf, removeScratch, scratchDir, startTestCluster, startTestS3 } from '../test/helpers/cluster';

/**
 * `npm run bench:cluster`: numbers, not assertions. The same trivial job on three set-ups, one after the
 * other on this machine: the Temporal dev server with one worker (the default), Temporal on PostgreSQL
 * with S3 results and PostgreSQL nonces with one worker, and the same with three workers (each with a data
 * dir of its own). Per set-up: a job's time from start to finished, one at a time (p50), and the throughput of 60 jobs started
 * at once by 30 consumers (maxJobs 6, shared by all workers of the task queue).
 */
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const trivial = "require('fs').writeFileSync('/data/outputs/ok', 'ok')";
const raw = { meta: { rawcode: trivial, container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` } } };
const BUCKET = 'c2d-bench';
const ENVIRONMENTS = [{ id: 'bench', maxJobs: 6, ramGB: 0.25, maxJobDuration: 600 }];

interface Figures {
  setup: string;
  overheadP50: number;
  jobsPerMinute: number;
  load: number;
}

async function measure(setup: string, stack: LocalStack, dataUrl: string): Promise<Figures> {
  const consumers = Array.from({ length: 30 }, () => stack.consumer());
  const client = consumers[0]!;
  const dataset = await stack.publish(client, {
    type: 'dataset',
    name: 'bench',
    urls: [dataUrl],
    compute: { allowRawAlgorithm: true },
    allow: consumers.map((c) => c.address),
  });
  const start = (c: ProviderClient) => c.startJob({ environment: 'bench', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });
  const finished = async (c: ProviderClient, jobId: string): Promise<JobView> => {
    const done = await c.waitForJob(jobId, { timeoutMs: 600_000, intervalMs: 250 });
    if (done.status !== 70) throw new Error(`${setup}: a job ended in ${done.status}: ${JSON.stringify(done.terminationDetails)}`);
    return done;
  };
  for (let i = 0; i < 3; i++) await finished(client, (await start(client)).jobId); // warm-up
  const overheads: number[] = [];
  for (let i = 0; i < 10; i++) {
    const done = await finished(client, (await start(client)).jobId);
    overheads.push((Number(done.dateFinished) - Number(done.dateCreated)) * 1000);
  }
  const t0 = performance.now();
  // two jobs per consumer, one after the other (its nonces in order); the consumers all at once
  const jobs = (await Promise.all(consumers.map(async (c) => [(await start(c)).jobId, (await start(c)).jobId].map((id) => ({ c, id }))))).flat();
  await Promise.all(jobs.map(({ c, id }) => finished(c, id)));
  const minutes = (performance.now() - t0) / 60_000;
  return { setup, overheadP50: percentile(overheads, 50), jobsPerMinute: jobs.length / minutes, load: os.loadavg()[0] ?? 0 };
}

async function main(): Promise<void> {
  const dir = scratchDir('bench-cluster');
  const data = await serveFiles({ 'data.csv': 'a,b\n1,2\n' });
  const figures: Figures[] = [];
  try {
    // 1. the dev server, one worker
    const port = await freePort();
    const dev = await startDevServer({
      port,
      uiPort: await freePort(),
      dbFile: path.join(dir, 'temporal.db'),
      namespace: 'default',
      headless: true,
      logFile: path.join(dir, 'dev.log'),
    });
    let stack = await startLocalStack({ temporalAddress: `127.0.0.1:${port}`, environments: ENVIRONMENTS, allowHosts: [data.host] });
    try {
      figures.push(await measure('dev server, 1 worker', stack, data.url('data.csv')));
    } finally {
      await stack.stop();
      dev.kill('SIGTERM');
      await new Promise((r) => (dev.exitCode === null ? dev.once('exit', r) : r(null)));
    }

    // 2. and 3. Temporal on PostgreSQL, S3 results, PostgreSQL nonces
    const s3 = await startTestS3(dir, [BUCKET]);
    const cluster = await startTestCluster(dir);
    try {
      await migrateDatabase(databaseUrlOf(cluster));
      const env = clusterProviderEnv(cluster, s3, BUCKET);
      for (const workers of [1, 3]) {
        stack = await startLocalStack({ temporalAddress: cluster.address, environments: ENVIRONMENTS, env, allowHosts: [data.host] });
        try {
          for (let w = 2; w <= workers; w++) {
            const own = path.join(stack.dataDir, `worker-${w}`);
            fs.mkdirSync(own, { mode: 0o755 });
            stack.addWorker(`w${w}`, { C2D_WORK_DIR: own, C2D_WORKER_HOST: `bench-w${w}` });
          }
          figures.push(await measure(`cluster (PostgreSQL, S3), ${workers} worker${workers > 1 ? 's' : ''}`, stack, data.url('data.csv')));
        } finally {
          await stack.stop();
        }
      }
    } finally {
      await Promise.all([cluster.stop(), s3.stop()]);
    }
  } finally {
    data.close();
    removeScratch(dir);
  }
  console.log(`Scale-out benchmark: ${os.cpus().length} cores, node ${process.version}; trivial node job, maxJobs 6`);
  console.log('| set-up | one job, created → finished, p50 | throughput (60 jobs at once) | load |');
  console.log('|---|---|---|---|');
  for (const f of figures) console.log(`| ${f.setup} | ${f.overheadP50.toFixed(0)} ms | ${f.jobsPerMinute.toFixed(1)} jobs/min | ${f.load.toFixed(1)} |`);
  const [one, three] = [figures[1], figures[2]];
  if (one && three)
    console.log(`3 workers / 1 worker throughput: ${(three.jobsPerMinute / one.jobsPerMinute).toFixed(2)} (this machine has ${os.cpus().length} cores)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
