import { createECDH } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { ProviderClient } from '../src/client/provider-client';
import type { JobView } from '../src/domain/job';
import { serveFiles, startLocalStack } from '../tools/local-stack';
import { getBytes, keccak256, verifyMessage, Wallet } from 'ethers';
import { decrypt, encrypt } from '../src/assets/ecies';
import { recoverMessageSigner } from '../src/chain/recover';
import { curveImplementation } from '../src/chain/secp256k1';
import { benchTemporal } from './temporal';
import { chainBench } from './chain';
import type { floorWorkflow } from './floor-workflow';

/**
 * `npm run bench`: numbers, not assertions. Starts its own Temporal dev server and provider, then measures
 * start latency, per-job overhead, throughput with maxJobs 4, and peak RSS of worker and API; then, on a
 * hardhat node of its own, order verification per item and the DDO indexer's catch-up over 500 assets.
 * `npm run bench -- jobs` or `-- chain` runs one part; `-- overhead` only the one-at-a-time jobs (with their stage times).
 * Every figure of the jobs part comes from one Temporal dev server, started with the flags `npm run temporal` uses,
 * beside the bare-Temporal floor measured on it: a workflow of as many no-op activities as a job runs.
 */
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const ms = (x: number): string => `${x.toFixed(0)} ms`;
/** the 1-minute load average, printed beside each figure: this machine is shared */
const load = (): string => `load average ${os.loadavg()[0]?.toFixed(1)}`;

