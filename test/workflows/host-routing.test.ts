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
 * The workflow places the job on the worker host running it (a local activity) and sends every step —
 * configure, algorithm, stop, publish, cleanup, in-worker plugins — to that host's own task queue.
 */
const hostQueue = uniqueName('host-queue');
const env = environment({ id: uniqueName('env'), maxJobs: 4, maxJobDuration: 120, plugins: [{ name: 'gate' }] });
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
      (input: { jobId?: string }, ...rest: unknown[]) => {
        const { taskQueue } = Context.current().info;
        if (input?.jobId) ran.set(input.jobId, [...(ran.get(input.jobId) ?? []), `${name}@${taskQueue === hostQueue ? 'host' : 'shared'}`]);
        return (fn as (...a: unknown[]) => unknown)(input, ...rest);
      },
    ]),
  ) as unknown as Activities;
}

describe('steps on the worker host that holds the workspace', () => {
  const gate = definePlugin({ name: 'gate', defaultStage: 'afterAlgorithm', run: () => Promise.resolve() });
  const registry = new PluginRegistry([gate]);
  const world = fakeWorld([env, k8s], registry, { hostQueue });
  const activities = (): Activities =>
    recorded({
      ...world.activities,
      ...createPluginActivities(registry, { environments: [env, k8s], backendFor: () => world.backend, logger: silent }),
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
    expect(calls).toEqual(expect.arrayContaining(['authorizeJob@shared', 'placeJob@shared']));
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

  test('when the environment is kubernetes, then no host is chosen: its steps run on the shared queue', async () => {
    const input = jobInput(k8s.id);
    await jobs.start(input);
    const done = await finished(input.jobId);
    expect(done.status).toBe(70);
    const steps = (ran.get(input.jobId) ?? []).filter((c) => /^(configureStep|algorithmStep|publishStep|cleanupJob)@/.test(c));
    expect(steps).toEqual(['configureStep@shared', 'algorithmStep@shared', 'publishStep@shared', 'cleanupJob@shared']);
  });
});
