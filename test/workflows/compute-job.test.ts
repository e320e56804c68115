import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { AccessDeniedError } from '../../src/domain/errors';
import type { JobView } from '../../src/domain/job';
import { TemporalJobsService } from '../../src/temporal/client';
import { statusQuery } from '../../src/workflows/definitions';
import { C2DAlgorithmDid, C2DDatasetDids, C2DEnvironment, C2DOwner, C2DStatus } from '../../src/workflows/search-attributes';
import { eventually, finalJobView, historyText, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { environment, fakeWorld, jobInput, type JobScript, newOwner, SECRET } from './fakes';

const env = environment({ id: uniqueName('env'), maxJobs: 8, maxJobDuration: 120, storageExpiry: 3600 });
const shortEnv = environment({ id: uniqueName('short'), maxJobs: 8, maxJobDuration: 2 });
// a docker environment: its algorithm image is prepared (pulled) by an activity of its own, outside maxJobDuration
const dockerEnv = environment({ id: uniqueName('docker'), backend: 'docker', maxJobs: 8, maxJobDuration: 2 });
const world = fakeWorld([env, shortEnv, dockerEnv]);
let tw: TestWorker;
let jobs: TemporalJobsService;

beforeAll(async () => {
  tw = await startTestWorker(world.activities);
  jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results: world.results });
}, 120_000);

afterAll(async () => {
  await tw?.stop();
});

const finalView = (jobId: string): Promise<JobView> => finalJobView(jobs, jobId);

const statusOf = async (jobId: string): Promise<number | undefined> => (await jobs.get(jobId))?.status;

/** C2DStatus values the workflow upserted, in order. */
function upsertedStatuses(history: temporal.api.history.v1.IHistory): number[] {
  return (history.events ?? []).flatMap((e) => {
    const payload = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.C2DStatus;
    return payload ? [defaultPayloadConverter.fromPayload<number>(payload)] : [];
  });
}

async function startScripted(script: JobScript, environmentId = env.id): Promise<JobView> {
  const input = jobInput(environmentId);
  world.backend.scripts.set(input.jobId, script);
  return jobs.start(input);
}