// The algorithm reports its own run time (first line to last) in its output.
const trivial = "const t0=Date.now();require('fs').writeFileSync('/data/outputs/t.json',JSON.stringify({t0,t1:Date.now()}))";
const raw = { meta: { rawcode: trivial, container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` } } };

async function startJob(client: ProviderClient, dataset: string): Promise<{ job: JobView; latency: number }> {
  const t = performance.now();
  const job = await client.startJob({ environment: 'bench', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });
  return { job, latency: performance.now() - t };
}

async function algorithmMs(client: ProviderClient, job: JobView): Promise<number> {
  const index = job.results === '' ? -1 : job.results.findIndex((r) => r.filename === 't.json');
  const { t0, t1 } = (await (await client.result(job.jobId, index)).json()) as { t0: number; t1: number };
  return t1 - t0;
}

type Event = temporal.api.history.v1.IHistoryEvent;
const eventMs = (e: Event): number => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);

/**
 * Where one job's time goes, from its history: per activity type the queue time (scheduled → started) and
 * run time (started → completed); what remains of the workflow's span is workflow tasks and signals.
 */
function stageTimes(events: Event[]): Map<string, number> {
  const t = new Map<string, number>();
  const add = (k: string, v: number): void => void t.set(k, (t.get(k) ?? 0) + v);
  const byId = new Map(events.map((e) => [Number(e.eventId), e]));
  const t0 = eventMs(events[0]!);
  const done = events.find((e) => e.workflowExecutionCompletedEventAttributes);
  let activities = 0;
  for (const e of events) {
    const c = e.activityTaskCompletedEventAttributes;
    if (!c) continue;
    const scheduled = byId.get(Number(c.scheduledEventId));
    const started = byId.get(Number(c.startedEventId));
    const type = scheduled?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
    if (!scheduled || !started) continue;
    add(`${type} run`, eventMs(e) - eventMs(started));
    add('activity queue (scheduled → started)', eventMs(started) - eventMs(scheduled));
    activities += eventMs(e) - eventMs(scheduled);
  }
  const span = (done ? eventMs(done) : eventMs(events[events.length - 1]!)) - t0;
  add('workflow span (started → completed)', span);
  add('workflow tasks, signals, timers (span − activities)', span - activities);
  add('workflow tasks (count)', events.filter((e) => e.workflowTaskCompletedEventAttributes).length);
  return t;
}

/**
 * The bare-Temporal floor on this server: a workflow of `activities` no-op activities, started and awaited
 * from here (3 warm-up runs, then `runs` one at a time), on a worker of its own in this process.
 */
async function floorTimes(address: string, client: Client, activities: number, runs: number): Promise<number[]> {
  const connection = await NativeConnection.connect({ address });
  const taskQueue = 'bench-floor';
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowsPath: require.resolve('./floor-workflow'),
    activities: { noop: () => Promise.resolve() },
  });
  const times: number[] = [];
  try {
    await worker.runUntil(async () => {
      for (let i = 0; i < runs + 3; i++) {
        const t = performance.now();
        await client.workflow.execute<typeof floorWorkflow>('floorWorkflow', { taskQueue, workflowId: `bench-floor-${i}-${Date.now()}`, args: [activities] });
        if (i >= 3) times.push(performance.now() - t);
      }
    });
  } finally {
    await connection.close();
  }
  return times;
}

/** The fields of /proc/<pid>/stat after the command's closing parenthesis (the first is the state, field 3). */
const statFields = (pid: number | string): string[] => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()!.split(' ');
const ticks = (fields: string[], i: number): number => Number(fields[i - 3]) / 100; // USER_HZ

/**
 * CPU seconds a process used so far (user + system), itself and its children: those it reaped, and those
 * still alive (a supervisor lives on from job to job). What runs inside a bubblewrap sandbox is not among a
 * parent's reaped children (its own pid namespace): the step programs and the algorithms show only in the
 * machine's total.
 */
function cpuSeconds(pid: number | undefined): { self: number; children: number } {
  if (pid === undefined) return { self: NaN, children: NaN };
  const fields = statFields(pid);
  let children = ticks(fields, 16) + ticks(fields, 17);
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const child = statFields(entry);
      // field 4: the parent (a zombie counts too: its times join the parent's only once it is reaped)
      if (Number(child[1]) === pid) children += ticks(child, 14) + ticks(child, 15) + ticks(child, 16) + ticks(child, 17);
    } catch {
      // it ended meanwhile
    }
  }
  return { self: ticks(fields, 14) + ticks(fields, 15), children };
}

/** CPU seconds the whole machine was busy so far (every core, /proc/stat: all but idle and iowait). */
function machineBusySeconds(): number {
  const [, ...fields] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = fields.map(Number);
  return (n.reduce((a, b) => a + b, 0) - n[3]! - n[4]!) / 100; // USER_HZ
}

/** Where the machine's CPU went between two moments: per process of the stack, this bench process, and the machine in all. */
function cpuMeter(procs: Record<string, number | undefined>): () => string {
  const machine = machineBusySeconds();
  const before = Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const bench = process.cpuUsage();
  const t = performance.now();
  return () => {
    const wall = (performance.now() - t) / 1000;
    const parts = Object.entries(procs).map(([k, pid]) => {
      const now = cpuSeconds(pid);
      const b = before[k]!;
      const children = now.children - b.children;
      return `${k} ${(now.self - b.self).toFixed(1)} s${children > 0.05 ? ` (+${children.toFixed(1)} s its children)` : ''}`;
    });
    const own = process.cpuUsage(bench);
    return `CPU over ${wall.toFixed(1)} s: ${parts.join(', ')}, bench process ${((own.user + own.system) / 1e6).toFixed(1)} s; the machine ${(machineBusySeconds() - machine).toFixed(1)} s in all`;
  };
}

const peakRss = (pid: number | undefined): string => {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? `${(Number(m[1]) / 1024).toFixed(0)} MiB` : '?';
};

/**
 * What the curve costs per request (../src/chain/secp256k1): decrypting one file list (ECIES, done by the
 * API at each start and by the worker 2–3 times per job) beside node's x-only ECDH of the same point (the
 * decrypt before, without its square root and its second GCM try), and recovering the signer of a signed
 * request beside ethers' verifyMessage (the recovery before), in the same run.
 */
function curveBench(): void {
  const wallet = Wallet.createRandom();
  const files = Buffer.from(
    JSON.stringify({ did: 'did:op:x', serviceId: 'compute', files: [{ type: 'url', url: 'https://example.org/data.csv', method: 'GET' }] }),
  );
  const ciphertexts = Array.from({ length: 200 }, () => encrypt(wallet.signingKey.publicKey, files));
  const messages = ciphertexts.map((c) => getBytes(keccak256(c)));
  const signatures = messages.map((m) => wallet.signMessageSync(m));
  const time = (f: (i: number) => void): number[] => {
    f(0); // warm-up
    return ciphertexts.map((_c, i) => {
      const t = performance.now();
      f(i);
      return performance.now() - t;
    });
  };
  const p50 = (times: number[]): string => `${percentile(times, 50).toFixed(2)} ms`;
  const ecdh = createECDH('secp256k1');
  ecdh.setPrivateKey(Buffer.from(wallet.privateKey.slice(2), 'hex'));
  const decrypts = time((i) => decrypt(wallet.privateKey, ciphertexts[i]!));
  const xOnly = time((i) => ecdh.computeSecret(ciphertexts[i]!.subarray(0, 65)));
  const recoveries = time((i) => recoverMessageSigner(messages[i]!, signatures[i]!));
  const ethers = time((i) => verifyMessage(messages[i]!, signatures[i]!));
  console.log(`secp256k1 through ${curveImplementation}, 200 runs each (${load()}):`);
  console.log(`  ECIES decrypt of a file list: p50 ${p50(decrypts)} (node's x-only ECDH of its point alone, as before: p50 ${p50(xOnly)})`);
  console.log(`  signer of a signed request: p50 ${p50(recoveries)} (ethers' verifyMessage, as before: p50 ${p50(ethers)})`);
}

async function main(): Promise<void> {
  const part = process.argv[2] ?? 'all';
  if (!['all', 'jobs', 'overhead', 'chain'].includes(part)) throw new Error(`usage: npm run bench [-- jobs|overhead|chain], not ${part}`);
  if (part !== 'chain') curveBench();
  if (part !== 'chain') await jobsBench(part !== 'overhead');
  if (part === 'all' || part === 'chain') {
    console.log('Chain benchmark (hardhat node, Ocean contracts 2.0.3)');
    for (const line of await chainBench()) console.log(line);
  }
}

async function jobsBench(throughput: boolean): Promise<void> {
  const { dir, port, server: temporal } = await benchTemporal('c2d-bench-');
  const data = await serveFiles({ 'data.csv': 'a,b\n1,2\n' });
  const stack = await startLocalStack({
    temporalAddress: `127.0.0.1:${port}`,
    environments: [{ id: 'bench', maxJobs: 4, ramGB: 0.5, maxJobDuration: 600 }],
    allowHosts: [data.host],
  });
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  const temporalClient = new Client({ connection });
  try {
    // one consumer's signed starts are sequential by nature (strictly increasing nonces): 50 for throughput, 100 for the burst
    const consumers = Array.from({ length: 100 }, () => stack.consumer());
    const client = consumers[0]!;
    const dataset = await stack.publish(client, {
      type: 'dataset',
      name: 'bench',
      urls: [data.url('data.csv')],
      compute: { allowRawAlgorithm: true },
      allow: consumers.map((c) => c.address),
    });

    // Warm-up: worker caches, the environment's slot workflow, V8 JIT.
    let warm: JobView | undefined;
    for (let i = 0; i < 3; i++) warm = await client.waitForJob((await startJob(client, dataset)).job.jobId);
    // 0. The floor: as many no-op activities as a job runs (local activities excluded: they cost no dispatch).
    const { events: warmEvents } = await temporalClient.workflow.getHandle(`c2d-${warm?.jobId ?? ''}`).fetchHistory();
    const activityCount = (warmEvents ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length;
    const floor = await floorTimes(`127.0.0.1:${port}`, temporalClient, activityCount, 20);

    const meter = (): (() => string) => cpuMeter({ Temporal: temporal.pid, API: stack.api.pid, worker: stack.worker.pid });
    // 1. Start latency and per-job overhead, one job at a time.
    const oneAtATime = meter();
    const latencies: number[] = [];
    const overheads: number[] = [];
    const stages = new Map<string, number[]>();
    for (let i = 0; i < 20; i++) {
      const { job, latency } = await startJob(client, dataset);
      latencies.push(latency);
      // the figure comes from the workflow's own dates; slow polling keeps the measurement from loading the worker
      const done = await client.waitForJob(job.jobId, { intervalMs: 250 });
      if (done.status !== 70) throw new Error(`bench job ended in ${done.status}: ${JSON.stringify(done.terminationDetails)}`);
      const wall = (Number(done.dateFinished) - Number(done.dateCreated)) * 1000;
      overheads.push(wall - (await algorithmMs(client, done)));
      const { events } = await temporalClient.workflow.getHandle(`c2d-${job.jobId}`).fetchHistory();
      for (const [k, v] of stageTimes(events ?? [])) stages.set(k, [...(stages.get(k) ?? []), v]);
      if (i === 19 && process.env.BENCH_TIMELINE) {
        const t0 = eventMs(events?.[0] ?? {});
        for (const e of events ?? [])
          console.log(
            `  +${eventMs(e) - t0} ms ${String(e.eventType)} ${e.activityTaskScheduledEventAttributes?.activityType?.name ?? e.markerRecordedEventAttributes?.markerName ?? ''}`,
          );
      }
    }

    console.log('Compute-to-Data benchmark (process backend, trivial node algorithm)');
    console.log(
      `machine: ${os.cpus().length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}, load average ${os.loadavg()[0]?.toFixed(1)}`,
    );
    console.log(
      `start latency at rest (HTTP start → response), 20 jobs one at a time: p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))}`,
    );
    console.log(
      `bare-Temporal floor (workflow of ${activityCount} no-op activities, start → result), 20 runs: p50 ${ms(percentile(floor, 50))}, p99 ${ms(percentile(floor, 99))}`,
    );
    console.log(`job overhead (wall time − algorithm run time), 20 jobs: p50 ${ms(percentile(overheads, 50))}, p99 ${ms(percentile(overheads, 99))}`);
    console.log(`job overhead / floor, p50: ${(percentile(overheads, 50) / percentile(floor, 50)).toFixed(1)}`);
    console.log('one job, from its history (p50 over the 20 jobs):');
    for (const [k, v] of stages) console.log(`  ${k}: ${k.endsWith('(count)') ? percentile(v, 50) : ms(percentile(v, 50))}`);
    console.log(`  ${oneAtATime()}`);
    if (!throughput) return;

    // 2. Throughput: 50 jobs at once, maxJobs 4. It ends at the last job's own end (its dateFinished), not at
    // the poll that saw it: the consumers' polls (each its own job, every BENCH_POLL_MS) only tell when to look.
    const pollMs = Number(process.env.BENCH_POLL_MS ?? 1000);
    const fifty = consumers.slice(0, 50);
    const fiftyCpu = meter();
    const t0 = Date.now();
    const jobs = await Promise.all(fifty.map((c) => startJob(c, dataset)));
    const finished = await Promise.all(jobs.map(({ job }, i) => fifty[i]!.waitForJob(job.jobId, { intervalMs: pollMs, timeoutMs: 600_000 })));
    const minutes = (Math.max(...finished.map((j) => Number(j.dateFinished) * 1000)) - t0) / 60_000;
    const ok = finished.filter((j) => j.status === 70).length;
    console.log(
      `throughput, 50 jobs with maxJobs 4: ${(50 / minutes).toFixed(1)} jobs/min (${ok}/50 finished with status 70; each consumer polled its job every ${pollMs} ms; ${load()})`,
    );
    console.log(`  ${fiftyCpu()}`);

    // 3. Start latency while 100 consumers start a job at once (the jobs then run to their end).
    const burstCpu = meter();
    const burst = await Promise.all(consumers.map((c) => startJob(c, dataset)));
    const startsCpu = burstCpu();
    const burstLatencies = burst.map((b) => b.latency);
    console.log(
      `start latency, 100 consumers starting at once (HTTP start → response): p50 ${ms(percentile(burstLatencies, 50))}, p99 ${ms(percentile(burstLatencies, 99))} (${load()})`,
    );
    console.log(`  until the last start answered: ${startsCpu}`);
    const burstDone = await Promise.all(burst.map(({ job }, i) => consumers[i]!.waitForJob(job.jobId, { intervalMs: 1000, timeoutMs: 600_000 })));
    console.log(`  (${burstDone.filter((j) => j.status === 70).length}/100 of those jobs finished with status 70)`);
    console.log(`peak RSS: worker ${peakRss(stack.worker.pid)}, API ${peakRss(stack.api.pid)}`);
  } finally {
    data.close();
    await connection.close();
    await stack.stop();
    temporal.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
