import { Context } from '@temporalio/activity';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import type { JobView } from '../../src/domain/job';
import { createPluginActivities, definePlugin, PluginRegistry } from '../../src/plugins';
import { createHostWorker } from '../../src/entrypoints/worker';
import { TemporalJobsService } from '../../src/temporal/client';
import { eventually, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { testState } from '../helpers/state';
import { environment, fakeWorld, jobInput, silent } from './fakes';

/**
 * Several workers, each with its own work dir: the steps of one job must all run where its workspace is.
 * The workflow places the job on the worker host running it (the local activity that asks for its slot,
 * or placeJob when it queued for long) and sends every step — configure, algorithm, stop, publish,
 * cleanup, in-worker plugins — to that host's own task queue.
 */
const hostQueue = uniqueName('host-queue');
const env = environment({ id: uniqueName('env'), maxJobs: 4, maxJobDuration: 120, plugins: [{ name: 'gate' }] });
const oneSlot = environment({ id: uniqueName('one-slot'), maxJobs: 1, maxJobDuration: 120 });
const k8s = environment({
  id: uniqueName('k8s'),
  backend: 'kubernetes',
  maxJobs: 4,
  maxJobDuration: 120,
});

/** where each activity of a job ran: `<activity>@<task queue>` */
const ran = new Map<string, string[]>();
function recorded(activities: Activities): Activities {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      (input: { jobId?: string; workflowId?: string }, ...rest: unknown[]) => {
        const { taskQueue } = Context.current().info;
        // acquireSlot names the job by its workflow id (c2d-<jobId>)
        const jobId = input?.jobId ?? input?.workflowId?.replace(/^c2d-/, '');
        if (jobId) ran.set(jobId, [...(ran.get(jobId) ?? []), `${name}@${taskQueue === hostQueue ? 'host' : 'shared'}`]);
        return (fn as (...a: unknown[]) => unknown)(input, ...rest);
      },
    ]),
  ) as unknown as Activities;
}

describe('steps on the worker host that holds the workspace', () => {
  const gate = definePlugin({ name: 'gate', defaultStage: 'afterAlgorithm', run: () => Promise.resolve() });
  const registry = new PluginRegistry([gate]);
  const world = fakeWorld([env, oneSlot, k8s], registry, { hostQueue });
  const activities = (): Activities =>
    recorded({
      ...world.activities,
      ...createPluginActivities(registry, { environments: [env, oneSlot, k8s], backendFor: () => world.backend, logger: silent }),
    });
  let tw: TestWorker;
  let host: Worker;
  let hostRun: Promise<void>;
  let connection: NativeConnection;
  let jobs: TemporalJobsService;

  beforeAll(async () => {
    tw = await startTestWorker(activities());
    connection = await NativeConnection.connect({ address: testState().temporalAddress });
    host = await createHostWorker({
      config: { temporal: { address: testState().temporalAddress, namespace: 'default', taskQueue: tw.taskQueue, uiPort: 0 } },
      activities: activities(),
      connection,
      hostQueue,
    });
    hostRun = host.run();
    jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results: world.results });
  }, 120_000);

  afterAll(async () => {
    host?.shutdown();
    await hostRun;
    await connection?.close();
    await tw?.stop();
  });

  /** the workflow's own end: after cleanup (the status is final a little before) */
  const finished = (jobId: string): Promise<JobView> => tw.client.workflow.getHandle(`c2d-${jobId}`).result() as Promise<JobView>;

  test('when a process job runs, then authorization runs on the shared queue and every step of its workspace on the host queue', async () => {
    const input = jobInput(env.id);
    await jobs.start(input);
    const done = await finished(input.jobId);
    expect(done.status).toBe(70);
    const calls = ran.get(input.jobId) ?? [];
    // granted at once: placed by the call that asked for the slot, no placeJob round trip
    expect(calls).toEqual(expect.arrayContaining(['authorizeJob@shared', 'acquireSlot@shared']));
    expect(calls).not.toContainEqual(expect.stringMatching(/^placeJob@/));
    const steps = calls.filter((c) => !/^(authorizeJob|verifyOrders|placeJob|acquireSlot)@/.test(c));
    // the afterAlgorithm plugin (served in the worker, it may read the workspace) too
    expect(steps).toEqual(['configureStep@host', 'algorithmStep@host', expect.stringMatching(/@host$/), 'publishStep@host', 'cleanupJob@host']);
  });

  test('when a process job is stopped mid-algorithm, then the stop reaches the host queue too', async () => {
    const input = jobInput(env.id);
    world.backend.scripts.set(input.jobId, { algorithm: { hold: true } });
    await jobs.start(input);
    await eventually(async () => (await jobs.get(input.jobId))?.status === 40, 20_000, 'the algorithm running');
    await jobs.stop(input.jobId);
    const done = await finished(input.jobId);
    expect(done.stopreq).toBe(1);
    expect(ran.get(input.jobId)).toEqual(expect.arrayContaining(['stopSteps@host', 'publishStep@host', 'cleanupJob@host']));
  });

  test('when a job queued for its slot longer than a placement stays fresh, then it is placed again once granted, and its steps run on the host queue', async () => {
    const holder = jobInput(oneSlot.id);
    world.backend.scripts.set(holder.jobId, { algorithm: { hold: true } });
    await jobs.start(holder);
    await eventually(() => world.backend.isWaiting(holder.jobId, 'algorithm'), 20_000, 'the holder running');
    const queued = jobInput(oneSlot.id);
    await jobs.start(queued);
    try {
      await eventually(() => (ran.get(queued.jobId) ?? []).includes('acquireSlot@shared'), 20_000, 'the second job asking for the slot');
      await new Promise((r) => setTimeout(r, 2500));
    } finally {
      world.backend.release(holder.jobId, 'algorithm');
    }
    expect((await finished(queued.jobId)).status).toBe(70);
    const calls = ran.get(queued.jobId) ?? [];
    expect(calls.filter((c) => /^(acquireSlot|placeJob)@/.test(c))).toEqual(['acquireSlot@shared', 'placeJob@shared']);
    expect(calls.filter((c) => /^(configureStep|algorithmStep|publishStep|cleanupJob)@/.test(c))).toEqual([
      'configureStep@host',
      'algorithmStep@host',
      'publishStep@host',
      'cleanupJob@host',
    ]);
    expect(ran.get(holder.jobId)).not.toContainEqual(expect.stringMatching(/^placeJob@/));
  });

  test('when the environment is kubernetes, then no host is chosen: its steps run on the shared queue', async () => {
    const input = jobInput(k8s.id);
    await jobs.start(input);
    const done = await finished(input.jobId);
    expect(done.status).toBe(70);
    const steps = (ran.get(input.jobId) ?? []).filter((c) => /^(configureStep|algorithmStep|publishStep|cleanupJob)@/.test(c));
    expect(steps).toEqual(['configureStep@shared', 'algorithmStep@shared', 'publishStep@shared', 'cleanupJob@shared']);
  });
});
