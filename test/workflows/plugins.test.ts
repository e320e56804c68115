import { NativeConnection, Worker } from '@temporalio/worker';
import type { JobView } from '../../src/domain/job';
import { createPluginActivities, definePlugin, type PluginCall, PluginRefusal, PluginRegistry } from '../../src/plugins';
import { workflowsPath } from '../../src/entrypoints/worker';
import { TemporalJobsService } from '../../src/temporal/client';
import { C2DStatus } from '../../src/workflows/search-attributes';
import { testState } from '../helpers/state';
import { eventually, finalJobView, historyText, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { environment, fakeWorld, jobInput, silent } from './fakes';

/** Workflow-level: plugin stages, status 50, failures, a plugin on its own task queue (scripted backend, real Temporal). */

/** What a plugin saw of the data; must never reach the job's message or history. */
const DATA = 'alice,123-45-6789';

const calls: PluginCall[] = [];
const remoteCalls: PluginCall[] = [];
const held = new Set<string>();
const gates = new Map<string, () => void>();
const boomAttempts = new Map<string, number>();
const refusals = new Map<string, number>();

const gate = definePlugin({
  name: 'gate',
  defaultStage: 'afterAlgorithm',
  async run({ call }) {
    calls.push(call);
    if (held.has(`${call.jobId}/${call.stage}`)) await new Promise<void>((resolve) => gates.set(`${call.jobId}/${call.stage}`, resolve));
  },
});
const boom = definePlugin({
  name: 'boom',
  defaultStage: 'afterAlgorithm',
  run({ call }) {
    boomAttempts.set(call.jobId, (boomAttempts.get(call.jobId) ?? 0) + 1);
    return Promise.reject(new Error(`could not parse ${DATA}`));
  },
});
const refuser = definePlugin({
  name: 'refuser',
  defaultStage: 'afterAlgorithm',
  run({ call }) {
    refusals.set(call.jobId, (refusals.get(call.jobId) ?? 0) + 1);
    return Promise.reject(new PluginRefusal('the results break rule 7'));
  },
});
const remoteGate = definePlugin({
  name: 'remoteGate',
  defaultStage: 'beforePublish',
  run({ call }) {
    remoteCalls.push(call);
    return Promise.resolve();
  },
});

const remoteQueue = uniqueName('plugins-queue');
const retryFast = { maxAttempts: 2, retryIntervalMs: 100 };
const envGate = environment({ id: uniqueName('gate'), maxJobs: 8, plugins: [{ name: 'gate' }, { name: 'gate', stage: 'afterPublish' }] });
const envBoom = environment({ id: uniqueName('boom'), maxJobs: 8, plugins: [{ name: 'boom', ...retryFast }] });
const envRefuse = environment({ id: uniqueName('refuse'), maxJobs: 8, plugins: [{ name: 'refuser', ...retryFast }] });
const envEarly = environment({ id: uniqueName('early'), maxJobs: 8, plugins: [{ name: 'refuser', stage: 'beforeProvision' }] });
const envRemote = environment({ id: uniqueName('remote'), maxJobs: 8, plugins: [{ name: 'remoteGate', stage: 'beforePublish', taskQueue: remoteQueue }] });
const envOneDataset = environment({ id: uniqueName('one-dataset'), maxJobs: 8, plugins: [{ name: 'gate', datasets: ['did:op:only-this-one'] }] });
const environments = [envGate, envBoom, envRefuse, envEarly, envRemote, envOneDataset];

const world = fakeWorld(environments, new PluginRegistry([gate, boom, refuser]));
let tw: TestWorker;
let jobs: TemporalJobsService;
let remote: { worker: Worker; running: Promise<void>; connection: NativeConnection };

beforeAll(async () => {
  const pluginActivities = createPluginActivities(new PluginRegistry([gate, boom, refuser]), { environments, backendFor: () => world.backend, logger: silent });
  const merged = { ...world.activities, ...pluginActivities };
  tw = await startTestWorker(merged);
  jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results: world.results });
  const connection = await NativeConnection.connect({ address: testState().temporalAddress });
  const worker = await Worker.create({
    connection,
    taskQueue: remoteQueue,
    activities: createPluginActivities(new PluginRegistry([remoteGate]), { environments, backendFor: () => undefined, logger: silent }),
  });
  remote = { worker, connection, running: worker.run() };
}, 120_000);

afterAll(async () => {
  remote?.worker.shutdown();
  await remote?.running;
  await remote?.connection.close();
  await tw?.stop();
});

const finalView = (jobId: string): Promise<JobView> => finalJobView(jobs, jobId);
const stepsOf = (jobId: string): string[] => world.backend.calls.filter((c) => c.jobId === jobId).map((c) => c.step);
const outputsOf = (view: JobView): string[] => (view.results === '' ? [] : view.results.filter((r) => r.type === 'output').map((r) => r.filename));

