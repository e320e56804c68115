import type { JobView } from '../../src/domain/job';
import { TemporalJobsService } from '../../src/temporal/client';
import { environmentWorkflowId, waitersQuery } from '../../src/workflows/definitions';
import { eventually, finalJobView, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { environment, fakeWorld, jobInput } from './fakes';

/** Room by resources (C2D v2): 4 cpus and 8 GB in all, room for 5 jobs by count. */
const env = environment({
  id: uniqueName('resources'),
  maxJobs: 5,
  maxJobDuration: 120,
  resources: [
    { id: 'cpu', total: 4, min: 1, max: 4 },
    { id: 'ram', total: 8, min: 1, max: 8 },
  ],
  free: { maxJobDuration: 60, maxJobs: 1, resources: [{ id: 'cpu', max: 1 }] },
});
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
const waiters = (): Promise<string[]> => tw.client.workflow.getHandle(environmentWorkflowId(env.id, tw.taskQueue)).query(waitersQuery);
const status = async (jobId: string): Promise<number | undefined> => (await jobs.get(jobId))?.status;

describe('environment capacity by resources', () => {
  test('when a job asks for more cpu than is left, then it waits although slots are free, and the jobs behind it wait too (first come, first served)', async () => {
    const big = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 3 }] });
    const wide = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 2 }] });
    const small = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 1 }] });
    world.backend.scripts.set(big.jobId, { algorithm: { hold: true } });
    await jobs.start(big);
    await eventually(() => world.backend.isWaiting(big.jobId, 'algorithm'));
    expect(await jobs.resourcesInUse(env.id)).toEqual({ cpu: 3, ram: 1 });

    await jobs.start(wide);
    await eventually(async () => (await waiters()).length === 1, 10_000, 'the 2-cpu job to queue');
    // 1 cpu is left: the small job would fit, but it does not overtake the one before it
    await jobs.start(small);
    await eventually(async () => (await waiters()).length === 2, 10_000, 'the 1-cpu job to queue');
    expect(await status(wide.jobId)).toBe(1);
    expect(await status(small.jobId)).toBe(1);
    expect(world.backend.calls.filter((c) => c.jobId !== big.jobId)).toEqual([]);

    world.backend.release(big.jobId, 'algorithm');
    for (const job of [big, wide, small]) expect(await finalView(job.jobId)).toMatchObject({ status: 70 });
    await eventually(async () => Object.values(await jobs.resourcesInUse(env.id)).every((n) => n === 0), 10_000, 'all resources back');
  });

  test('when a job gives queueMaxWaitTime and the environment stays full, then it ends with status 2 and never runs a step', async () => {
    const hog = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 4 }] });
    const impatient = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 1 }], queueMaxWaitTime: 1 });
    world.backend.scripts.set(hog.jobId, { algorithm: { hold: true } });
    await jobs.start(hog);
    await eventually(() => world.backend.isWaiting(hog.jobId, 'algorithm'));
    await jobs.start(impatient);
    const expired = await finalView(impatient.jobId);
    expect(expired).toMatchObject({ status: 2, terminationDetails: { reason: expect.stringContaining('queueMaxWaitTime') } });
    expect(world.backend.calls.filter((c) => c.jobId === impatient.jobId)).toEqual([]);
    expect(await waiters()).toEqual([]);
    world.backend.release(hog.jobId, 'algorithm');
    expect((await finalView(hog.jobId)).status).toBe(70);
  });

  test('when the free jobs are at their limit, then the next free job waits while a paid job behind it runs', async () => {
    const free1 = jobInput(env.id, { api: 'v2', free: true, resources: [{ id: 'cpu', amount: 1 }] });
    const free2 = jobInput(env.id, { api: 'v2', free: true, resources: [{ id: 'cpu', amount: 1 }] });
    const paid = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 1 }] });
    world.backend.scripts.set(free1.jobId, { algorithm: { hold: true } });
    await jobs.start(free1);
    await eventually(() => world.backend.isWaiting(free1.jobId, 'algorithm'));
    await jobs.start(free2);
    await eventually(async () => (await waiters()).includes(`c2d-${free2.jobId}`), 10_000, 'the second free job to queue');
    await jobs.start(paid);
    expect((await finalView(paid.jobId)).status).toBe(70);
    expect(await status(free2.jobId)).toBe(1);
    world.backend.release(free1.jobId, 'algorithm');
    for (const job of [free1, free2]) expect((await finalView(job.jobId)).status).toBe(70);
  });

  test('when a job asks for more than one job may have, or a resource the environment lacks, then it fails before it queues', async () => {
    const greedy = jobInput(env.id, { api: 'v2', resources: [{ id: 'cpu', amount: 5 }] });
    const gpu = jobInput(env.id, { api: 'v2', resources: [{ id: 'gpu', amount: 1 }] });
    const freeGreedy = jobInput(env.id, { api: 'v2', free: true, resources: [{ id: 'cpu', amount: 2 }] });
    for (const job of [greedy, gpu, freeGreedy]) await jobs.start(job);
    expect((await finalView(greedy.jobId)).terminationDetails?.reason).toMatch(/resource cpu: 5 asked, .* allows 1–4 per job/);
    expect((await finalView(gpu.jobId)).terminationDetails?.reason).toMatch(/resource gpu is not offered .*cpu, ram/);
    expect((await finalView(freeGreedy.jobId)).terminationDetails?.reason).toMatch(/resource cpu: 2 asked, .* allows 1–1 for a free job/);
    for (const job of [greedy, gpu, freeGreedy]) expect(world.backend.calls.filter((c) => c.jobId === job.jobId)).toEqual([]);
  });
});
