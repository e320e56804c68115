import type { JobView } from '../../src/domain/job';
import { TemporalJobsService } from '../../src/temporal/client';
import { acquireSignal, environmentWorkflowId, holdersQuery, waitersQuery } from '../../src/workflows/definitions';
import type { environmentSlots } from '../../src/workflows/environment-slots';
import { eventually, finalJobView, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { environment, fakeWorld, jobInput } from './fakes';

const env = environment({ id: uniqueName('one-slot'), maxJobs: 1, maxJobDuration: 120 });
const world = fakeWorld([env]);
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

const waiters = (environmentId: string): Promise<string[]> =>
  tw.client.workflow.getHandle(environmentWorkflowId(environmentId, tw.taskQueue)).query(waitersQuery);

describe('environment capacity', () => {
  test('when more jobs than maxJobs start, then the others wait in status 1, in order, and all finish one at a time', async () => {
    const [a, b, c, d] = [jobInput(env.id), jobInput(env.id), jobInput(env.id), jobInput(env.id)];
    world.backend.scripts.set(a.jobId, { algorithm: { hold: true } });
    world.backend.scripts.set(b.jobId, { algorithm: { ms: 300 } });
    world.backend.scripts.set(c.jobId, { algorithm: { ms: 300 } });

    await jobs.start(a);
    await eventually(() => world.backend.isWaiting(a.jobId, 'algorithm'));
    expect(await jobs.currentJobs(env.id)).toBe(1);

    const queued: string[] = [];
    for (const next of [b, c, d]) {
      await jobs.start(next);
      queued.push(`c2d-${next.jobId}`);
      await eventually(async () => (await waiters(env.id)).length === queued.length, 10_000, 'the job to queue');
    }
    expect(await waiters(env.id)).toEqual(queued);
    expect(await jobs.queuedJobs(env.id)).toBe(3);
    for (const waiting of [b, c, d]) expect((await jobs.get(waiting.jobId))?.status).toBe(1);
    expect(world.backend.calls.filter((call) => call.jobId !== a.jobId)).toEqual([]);

    // a job stopped while it waits leaves the queue and never runs a step
    const stopped = await jobs.stop(d.jobId);
    expect(stopped).toMatchObject({ status: 1, stopreq: 1 });
    const dDone = await finalView(d.jobId);
    expect(dDone).toMatchObject({ status: 70, stopreq: 1, results: [], terminationDetails: { reason: 'stopped by owner' } });
    await eventually(async () => (await waiters(env.id)).length === 2, 10_000, 'd to leave the queue');
    expect(await waiters(env.id)).toEqual(queued.slice(0, 2));

    world.backend.release(a.jobId, 'algorithm');
    for (const job of [a, b, c]) expect(await finalView(job.jobId)).toMatchObject({ status: 70, stopreq: 0 });
    expect(world.backend.maxConcurrentAlgorithms).toBe(1);
    expect(world.backend.calls.filter((call) => call.jobId === d.jobId)).toEqual([]);
    const algorithmStarts = world.backend.calls.filter((call) => call.step === 'algorithm').map((call) => call.jobId);
    expect(algorithmStarts).toEqual([a.jobId, b.jobId, c.jobId]);
    await eventually(async () => (await jobs.currentJobs(env.id)) === 0, 10_000, 'all slots released');
  });

  test("when a job's algorithm ends, then the algorithm step gives its slot back before the job publishes: the next job runs meanwhile, and the workflow sends no release of its own", async () => {
    const [a, b] = [jobInput(env.id), jobInput(env.id)];
    world.backend.scripts.set(a.jobId, { publish: { hold: true } });
    await jobs.start(a);
    await eventually(() => world.backend.isWaiting(a.jobId, 'publish'), 20_000, "a's publishing");
    await jobs.start(b);
    // a still publishes (held) while b, granted the slot a gave back, runs to its end
    expect(await finalView(b.jobId)).toMatchObject({ status: 70, stopreq: 0 });
    expect(world.backend.isWaiting(a.jobId, 'publish')).toBe(true);
    world.backend.release(a.jobId, 'publish');
    expect(await finalView(a.jobId)).toMatchObject({ status: 70, stopreq: 0 });
    for (const job of [a, b]) {
      const { events } = await tw.client.workflow.getHandle(`c2d-${job.jobId}`).fetchHistory();
      expect((events ?? []).filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes)).toEqual([]);
    }
  });

  test('when another deployment (another task queue) has an environment of the same id, then each has its own capacity', async () => {
    const otherWorld = fakeWorld([env]);
    const other = await startTestWorker(otherWorld.activities);
    try {
      const otherJobs = new TemporalJobsService({ client: other.client, taskQueue: other.taskQueue, results: otherWorld.results });
      const holding = jobInput(env.id);
      world.backend.scripts.set(holding.jobId, { algorithm: { hold: true } });
      await jobs.start(holding);
      await eventually(async () => (await jobs.get(holding.jobId))?.status === 40, 20_000, 'the first deployment to run its one job');
      // the same environment id elsewhere: its one slot is free, so its job runs to the end meanwhile
      const elsewhere = jobInput(env.id);
      await otherJobs.start(elsewhere);
      expect((await finalJobView(otherJobs, elsewhere.jobId)).status).toBe(70);
      expect(await jobs.currentJobs(env.id)).toBe(1);
      world.backend.release(holding.jobId, 'algorithm');
      expect((await finalView(holding.jobId)).status).toBe(70);
    } finally {
      await other.stop();
    }
  });

  test('when a holder never releases, then its lease runs out and the slot comes back', async () => {
    const environmentId = uniqueName('lease');
    const slots = environmentWorkflowId(environmentId, tw.taskQueue);
    // a running workflow that will ignore the grant: another environment's capacity workflow
    const holder = environmentWorkflowId(uniqueName('ignores-grants'), tw.taskQueue);
    await tw.client.workflow.start<typeof environmentSlots>('environmentSlots', { workflowId: holder, taskQueue: tw.taskQueue, args: [uniqueName('x')] });
    await tw.client.workflow.signalWithStart<typeof environmentSlots, [{ workflowId: string; maxJobs: number; leaseMs: number }]>('environmentSlots', {
      workflowId: slots,
      taskQueue: tw.taskQueue,
      args: [environmentId],
      signal: acquireSignal,
      signalArgs: [{ workflowId: holder, maxJobs: 1, leaseMs: 1500 }],
    });
    await eventually(async () => (await jobs.currentJobs(environmentId)) === 1, 10_000, 'the grant');
    await eventually(async () => (await jobs.currentJobs(environmentId)) === 0, 10_000, 'the lease to run out');
    await tw.client.workflow.getHandle(holder).terminate('test over');
  });

  test('when the job a slot is granted to no longer exists, then its slot is freed at once', async () => {
    const environmentId = uniqueName('ghost');
    const handle = await tw.client.workflow.signalWithStart<typeof environmentSlots, [{ workflowId: string; maxJobs: number; leaseMs: number }]>(
      'environmentSlots',
      {
        workflowId: environmentWorkflowId(environmentId, tw.taskQueue),
        taskQueue: tw.taskQueue,
        args: [environmentId],
        signal: acquireSignal,
        signalArgs: [{ workflowId: uniqueName('c2d-never-started'), maxJobs: 1, leaseMs: 600_000 }],
      },
    );
    await eventually(
      async () => (await handle.query(holdersQuery)) === 0 && (await handle.query(waitersQuery)).length === 0,
      10_000,
      'the ghost to be dropped',
    );
    await handle.terminate('test over');
  });
});