describe('publisher plugins in the job workflow', () => {
  test('when a plugin is registered at afterAlgorithm, then it runs between algorithm and publishing with status 50 visible, and afterPublish sees the final status', async () => {
    const input = jobInput(envGate.id);
    held.add(`${input.jobId}/afterAlgorithm`);
    await jobs.start(input);
    await eventually(() => gates.has(`${input.jobId}/afterAlgorithm`), 20_000, 'the plugin to run');
    expect(stepsOf(input.jobId)).toEqual(['configure', 'algorithm']);
    expect(await jobs.get(input.jobId)).toMatchObject({ status: 50, statusText: 'Filtering results', results: '' });
    const handle = tw.client.workflow.getHandle(`c2d-${input.jobId}`);
    expect((await handle.describe()).typedSearchAttributes.get(C2DStatus)).toBe(50);
    gates.get(`${input.jobId}/afterAlgorithm`)?.();

    const done = await finalView(input.jobId);
    expect(done).toMatchObject({ status: 70, stopreq: 0 });
    expect(outputsOf(done)).toEqual(['out.txt']);
    expect(stepsOf(input.jobId)).toEqual(['configure', 'algorithm', 'publish']);
    const after = await eventually(() => calls.find((c) => c.jobId === input.jobId && c.stage === 'afterPublish'), 20_000, 'the afterPublish plugin');
    expect(after).toMatchObject({ status: 70, statusText: 'Job finished', results: 3, environmentId: envGate.id, owner: input.owner, index: 1 });
    expect(calls.find((c) => c.jobId === input.jobId && c.stage === 'afterAlgorithm')).toMatchObject({ status: 50, index: 0 });
    await eventually(async () => (await handle.describe()).status.name === 'COMPLETED', 20_000, 'the workflow to complete');
    const history = await handle.fetchHistory();
    expect(historyText(history)).toContain('plugin.gate');
    // the plugin path is deterministic: its own history replays
    await expect(Worker.runReplayHistory({ workflowsPath: workflowsPath() }, history, `c2d-${input.jobId}`)).resolves.toBeUndefined();
  });

  test('when a plugin throws, then only its own job ends (62, a generic message, no data in the history) after bounded retries, and its outputs are withheld', async () => {
    const bad = jobInput(envBoom.id);
    const good = jobInput(envGate.id);
    await Promise.all([jobs.start(bad), jobs.start(good)]);
    const [badDone, goodDone] = await Promise.all([finalView(bad.jobId), finalView(good.jobId)]);
    expect(badDone).toMatchObject({
      status: 62,
      statusText: 'Failed to upload results',
      terminationDetails: { reason: 'plugin boom (afterAlgorithm) failed' },
    });
    expect(boomAttempts.get(bad.jobId)).toBe(2);
    expect(outputsOf(badDone)).toEqual([]);
    expect(badDone.results).toEqual(expect.arrayContaining([expect.objectContaining({ filename: 'algorithm.log' })]));
    expect(goodDone).toMatchObject({ status: 70 });
    expect(outputsOf(goodDone)).toEqual(['out.txt']);
    const text = historyText(await tw.client.workflow.getHandle(`c2d-${bad.jobId}`).fetchHistory());
    expect(text).not.toContain(DATA);
    await eventually(() => world.backend.cleanups.includes(bad.jobId), 10_000, 'cleanup');
  });

  test('when a plugin refuses the results, then it is not retried and the job ends with 62 and the refusal as its reason', async () => {
    const input = jobInput(envRefuse.id);
    await jobs.start(input);
    const done = await finalView(input.jobId);
    expect(done).toMatchObject({ status: 62, terminationDetails: { exitCode: null, reason: 'plugin refuser (afterAlgorithm): the results break rule 7' } });
    expect(refusals.get(input.jobId)).toBe(1);
    expect(outputsOf(done)).toEqual([]);
  });

  test('when a beforeProvision plugin refuses, then the job ends with 31 before any step runs', async () => {
    const input = jobInput(envEarly.id);
    await jobs.start(input);
    const done = await finalView(input.jobId);
    expect(done).toMatchObject({ status: 31, terminationDetails: { reason: 'plugin refuser (beforeProvision): the results break rule 7' } });
    expect(stepsOf(input.jobId)).toEqual([]);
  });

  test('when a plugin runs on its own task queue, then that worker runs it and the job finishes', async () => {
    const input = jobInput(envRemote.id);
    await jobs.start(input);
    expect(await finalView(input.jobId)).toMatchObject({ status: 70 });
    expect(remoteCalls.filter((c) => c.jobId === input.jobId)).toEqual([expect.objectContaining({ stage: 'beforePublish', plugin: 'remoteGate', index: 0 })]);
  });

  test('when a plugin is enabled for one dataset, then jobs on other datasets do not run it', async () => {
    const other = jobInput(envOneDataset.id);
    const chosen = jobInput(envOneDataset.id, { datasets: [{ did: 'did:op:only-this-one', serviceId: 'compute', transferTxId: '0xabc' }] });
    await Promise.all([jobs.start(other), jobs.start(chosen)]);
    await Promise.all([finalView(other.jobId), finalView(chosen.jobId)]);
    expect(calls.filter((c) => c.jobId === other.jobId)).toEqual([]);
    expect(calls.filter((c) => c.jobId === chosen.jobId).map((c) => c.stage)).toEqual(['afterAlgorithm']);
  });

  test('when the owner stops the algorithm, then the afterAlgorithm plugins still see the outputs before publishing collects them', async () => {
    const input = jobInput(envGate.id);
    world.backend.scripts.set(input.jobId, { algorithm: { hold: true } });
    await jobs.start(input);
    await eventually(() => world.backend.isWaiting(input.jobId, 'algorithm'), 20_000, 'the algorithm');
    await jobs.stop(input.jobId);
    const done = await finalView(input.jobId);
    expect(done).toMatchObject({ status: 70, stopreq: 1 });
    expect(calls.filter((c) => c.jobId === input.jobId && c.stage === 'afterAlgorithm')).toEqual([expect.objectContaining({ status: 50, stopreq: 1 })]);
    expect(stepsOf(input.jobId)).toEqual(['configure', 'algorithm', 'publish']);
  });
});