describe('computeJob', () => {
  test('when a job runs, then it moves 1 → 20 → 30 → 40 → 60 → 70, keeps C2DStatus current and publishes its results', async () => {
    const input = jobInput(env.id);
    world.backend.scripts.set(input.jobId, { configure: { hold: true }, algorithm: { hold: true }, publish: { hold: true } });
    const started = await jobs.start(input);
    expect(started).toMatchObject({
      jobId: input.jobId,
      owner: input.owner,
      status: 1,
      statusText: 'Warming up',
      stopreq: 0,
      removed: 0,
      results: '',
      environment: env.id,
      algoDID: input.algorithm.kind === 'published' ? input.algorithm.did : '',
      inputDID: [input.datasets[0]?.did],
      dateFinished: null,
    });

    const { jobId } = input;
    await eventually(() => world.backend.isWaiting(jobId, 'configure'));
    expect(await statusOf(jobId)).toBe(20);
    world.backend.release(jobId, 'configure');
    await eventually(() => world.backend.isWaiting(jobId, 'algorithm'));
    expect(await statusOf(jobId)).toBe(40);
    world.backend.release(jobId, 'algorithm');
    await eventually(() => world.backend.isWaiting(jobId, 'publish'));
    const publishing = await jobs.get(jobId);
    expect(publishing).toMatchObject({ status: 60, statusText: 'Publishing results', results: '' });
    world.backend.release(jobId, 'publish');

    const done = await finalView(jobId);
    expect(done).toMatchObject({ status: 70, statusText: 'Job finished', stopreq: 0, removed: 0, terminationDetails: { exitCode: 0, oomKilled: false } });
    expect(done.results).toEqual([
      { filename: 'out.txt', filesize: Buffer.byteLength(`result of ${jobId}\n`), type: 'output' },
      { filename: 'algorithm.log', filesize: 18, type: 'algorithmLog' },
      { filename: 'configure.log', filesize: 15, type: 'configrationLog' },
    ]);
    expect(Number(done.dateFinished)).toBeGreaterThanOrEqual(Number(done.dateCreated));
    expect(done.expireTimestamp).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 3600 - 60);
    expect(done.expireTimestamp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 3600);
    expect(world.results.jobs.get(jobId)?.owner).toBe(input.owner);
    await eventually(() => world.backend.cleanups.includes(jobId), 10_000, 'cleanup');

    const handle = tw.client.workflow.getHandle(`c2d-${jobId}`);
    const desc = await handle.describe();
    expect(desc.typedSearchAttributes.get(C2DStatus)).toBe(70);
    expect(desc.typedSearchAttributes.get(C2DOwner)).toBe(input.owner);
    expect(desc.typedSearchAttributes.get(C2DEnvironment)).toBe(env.id);
    expect(desc.typedSearchAttributes.get(C2DDatasetDids)).toEqual(input.datasets.map((d) => d.did));
    expect(desc.typedSearchAttributes.get(C2DAlgorithmDid)).toBe(started.algoDID);
    const history = await handle.fetchHistory();
    expect(upsertedStatuses(history)).toEqual([20, 30, 40, 60, 70]);
    // the Web UI shows each activity with a readable summary, and the job with one
    const summaries = (history.events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => Buffer.from(e.userMetadata?.summary?.data ?? []).toString());
    // authorize, verify orders, configure, algorithm, publish, cleanup (the slot is asked for by a local activity: a marker)
    expect(summaries).toHaveLength(6);
    for (const s of summaries) expect(s).toMatch(/^"[A-Z].{10,}"$/);
    expect(summaries.join()).toContain('Run the algorithm');
    expect(Buffer.from(history.events?.[0]?.userMetadata?.summary?.data ?? []).toString()).toContain(`Compute job on ${env.id}`);

    // the algorithm got the §5 environment
    const algoEnv = world.backend.algorithmRequests.get(jobId)?.algorithm?.env;
    expect(algoEnv).toEqual({
      DIDS: JSON.stringify(input.datasets.map((d) => d.did)),
      TRANSFORMATION_DID: started.algoDID,
      VOLUME: '/data',
      INPUTS: '/data/inputs',
      OUTPUTS: '/data/outputs',
      LOGS: '/data/logs',
      ALGO: '/data/transformations/algorithm',
    });
  });

  test("when a running job's status is read, then it comes from describe without a query, and is the view its status query gives", async () => {
    const started = await startScripted({ configure: { hold: true }, algorithm: { hold: true }, publish: { hold: true } });
    const { jobId } = started;
    const handle = tw.client.workflow.getHandle(`c2d-${jobId}`);
    const queried = async (): Promise<JobView> => ({ ...(await handle.query(statusQuery)), removed: 0 });
    const queries = jest.spyOn(tw.client.workflowService, 'queryWorkflow');
    const readWithoutQuery = async (): Promise<JobView | null> => {
      queries.mockClear();
      const view = await jobs.get(jobId);
      expect(queries).not.toHaveBeenCalled();
      return view;
    };
    try {
      await eventually(() => world.backend.isWaiting(jobId, 'configure'));
      expect(await readWithoutQuery()).toEqual(await queried());
      world.backend.release(jobId, 'configure');
      await eventually(() => world.backend.isWaiting(jobId, 'algorithm'));
      expect(await readWithoutQuery()).toEqual(await queried());
      // a stop shows at once (stopreq 1), while the job still runs what follows it
      expect(await jobs.stop(jobId)).toMatchObject({ stopreq: 1 });
      await eventually(() => world.backend.isWaiting(jobId, 'publish'));
      const publishing = await readWithoutQuery();
      expect(publishing).toMatchObject({ status: 60, stopreq: 1, results: '', dateFinished: null, terminationDetails: null });
      expect(publishing).toEqual(await queried());
      world.backend.release(jobId, 'publish');
      // once it ended its view comes from its result, as before
      const done = await finalView(jobId);
      expect(done).toMatchObject({ stopreq: 1, dateFinished: expect.any(String) });
      expect(done).toEqual({ ...(await handle.result()), removed: 0 });
    } finally {
      queries.mockRestore();
    }
  });

  test('when the algorithm image is pulled (docker), then status reads say so from describe, and stop saying it once it ran', async () => {
    const started = await startScripted({ prepare: { ms: 2500 }, algorithm: { hold: true } }, dockerEnv.id);
    const { jobId } = started;
    const handle = tw.client.workflow.getHandle(`c2d-${jobId}`);
    await eventually(() => world.backend.prepares.some((p) => p.jobId === jobId));
    const pulling = await eventually(async () => {
      const view = await jobs.get(jobId);
      return view?.pullingImage ? view : undefined;
    });
    expect(pulling).toEqual({ ...(await handle.query(statusQuery)), removed: 0 });
    await eventually(() => world.backend.isWaiting(jobId, 'algorithm'));
    const running = await jobs.get(jobId);
    expect(running).toMatchObject({ status: 40 });
    expect(running).not.toHaveProperty('pullingImage');
    await jobs.stop(jobId);
    await finalView(jobId);
  });

  test('when a job ran, then its decrypted file locations reached the configuration step but never the history', async () => {
    const started = await startScripted({});
    await finalView(started.jobId);
    const spec = world.backend.configureSpecs.get(started.jobId);
    expect(JSON.stringify(spec)).toContain(SECRET);
    const text = historyText(await tw.client.workflow.getHandle(`c2d-${started.jobId}`).fetchHistory());
    expect(text).toContain(started.inputDID[0]); // payloads are decoded: the ids are readable
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('files.example');
  });

  test('when the owner stops a running algorithm, then the steps are killed at once, the logs are kept and the job ends with stopreq 1', async () => {
    const started = await startScripted({ algorithm: { hold: true } });
    const { jobId } = started;
    await eventually(() => world.backend.isWaiting(jobId, 'algorithm'));
    const asked = Date.now();
    const view = await jobs.stop(jobId);
    expect(view).toMatchObject({ jobId, stopreq: 1 });
    const stopCall = await eventually(() => world.backend.stopCalls.find((c) => c.jobId === jobId), 5000, 'stopSteps');
    expect(stopCall.at - asked).toBeLessThan(2000);

    const done = await finalView(jobId);
    expect(done).toMatchObject({ status: 70, stopreq: 1, terminationDetails: { exitCode: null, oomKilled: false, reason: 'stopped by owner' } });
    expect(done.results).toEqual(expect.arrayContaining([expect.objectContaining({ filename: 'algorithm.log', type: 'algorithmLog' })]));
    expect(world.backend.calls.filter((c) => c.jobId === jobId).map((c) => c.step)).toEqual(['configure', 'algorithm', 'publish']);
    await eventually(() => world.backend.cleanups.includes(jobId), 10_000, 'cleanup');

    // stopping a finished job changes nothing
    expect(await jobs.stop(jobId)).toEqual(done);
  });

  test('when a job outlives maxJobDuration, then it is stopped with stopreq 2', async () => {
    const started = await startScripted({ algorithm: { hold: true } }, shortEnv.id);
    const done = await finalView(started.jobId);
    expect(done).toMatchObject({ status: 70, stopreq: 2, terminationDetails: { exitCode: null, oomKilled: false, reason: 'exceeded maxJobDuration' } });
    expect(world.backend.stopCalls.some((c) => c.jobId === started.jobId)).toBe(true);
    expect(done.results).toEqual(expect.arrayContaining([expect.objectContaining({ filename: 'algorithm.log' })]));
  });

  test('when the algorithm image takes longer to pull than maxJobDuration (docker), then the job is not stopped: the deadline starts with the algorithm', async () => {
    const started = await startScripted({ prepare: { ms: 3000 }, algorithm: { ms: 1000 } }, dockerEnv.id);
    const done = await finalView(started.jobId);
    expect({ status: done.status, stopreq: done.stopreq }).toEqual({ status: 70, stopreq: 0 });
    const prepared = world.backend.prepares.find((p) => p.jobId === started.jobId);
    const algorithm = world.backend.calls.find((c) => c.jobId === started.jobId && c.step === 'algorithm');
    expect(prepared?.endedAt).toBeLessThanOrEqual(algorithm?.at ?? 0);
  });

  test('when the algorithm runs past maxJobDuration after a slow pull (docker), then it is stopped its whole maxJobDuration after it started', async () => {
    const started = await startScripted({ prepare: { ms: 2500 }, algorithm: { hold: true } }, dockerEnv.id);
    const done = await finalView(started.jobId);
    expect(done).toMatchObject({ status: 70, stopreq: 2, terminationDetails: { reason: 'exceeded maxJobDuration' } });
    const prepared = world.backend.prepares.find((p) => p.jobId === started.jobId);
    const stop = world.backend.stopCalls.find((c) => c.jobId === started.jobId);
    expect((stop?.at ?? 0) - (prepared?.endedAt ?? Infinity)).toBeGreaterThanOrEqual(2000);
  });

  test('when the algorithm image cannot be pulled (docker), then the job ends 32 naming it and the algorithm never runs', async () => {
    const reason = 'image-pull: could not pull image reg.example/algo@sha256:00: manifest unknown';
    const started = await startScripted({ prepare: { outcome: { exitCode: null, reason } } }, dockerEnv.id);
    const done = await finalView(started.jobId);
    expect(done).toMatchObject({
      status: 32,
      terminationDetails: { reason: 'algorithm could not start: could not pull image reg.example/algo@sha256:00: manifest unknown' },
    });
    expect(world.backend.calls.filter((c) => c.jobId === started.jobId).map((c) => c.step)).toEqual(['configure', 'publish']);
  });

  test('when the environment runs no images (process), then no image is prepared', async () => {
    const started = await startScripted({}, env.id);
    await finalView(started.jobId);
    expect(world.backend.prepares.some((p) => p.jobId === started.jobId)).toBe(false);
  });

  const failures: [string, JobScript, number, Record<string, unknown>][] = [
    [
      'authorization refuses the dataset',
      { authorizeError: new AccessDeniedError('dataset', 'credentials_not_allowed', 'dataset: consumer not in allow list') },
      31,
      { exitCode: null, oomKilled: false, reason: 'dataset: consumer not in allow list' },
    ],
    [
      'authorization refuses the algorithm',
      { authorizeError: new AccessDeniedError('algorithm', 'not_trusted_algo') },
      32,
      { exitCode: null, reason: 'algorithm: not_trusted_algo' },
    ],
    [
      'a dataset cannot be fetched',
      { configure: { outcome: { exitCode: 10, report: { ok: false, failed: 'dataset', index: 0, reason: 'dataset 0 file 0: HTTP 404' } } } },
      31,
      { exitCode: 10, reason: 'could not fetch the dataset: dataset 0 file 0: HTTP 404' },
    ],
    [
      'the algorithm cannot be fetched',
      { configure: { outcome: { exitCode: 11, report: { ok: false, failed: 'algorithm', index: 0, reason: 'algorithm file 0: HTTP 500' } } } },
      32,
      { exitCode: 11, reason: 'could not fetch the algorithm: algorithm file 0: HTTP 500' },
    ],
    [
      'the configuration step crashes',
      { configure: { outcome: { exitCode: 1, report: { ok: false, reason: 'internal error (EACCES)' } } } },
      31,
      { exitCode: 1, reason: 'could not fetch the inputs: internal error (EACCES)' },
    ],
    ['the algorithm exits with 3', { algorithm: { outcome: { exitCode: 3 } } }, 41, { exitCode: 3, oomKilled: false, reason: 'algorithm exited with code 3' }],
    [
      'the algorithm runs out of memory',
      { algorithm: { outcome: { exitCode: 137, oomKilled: true, reason: 'oom' } } },
      41,
      { exitCode: 137, oomKilled: true, reason: 'algorithm ran out of memory and was killed' },
    ],
    [
      'the algorithm is killed by a signal',
      { algorithm: { outcome: { exitCode: null, reason: 'signal:SIGSEGV' } } },
      41,
      { exitCode: null, reason: 'algorithm was killed by SIGSEGV' },
    ],
    [
      'the algorithm writes too much',
      { algorithm: { outcome: { exitCode: null, reason: 'output-limit' } } },
      42,
      { reason: 'algorithm wrote more output than the environment allows' },
    ],
    [
      'publishing fails',
      { publish: { outcome: { exitCode: 2 } } },
      62,
      { exitCode: 2, reason: 'could not publish results: publishing step exited with code 2' },
    ],
  ];

  const named = failures.map(([what, script, status, details]) => [`${what}, then the job ends with status ${status}`, script, status, details] as const);
  test.each(named)('when %s', async (_what, script, status, details) => {
    const started = await startScripted(script);
    const done = await finalView(started.jobId);
    expect(done.status).toBe(status);
    expect(done.terminationDetails).toMatchObject(details);
    expect(done.dateFinished).not.toBeNull();
    expect(Array.isArray(done.results)).toBe(true);
    const ran = world.backend.calls.filter((c) => c.jobId === started.jobId).map((c) => c.step);
    if (status === 41 || status === 42) {
      // the logs of a failed algorithm are still published
      expect(ran).toEqual(['configure', 'algorithm', 'publish']);
      expect(done.results).toEqual(expect.arrayContaining([expect.objectContaining({ filename: 'algorithm.log' })]));
    }
    if (script.authorizeError) expect(ran).toEqual([]);
    await eventually(() => world.backend.cleanups.includes(started.jobId), 10_000, 'cleanup');
    const history = await tw.client.workflow.getHandle(`c2d-${started.jobId}`).fetchHistory();
    expect(upsertedStatuses(history).at(-1)).toBe(status);
  });

  test('when the same job is started twice, then there is one workflow and one run of the algorithm', async () => {
    const input = jobInput(env.id);
    const [a, b] = await Promise.all([jobs.start(input), jobs.start(input)]);
    expect(a.jobId).toBe(input.jobId);
    expect(b.jobId).toBe(input.jobId);
    await finalView(input.jobId);
    const again = await jobs.start(input);
    expect(again.status).toBe(70);
    const runs: string[] = [];
    for await (const info of tw.client.workflow.list({ query: `WorkflowId = 'c2d-${input.jobId}'` })) runs.push(info.runId);
    expect(runs).toHaveLength(1);
    expect(world.backend.calls.filter((c) => c.jobId === input.jobId && c.step === 'algorithm')).toHaveLength(1);
  });

  test('when an owner lists jobs, then exactly their jobs come back, newest first', async () => {
    const owner = newOwner();
    const first = await jobs.start(jobInput(env.id, { owner }));
    const second = await jobs.start(jobInput(env.id, { owner, createdAt: Date.now() + 1 }));
    await jobs.start(jobInput(env.id));
    const listed = await eventually(
      async () => {
        const l = await jobs.listByOwner(owner);
        return l.length === 2 ? l : undefined;
      },
      20_000,
      'visibility',
    );
    expect(listed.map((j) => j.jobId)).toEqual([second.jobId, first.jobId]);
    expect(listed.every((j) => j.owner === owner)).toBe(true);
    expect(await jobs.listByOwner(newOwner())).toEqual([]);
  });

  test('when results are removed, then the job reads removed 1', async () => {
    const started = await startScripted({});
    await finalView(started.jobId);
    await jobs.remove(started.jobId);
    expect(await jobs.get(started.jobId)).toMatchObject({ status: 70, removed: 1 });
    expect(world.results.jobs.get(started.jobId)?.files.size).toBe(0);
  });

  test("when a job's workflow is terminated, then it still reads as a finished, failed job", async () => {
    const started = await startScripted({ algorithm: { hold: true } });
    await eventually(() => world.backend.isWaiting(started.jobId, 'algorithm'));
    await tw.client.workflow.getHandle(`c2d-${started.jobId}`).terminate('operator');
    const view = await jobs.get(started.jobId);
    expect(view).toMatchObject({
      jobId: started.jobId,
      owner: started.owner,
      status: 41,
      environment: env.id,
      inputDID: started.inputDID,
      algoDID: started.algoDID,
    });
    expect(view?.terminationDetails?.reason).toContain('terminated');
    world.backend.release(started.jobId, 'algorithm');
  });

  test('when a job does not exist, then get is null and stop is a not-found error', async () => {
    expect(await jobs.get('0'.repeat(32))).toBeNull();
    await expect(jobs.stop('0'.repeat(32))).rejects.toMatchObject({ kind: 'notFound' });
    expect(await jobs.currentJobs(uniqueName('nobody'))).toBe(0);
  });
});
