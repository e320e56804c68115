import fs from 'node:fs';
import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type { ProviderClient } from '../src/client/provider-client';
import type { JobView } from '../src/domain/job';
import { startLocalDockerEngine } from '../tools/docker-engine';
import { serveFiles, startLocalStack } from '../tools/local-stack';
import { benchTemporal } from './temporal';

/**
 * `npm run bench:docker` (also part of `npm run bench`): whole jobs on the docker backend — our own
 * Docker Engine (tools/ensure-docker.sh, root on Debian), its own Temporal dev server and provider.
 * A trivial Python algorithm image (Debian + numpy, pinned by digest). Prints the job overhead (wall
 * time − the algorithm's own run time), the run time of each step's activity (one container
 * lifecycle each), and throughput with maxJobs 4.
 */
const JOBS = 20;
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const ms = (x: number): string => `${x.toFixed(0)} ms`;
const trivial = "import json, time\nt0 = time.time() * 1000\njson.dump({'t0': t0, 't1': time.time() * 1000}, open('/data/outputs/t.json', 'w'))";

type Event = temporal.api.history.v1.IHistoryEvent;
const eventMs = (e: Event): number => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);

/** Run time (started → completed) of each activity type in one job's history. */
function activityTimes(events: Event[]): Map<string, number> {
  const byId = new Map(events.map((e) => [Number(e.eventId), e]));
  const t = new Map<string, number>();
  for (const e of events) {
    const c = e.activityTaskCompletedEventAttributes;
    const started = c && byId.get(Number(c.startedEventId));
    const type = c && byId.get(Number(c.scheduledEventId))?.activityTaskScheduledEventAttributes?.activityType?.name;
    if (started && type) t.set(type, (t.get(type) ?? 0) + eventMs(e) - eventMs(started));
  }
  return t;
}

async function algorithmMs(client: ProviderClient, job: JobView): Promise<number> {
  const index = job.results === '' ? -1 : job.results.findIndex((r) => r.filename === 't.json');
  const { t0, t1 } = (await (await client.result(job.jobId, index)).json()) as { t0: number; t1: number };
  return t1 - t0;
}

async function main(): Promise<void> {
  const engine = startLocalDockerEngine();
  const { dir, port, server: temporal } = await benchTemporal('c2d-bench-docker-');
  // the publisher's data server on loopback: the provider may fetch from it alone
  const data = await serveFiles({ 'data.csv': 'a,b\n1,2\n' });
  const stack = await startLocalStack({
    temporalAddress: `127.0.0.1:${port}`,
    allowHosts: [data.host],
    environments: [
      {
        id: 'bench',
        backend: 'docker',
        maxJobs: 4,
        ramGB: 0.5,
        maxJobDuration: 600,
        algorithmNetwork: false,
        docker: {
          socketPath: engine.socketPath,
          images: { configure: engine.images.configure, publish: engine.images.publish },
          allowedImages: ['127.0.0.1:5000/*'],
        },
      },
    ],
  });
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  const temporalClient = new Client({ connection });
  try {
    const consumers = Array.from({ length: JOBS }, () => stack.consumer());
    const client = consumers[0]!;
    const dataset = await stack.publish(client, {
      type: 'dataset',
      name: 'bench',
      urls: [data.url('data.csv')],
      compute: { allowRawAlgorithm: true },
      allow: consumers.map((c) => c.address),
    });
    const [image, checksum] = engine.images.pythonNumpy.split('@') as [string, string];
    const algorithm = { meta: { rawcode: trivial, container: { entrypoint: 'python3 $ALGO', image, tag: '', checksum } } };
    const start = (c: ProviderClient): Promise<JobView> =>
      c.startJob({ environment: 'bench', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });

    for (let i = 0; i < 3; i++) await client.waitForJob((await start(client)).jobId);

    const overheads: number[] = [];
    const steps = new Map<string, number[]>();
    for (let i = 0; i < JOBS; i++) {
      const done = await client.waitForJob((await start(client)).jobId, { intervalMs: 250 });
      if (done.status !== 70) throw new Error(`bench job ended in ${done.status}: ${JSON.stringify(done.terminationDetails)}`);
      overheads.push((Number(done.dateFinished) - Number(done.dateCreated)) * 1000 - (await algorithmMs(client, done)));
      const { events } = await temporalClient.workflow.getHandle(`c2d-${done.jobId}`).fetchHistory();
      for (const [k, v] of activityTimes(events ?? [])) steps.set(k, [...(steps.get(k) ?? []), v]);
    }

    const t = performance.now();
    const jobs = await Promise.all(consumers.map((c) => start(c)));
    const finished = await Promise.all(jobs.map((j, i) => consumers[i]!.waitForJob(j.jobId, { intervalMs: 250, timeoutMs: 600_000 })));
    const minutes = (performance.now() - t) / 60_000;

    console.log('Compute-to-Data benchmark (docker backend, Docker Engine, trivial Python image pinned by digest)');
    console.log(`machine: ${os.cpus().length} cores, node ${process.version}, load average ${os.loadavg()[0]?.toFixed(1)}`);
    console.log(`job overhead (wall time − algorithm run time), ${JOBS} jobs: p50 ${ms(percentile(overheads, 50))}, p99 ${ms(percentile(overheads, 99))}`);
    console.log('activity run time per job (p50; the step activities are one container lifecycle each):');
    for (const [k, v] of steps) console.log(`  ${k}: ${ms(percentile(v, 50))}`);
    const ok = finished.filter((j) => j.status === 70).length;
    console.log(`throughput, ${JOBS} jobs with maxJobs 4: ${(JOBS / minutes).toFixed(1)} jobs/min (${ok}/${JOBS} finished with status 70)`);
  } finally {
    data.close();
    await connection.close();
    await stack.stop();
    temporal.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
    engine.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
