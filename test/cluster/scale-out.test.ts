import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Wallet } from 'ethers';
import { isFinal, ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { migrateDatabase } from '../../src/storage/pg-nonces';
import { type LocalStack, serveFiles, startLocalStack } from '../../tools/local-stack';
import type { S3Server } from '../../tools/s3-server';
import type { TemporalCluster } from '../../tools/temporal-cluster';
import { clusterProviderEnv, databaseUrlOf, removeScratch, scratchDir, startTestCluster, startTestS3 } from '../helpers/cluster';
import { resultText } from '../integration/helpers';

const JOBS = 200;
const CONSUMERS = 10;
const BUCKET = 'c2d-scale';
/** sums the rows; appends a mark to its outputs, so a second start in the same workspace would show */
const SUM = [
  "const fs = require('fs');",
  "fs.appendFileSync('/data/outputs/starts.txt', 'start\\n');",
  "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
  "const rows = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split('\\n').slice(1);",
  // it runs a while, so a worker killed at a random moment holds some running algorithm
  "setTimeout(() => fs.writeFileSync('/data/outputs/sum.txt', String(rows.map((r) => r.split(',').map(Number)).reduce((a, [x, y]) => a + x + y, 0))), 1500);",
].join('\n');
const raw = { meta: { rawcode: SUM, container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'a'.repeat(64)}` } } };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A job's status as any API that answers says it; a 5xx or a refused connection (Temporal restarting, an API stopped) is asked again. */
async function waitFinal(clients: ProviderClient[], jobId: string, timeoutMs: number): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const job = await clients[i % clients.length]!.job(jobId).catch(() => undefined);
    if (job && isFinal(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} not final after ${timeoutMs} ms: ${JSON.stringify(job)}`);
    await sleep(500);
  }
}

/**
 * Past one machine, on one machine: Temporal on PostgreSQL, results in S3, nonces in PostgreSQL, two API
 * processes and three worker processes, each with a data dir of its own (settings and catalog copied
 * in, nothing shared through a disk). 200 jobs started across both APIs; meanwhile a worker is killed
 * with `kill -9` (and started again later, with its own work dir), the Temporal server is restarted and
 * one API is stopped. Every job ends 70 with its output, downloadable from either API; no algorithm
 * started twice; the same nonce sent to both APIs at once is accepted once.
 */
