import fs from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { finalStatuses } from '../../src/domain/status';
import { workflowsPath } from '../../src/entrypoints/worker';
import { TemporalJobsService } from '../../src/temporal/client';
import { environmentWorkflowId } from '../../src/workflows/definitions';
import { eventually, startTestWorker, uniqueName } from '../helpers/temporal';
import { environment, fakeWorld, jobInput } from './fakes';

const fixtures = path.resolve(__dirname, '../fixtures/histories');
const jobHistory = path.join(fixtures, 'compute-job.json');
const slotsHistory = path.join(fixtures, 'environment-slots.json');

/**
 * The recorded histories are the contract with jobs already running in production: a workflow change
 * that replays them differently is non-deterministic and needs `patched()`. Missing fixtures are
 * recorded from a real run (delete them to re-record after an intended, patched change).
 */
async function recordFixtures(): Promise<void> {
  const env = environment({ id: uniqueName('replay'), maxJobs: 1, maxJobDuration: 120 });
  const world = fakeWorld([env]);
  const tw = await startTestWorker(world.activities);
  try {
    const jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results: world.results });
    const input = jobInput(env.id);
    await jobs.start(input);
    await eventually(async () => {
      const v = await jobs.get(input.jobId);
      return v !== null && finalStatuses.includes(v.status);
    }, 30_000);
    fs.mkdirSync(fixtures, { recursive: true });
    fs.writeFileSync(jobHistory, historyToJSON(await tw.client.workflow.getHandle(`c2d-${input.jobId}`).fetchHistory()));
    fs.writeFileSync(slotsHistory, historyToJSON(await tw.client.workflow.getHandle(environmentWorkflowId(env.id, tw.taskQueue)).fetchHistory()));
  } finally {
    await tw.stop();
  }
}

beforeAll(async () => {
  if (!fs.existsSync(jobHistory) || !fs.existsSync(slotsHistory)) await recordFixtures();
}, 120_000);

describe('replay', () => {
  test('when the recorded history of a full job is replayed, then the workflow code makes the same decisions', async () => {
    const history: unknown = JSON.parse(fs.readFileSync(jobHistory, 'utf8'));
    await expect(Worker.runReplayHistory({ workflowsPath: workflowsPath() }, history, 'c2d-replay')).resolves.toBeUndefined();
  });

  test('when the recorded history of a capacity workflow is replayed, then it makes the same decisions', async () => {
    const history: unknown = JSON.parse(fs.readFileSync(slotsHistory, 'utf8'));
    await expect(Worker.runReplayHistory({ workflowsPath: workflowsPath() }, history, 'c2d-env-replay')).resolves.toBeUndefined();
  });
});
