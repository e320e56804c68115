/**
 * `npm run record:histories`: runs today's workflows through every path on a real Temporal dev server,
 * with a worker whose activities are deterministic fakes (test/workflows/fakes.ts), and writes each
 * history to test/fixtures/histories/<path>.json. test/workflows/replay.test.ts replays them. Re-run it
 * after changing a workflow before the first release (docs/workflow-versioning.md says what changes after).
 */
import fs from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { JobInput, JobView } from '../src/domain/job';
import { AccessDeniedError } from '../src/domain/errors';
import { toActivityFailure } from '../src/activities/failures';
import type { Activities } from '../src/activities';
import { createPluginActivities, definePlugin, PluginRefusal, PluginRegistry } from '../src/plugins';
import { createHostWorker } from '../src/entrypoints/worker';
import { TemporalJobsService } from '../src/temporal/client';
import { testState } from '../test/helpers/state';
import { environmentWorkflowId, waitersQuery } from '../src/workflows/definitions';
import globalSetup from '../test/helpers/global-setup';
import globalTeardown from '../test/helpers/global-teardown';
import { eventually, startTestWorker, type TestWorker, uniqueName } from '../test/helpers/temporal';
import { environment, fakeWorld, jobInput, type JobScript, silent } from '../test/workflows/fakes';
import { historiesDir, historyFile, type RecordedHistory, recordedHistories } from '../test/workflows/recorded-histories';

const env = environment({ id: uniqueName('record'), maxJobs: 8, maxJobDuration: 120 });
const shortEnv = environment({ id: uniqueName('short'), maxJobs: 8, maxJobDuration: 2 });
const oneSlot = environment({ id: uniqueName('one-slot'), maxJobs: 1, maxJobDuration: 120 });
const gateEnv = environment({ id: uniqueName('gate'), maxJobs: 8, plugins: [{ name: 'gate' }, { name: 'gate', stage: 'afterPublish' }] });
const refuseEnv = environment({ id: uniqueName('refuse'), maxJobs: 8, plugins: [{ name: 'refuser' }] });
const earlyEnv = environment({ id: uniqueName('early'), maxJobs: 8, plugins: [{ name: 'refuser', stage: 'beforeProvision' }] });
// docker: the algorithm's image is pulled by an activity of its own, outside maxJobDuration
const dockerEnv = environment({ id: uniqueName('docker'), backend: 'docker', maxJobs: 8, maxJobDuration: 120 });
const environments = [env, shortEnv, oneSlot, gateEnv, refuseEnv, earlyEnv, dockerEnv];

const gate = definePlugin({ name: 'gate', defaultStage: 'afterAlgorithm', run: () => Promise.resolve() });
const refuser = definePlugin({ name: 'refuser', defaultStage: 'afterAlgorithm', run: () => Promise.reject(new PluginRefusal('the results break rule 7')) });

/** verifyOrders of a job: the agreement it returns, or the refusal it throws (absent: nothing on chain). */
const orders = new Map<string, { agreementId: string } | { refusal: AccessDeniedError }>();

// as a production worker of the process backend: the steps of each job go to the worker host's own queue
const hostQueue = uniqueName('record-host');
const world = fakeWorld(environments, new PluginRegistry([gate, refuser]), { hostQueue });
const activities: Activities = {
  ...world.activities,
  ...createPluginActivities(new PluginRegistry([gate, refuser]), { environments, backendFor: () => world.backend, logger: silent }),
  verifyOrders(input: JobInput) {
    const o = orders.get(input.jobId);
    if (o && 'refusal' in o) return Promise.reject(toActivityFailure(o.refusal));
    return Promise.resolve({ agreementId: o?.agreementId ?? null });
  },
};

interface Recorder {
  tw: TestWorker;
  jobs: TemporalJobsService;
  /** starts a scripted job */
  start(environmentId: string, script?: JobScript): Promise<JobInput>;
  /** waits until the job's workflow has completed (afterPublish plugins included) and returns its view */
  finished(input: JobInput): Promise<JobView>;
}

/** One path: drives a job, checks it ended as expected, returns the workflow id whose history is the fixture. */
type Scenario = (r: Recorder) => Promise<string>;