describe('scale-out: 2 APIs and 3 workers on the cluster parts', () => {
  let dir: string;
  let cluster: TemporalCluster;
  let s3: S3Server;
  let stack: LocalStack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  const dirs: Record<string, string> = {};
  let own: (name: string) => Record<string, string>;

  beforeAll(async () => {
    dir = scratchDir('scale');
    s3 = await startTestS3(dir, [BUCKET]);
    cluster = await startTestCluster(dir);
    await migrateDatabase(databaseUrlOf(cluster));
    data = await serveFiles({ 'rows.csv': 'x,y\n1,2\n3,4\n5,6\n' });
    const environments = [{ id: 'scale', maxJobs: 6, ramGB: 0.25, maxJobDuration: 600 }];
    /** a process's own data dir, with its own copy of the settings file and the catalog */
    own = (name: string) => {
      const d = (dirs[name] ??= path.join(dir, name));
      fs.mkdirSync(path.join(d, 'catalog'), { recursive: true, mode: 0o755 });
      fs.chmodSync(d, 0o755);
      fs.writeFileSync(path.join(d, 'environments.json'), JSON.stringify(environments));
      return { C2D_DATA_DIR: d, C2D_CATALOG_DIR: path.join(d, 'catalog'), C2D_ENVIRONMENTS_FILE: path.join(d, 'environments.json') };
    };
    stack = await startLocalStack({
      temporalAddress: cluster.address,
      environments,
      env: { ...clusterProviderEnv(cluster, s3, BUCKET), C2D_LOG_LEVEL: 'info' },
      workerEnv: { ...own('w1'), C2D_WORKER_HOST: 'w1' },
      allowHosts: [data.host],
    });
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    await Promise.all([cluster?.stop(), s3?.stop()]);
    if (dir) removeScratch(dir);
  });

  test('when an API on another host than the worker follows a running algorithm, then it streams the log live through the bucket, each line once', async () => {
    const client = new ProviderClient(stack.baseUrl, new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`));
    const dataset = await stack.publish(client, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    fs.cpSync(stack.catalogDir, path.join(dirs.w1!, 'catalog'), { recursive: true }); // the worker's own copy
    const ticks = "let i = 0; const t = setInterval(() => { console.log('tick ' + ++i); if (i === 6) clearInterval(t); }, 500);";
    const job = await client.startJob({
      environment: 'scale',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: { meta: { rawcode: ticks, container: raw.meta.container } },
    });
    for (let t = Date.now(); (await client.job(job.jobId))?.status !== 40;) {
      if (Date.now() - t > 60_000) throw new Error('the algorithm did not start');
      await sleep(100);
    }
    // the API's data dir holds no workspace of this job: what it streams comes from the bucket
    expect(fs.existsSync(path.join(stack.dataDir, 'jobs', job.jobId))).toBe(false);
    const res = await client.logs(job.jobId);
    expect(res.status).toBe(200);
    let streamed = '';
    let firstWhileRunning: number | undefined;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      streamed += Buffer.from(chunk).toString();
      if (firstWhileRunning === undefined && streamed.includes('tick 1')) firstWhileRunning = (await client.job(job.jobId))?.status;
    }
    expect(firstWhileRunning).toBe(40);
    // and the worker never had to give up shipping (a failure says what it logged)
    const shipping = stack
      .output()
      .split('\n')
      .filter((l) => l.includes(job.jobId) && l.includes('live log'));
    expect({ streamed, shipping }).toEqual({ streamed: ['tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5', 'tick 6', ''].join('\n'), shipping: [] });
    const done = await waitFinal([client], job.jobId, 60_000);
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'algorithm.log')).toBe(streamed);
    // once the job is cleaned up, its live chunks are gone from the bucket (the stored log stays)
    const objects = new S3Client({ endpoint: s3.endpoint, region: s3.region, credentials: s3.credentials, forcePathStyle: true });
    try {
      for (let t = Date.now(); ;) {
        const listed = await objects.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `live/${job.jobId}/` }));
        if ((listed.Contents ?? []).length === 0) break;
        if (Date.now() - t > 30_000) throw new Error(`live chunks left: ${JSON.stringify(listed.Contents?.map((o) => o.Key))}`);
        await sleep(200);
      }
    } finally {
      objects.destroy();
    }
  }, 120_000);

  test('200 jobs through a worker crash, a Temporal restart and a stopped API: every job 70, each algorithm started once, a nonce accepted once', async () => {
    const wallets = Array.from({ length: CONSUMERS }, () => new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`));
    const publisher = new ProviderClient(stack.baseUrl, wallets[0]!);
    const dataset = await stack.publish(publisher, {
      type: 'dataset',
      name: 'rows',
      urls: [data.url('rows.csv')],
      compute: { allowRawAlgorithm: true },
      allow: wallets.map((w) => w.address),
    });
    const copyCatalog = (): void => {
      for (const name of Object.keys(dirs)) fs.cpSync(stack.catalogDir, path.join(dirs[name]!, 'catalog'), { recursive: true });
    };
    const api2Env = { ...own('api2') };
    const workers: Record<string, ChildProcess> = { w1: stack.worker };
    for (const w of ['w2', 'w3']) workers[w] = stack.addWorker(w, { ...own(w), C2D_WORKER_HOST: w });
    copyCatalog();
    let api2 = await stack.addApi('2', api2Env);
    const apis = (): string[] => [stack.baseUrl, api2.baseUrl];

    // 10 consumers, 20 jobs each, in nonce order per consumer, alternating the APIs
    const started = await Promise.all(
      wallets.map(async (wallet, c) => {
        const ids: string[] = [];
        for (let i = 0; i < JOBS / CONSUMERS; i++) {
          const client = new ProviderClient(apis()[(c + i) % 2]!, wallet);
          const job = await client.startJob({ environment: 'scale', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });
          ids.push(job.jobId);
        }
        return ids;
      }),
    );
    const jobIds = started.flat();
    expect(new Set(jobIds).size).toBe(JOBS);
    const owner = new Map(started.flatMap((ids, c) => ids.map((id) => [id, wallets[c]!] as const)));

    // a quarter done, then: kill -9 a worker that runs an algorithm, restart Temporal, stop API 2
    const stored = (): number =>
      stack
        .output()
        .split('\n')
        .filter((l) => l.includes('"msg":"results stored"')).length;
    for (let t = Date.now(); stored() < JOBS / 4;) {
      if (Date.now() - t > 300_000) throw new Error(`only ${stored()} jobs stored after 5 min`);
      await sleep(500);
    }
    /** an algorithm that a worker of w2/w3 started and has not ended: the kill interrupts it */
    const runningAlgorithm = (): { jobId: string; host: string } | undefined => {
      const startedOn = new Map<string, string>();
      const ended = new Set<string>();
      for (const l of stack.output().split('\n')) {
        const m = /"hostQueue":"[^"@]*@(w[23])","jobId":"([0-9a-f]{32})","step":"algorithm"/.exec(l);
        if (m && l.includes('"msg":"step started"')) startedOn.set(m[2]!, m[1]!);
        if (m && l.includes('"msg":"step ended"')) ended.add(m[2]!);
      }
      for (const [jobId, host] of startedOn) if (!ended.has(jobId)) return { jobId, host };
      return undefined;
    };
    let interrupted: { jobId: string; host: string } | undefined;
    for (let t = Date.now(); !(interrupted = runningAlgorithm());) {
      if (Date.now() - t > 120_000) throw new Error('no algorithm running on w2 or w3');
      await sleep(100);
    }
    const victim = interrupted.host;
    workers[victim]!.kill('SIGKILL');
    await cluster.restartServer({ hard: true });
    api2.process.kill('SIGTERM');
    await sleep(15_000); // past the steps' 10 s heartbeat timeout: the victim's steps wait on its queue
    workers[victim] = stack.addWorker(victim, { ...own(victim), C2D_WORKER_HOST: victim });
    api2 = await stack.addApi('2', api2Env);

    const api1Client = (id: string): ProviderClient => new ProviderClient(stack.baseUrl, owner.get(id)!);
    const done: JobView[] = [];
    for (const id of jobIds) done.push(await waitFinal([api1Client(id), new ProviderClient(api2.baseUrl, owner.get(id)!)], id, 600_000));
    const failed = done.filter((j) => j.status !== 70);
    // a failure says what the processes logged about its job
    const told = failed.flatMap((j) =>
      stack
        .output()
        .split('\n')
        .filter((l) => l.includes(j.jobId)),
    );
    expect({ failed: failed.map((j) => ({ jobId: j.jobId, status: j.status, details: j.terminationDetails })), told }).toEqual({ failed: [], told: [] });

    // every output, from either API (the same bucket); each algorithm's own mark says it started once
    for (const [i, job] of done.entries()) {
      const client = new ProviderClient(apis()[i % 2]!, owner.get(job.jobId)!);
      expect(await resultText(client, job, 'sum.txt')).toBe('21');
      expect(await resultText(client, job, 'starts.txt')).toBe('start\n');
    }
    // and no worker launched an algorithm twice: one launch line per job, across all workers
    const output = stack.output();
    const launches = new Map<string, number>();
    for (const m of output.matchAll(/"backend":"process","jobId":"([0-9a-f]{32})","step":"algorithm","supervisorPid":\d+,"msg":"step started"/g))
      launches.set(m[1]!, (launches.get(m[1]!) ?? 0) + 1);
    const outputLines = output.split('\n');
    const algorithmLines = (id: string): string[] => outputLines.filter((l) => l.includes(`"jobId":"${id}","step":"algorithm"`));
    // (the live-log test's job ran on this stack too: only these 200 count). A worker killed after handing a
    // step to its supervisor but before logging the launch leaves no line: such a job must have been
    // re-attached by the restarted worker on the victim's host (starts.txt above says it ran once).
    const reattachedOnVictim = (id: string): boolean =>
      algorithmLines(id).some((l) => l.includes('"msg":"step ended"') && l.includes(`@${victim}"`) && l.includes('"reattached":true'));
    expect(
      jobIds
        .filter((id) => (launches.get(id) ?? 0) > 1 || (!launches.has(id) && !reattachedOnVictim(id)))
        .map((id) => ({ id, launches: launches.get(id) ?? 0, lines: algorithmLines(id) })),
    ).toEqual([]);
    // the algorithm the kill interrupted was re-attached by the restarted worker, on its own host
    const endOfInterrupted = algorithmLines(interrupted.jobId).filter((l) => l.includes('"msg":"step ended"'));
    expect(endOfInterrupted).toEqual([expect.stringContaining(`@${victim}"`)]);
    expect(endOfInterrupted[0]).toContain('"reattached":true');

    // the same signed request sent to both APIs at once: one nonce store, accepted once
    const job = done[0]!;
    const client = api1Client(job.jobId);
    const index = job.results === '' ? -1 : job.results.findIndex((r) => r.filename === 'sum.txt');
    const { nonce, signature } = await client.sign(client.address, job.jobId, String(index));
    const query = `consumerAddress=${client.address}&jobId=${job.jobId}&index=${index}&nonce=${nonce}&signature=${signature}`;
    const answers = await Promise.all(apis().map((base) => fetch(`${base}/api/services/computeResult?${query}`).then((r) => r.status)));
    expect(answers.sort()).toEqual([200, 401]);
  }, 1_500_000);
});