const wid = (input: JobInput): string => `c2d-${input.jobId}`;

function expectView(path: string, view: JobView, expected: Partial<Pick<JobView, 'status' | 'stopreq' | 'agreementId'>> & { outputs?: number }): void {
  const outputs = view.results === '' ? 0 : view.results.filter((r) => r.type === 'output').length;
  const got = { status: view.status, stopreq: view.stopreq, agreementId: view.agreementId, outputs };
  for (const [key, value] of Object.entries(expected)) {
    if (got[key as keyof typeof got] !== value)
      throw new Error(
        `${path}: expected ${key} ${String(value)}, the job ended with ${JSON.stringify({ ...got, terminationDetails: view.terminationDetails })}`,
      );
  }
}

/** A job that runs as scripted and must end as expected. */
const job =
  (path: RecordedHistory, environmentId: string, script: JobScript, expected: Parameters<typeof expectView>[2], before?: (input: JobInput) => void): Scenario =>
  async (r) => {
    const input = jobInput(environmentId);
    before?.(input);
    world.backend.scripts.set(input.jobId, script);
    await r.jobs.start(input);
    expectView(path, await r.finished(input), expected);
    return wid(input);
  };

/** A job whose algorithm holds until `act` (a stop, a cancel request) ends it. */
const interrupted =
  (path: RecordedHistory, act: (r: Recorder, input: JobInput) => Promise<unknown>, expected: Parameters<typeof expectView>[2]): Scenario =>
  async (r) => {
    const input = await r.start(env.id, { algorithm: { hold: true } });
    await eventually(() => world.backend.isWaiting(input.jobId, 'algorithm'), 20_000, `${path}: the algorithm`);
    await act(r, input);
    expectView(path, await r.finished(input), expected);
    return wid(input);
  };

let slotsWorkflowId = '';
let queuedWorkflowId = '';
/** recorded within another scenario */
type Within = 'environment-slots' | 'granted-after-queueing';

const scenarios: Record<Exclude<RecordedHistory, Within>, Scenario> = {
  success: job('success', env.id, {}, { status: 70, stopreq: 0, outputs: 1 }),
  'stop-by-owner': interrupted('stop-by-owner', (r, input) => r.jobs.stop(input.jobId), { status: 70, stopreq: 1 }),
  'cancel-request': interrupted('cancel-request', (r, input) => r.tw.client.workflow.getHandle(wid(input)).cancel(), { status: 70, stopreq: 1 }),
  // one slot: a holder, a waiter stopped while it waits, a waiter granted after the holder releases
  'stop-while-waiting-for-slot': async (r) => {
    slotsWorkflowId = environmentWorkflowId(oneSlot.id, r.tw.taskQueue);
    const waiters = (): Promise<string[]> => r.tw.client.workflow.getHandle(slotsWorkflowId).query(waitersQuery);
    const holder = await r.start(oneSlot.id, { algorithm: { hold: true } });
    await eventually(() => world.backend.isWaiting(holder.jobId, 'algorithm'), 20_000, 'the holder');
    const stopped = await r.start(oneSlot.id);
    const next = await r.start(oneSlot.id);
    await eventually(async () => (await waiters()).length === 2, 20_000, 'two waiters');
    await r.jobs.stop(stopped.jobId);
    expectView('stop-while-waiting-for-slot', await r.finished(stopped), { status: 70, stopreq: 1, outputs: 0 });
    // the next one has queued past a fresh placement (2 s): it is placed again once granted
    await new Promise((resolve) => setTimeout(resolve, 2500));
    world.backend.release(holder.jobId, 'algorithm');
    expectView('holder', await r.finished(holder), { status: 70, stopreq: 0 });
    expectView('granted-after-queueing', await r.finished(next), { status: 70, stopreq: 0 });
    queuedWorkflowId = wid(next);
    return wid(stopped);
  },
  deadline: job('deadline', shortEnv.id, { algorithm: { hold: true } }, { status: 70, stopreq: 2 }),
  'authorization-refused-dataset': job(
    'authorization-refused-dataset',
    env.id,
    { authorizeError: new AccessDeniedError('dataset', 'credentials_not_allowed', 'dataset: consumer not in allow list') },
    { status: 31 },
  ),
  'authorization-refused-algorithm': job(
    'authorization-refused-algorithm',
    env.id,
    { authorizeError: new AccessDeniedError('algorithm', 'not_trusted_algo') },
    { status: 32 },
  ),
  'configure-failed': job(
    'configure-failed',
    env.id,
    { configure: { outcome: { exitCode: 10, report: { ok: false, failed: 'dataset', index: 0, reason: 'dataset 0 file 0: HTTP 404' } } } },
    { status: 31 },
  ),
  'algorithm-failed': job('algorithm-failed', env.id, { algorithm: { outcome: { exitCode: 3 } } }, { status: 41, stopreq: 0 }),
  'publish-failed': job('publish-failed', env.id, { publish: { outcome: { exitCode: 2 } } }, { status: 62 }),
  'plugin-before-provision-refused': job('plugin-before-provision-refused', earlyEnv.id, {}, { status: 31 }),
  'plugin-after-algorithm-and-after-publish': job('plugin-after-algorithm-and-after-publish', gateEnv.id, {}, { status: 70, outputs: 1 }),
  'plugin-after-algorithm-refused': job('plugin-after-algorithm-refused', refuseEnv.id, {}, { status: 62, outputs: 0 }),
  'orders-verified': job('orders-verified', env.id, {}, { status: 70, agreementId: `0x${'a1'.repeat(32)}` }, (input) =>
    orders.set(input.jobId, { agreementId: `0x${'a1'.repeat(32)}` }),
  ),
  'docker-image-pull': job('docker-image-pull', dockerEnv.id, { prepare: { ms: 200 } }, { status: 70, stopreq: 0, outputs: 1 }),
  'order-refused': job('order-refused', env.id, {}, { status: 31 }, (input) =>
    orders.set(input.jobId, {
      refusal: new AccessDeniedError('dataset', 'consumer_mismatch', 'dataset: the caller is neither consumer nor payer of the order'),
    }),
  ),
};

async function main(): Promise<void> {
  await globalSetup();
  const tw = await startTestWorker(activities);
  const connection = await NativeConnection.connect({ address: testState().temporalAddress });
  const host = await createHostWorker({
    config: { temporal: { address: testState().temporalAddress, namespace: 'default', taskQueue: tw.taskQueue, uiPort: 0 } },
    activities,
    connection,
    hostQueue,
  });
  const hostRun = host.run();
  try {
    const jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results: world.results });
    const r: Recorder = {
      tw,
      jobs,
      async start(environmentId, script = {}) {
        const input = jobInput(environmentId);
        world.backend.scripts.set(input.jobId, script);
        await jobs.start(input);
        return input;
      },
      async finished(input) {
        return tw.client.workflow.getHandle(wid(input)).result() as Promise<JobView>;
      },
    };
    const histories = new Map<RecordedHistory, string>();
    for (const [path, scenario] of Object.entries(scenarios) as [Exclude<RecordedHistory, Within>, Scenario][]) {
      histories.set(path, await scenario(r));
      process.stdout.write(`recorded ${path}\n`);
    }
    histories.set('environment-slots', slotsWorkflowId);
    histories.set('granted-after-queueing', queuedWorkflowId);
    fs.mkdirSync(historiesDir, { recursive: true });
    for (const f of fs.readdirSync(historiesDir)) if (f.endsWith('.json')) fs.rmSync(`${historiesDir}/${f}`);
    for (const path of recordedHistories) {
      const workflowId = histories.get(path);
      if (!workflowId) throw new Error(`no recording for ${path}`);
      fs.writeFileSync(historyFile(path), `${historyToJSON(await tw.client.workflow.getHandle(workflowId).fetchHistory())}\n`);
    }
    process.stdout.write(`wrote ${recordedHistories.length} histories to ${historiesDir}\n`);
  } finally {
    host.shutdown();
    await hostRun;
    await connection.close();
    await tw.stop();
    await globalTeardown();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
