import { Client, Connection } from '@temporalio/client';
import { JobStatus } from '../../src/domain/status';
import { TemporalJobsService } from '../../src/temporal/client';
import { environmentWorkflowId } from '../../src/workflows/definitions';
import { testState } from '../helpers/state';
import { uniqueName } from '../helpers/temporal';
import { jobInput, MemoryResultStore } from './fakes';

/** Status must not depend on a worker being free: a consumer polling a queued job while every worker is busy (or none runs) still gets an answer. */
const NO_WORKER = uniqueName('no-worker');

describe('job status without an answering worker', () => {
  let connection: Connection;
  let jobs: TemporalJobsService;

  beforeAll(async () => {
    connection = await Connection.connect({ address: testState().temporalAddress });
    // a task queue no worker polls: the status query can never be answered
    jobs = new TemporalJobsService({ client: new Client({ connection }), taskQueue: NO_WORKER, results: new MemoryResultStore(), queryTimeoutMs: 1500 });
  });

  afterAll(async () => {
    await connection?.close();
  });

  it('when no worker answers the status query, then the job is reported from its visibility record, still running and unchanged', async () => {
    const input = jobInput('env-without-worker');
    await jobs.start(input);
    const startedAt = Date.now();
    const view = await jobs.get(input.jobId);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    expect(view).toMatchObject({
      jobId: input.jobId,
      owner: input.owner,
      status: JobStatus.WarmingUp,
      environment: 'env-without-worker',
      inputDID: input.datasets.map((d) => d.did),
      dateFinished: null,
      results: '',
      terminationDetails: null,
    });
    const listed = await jobs.listByOwner(input.owner);
    expect(listed.map((j) => [j.jobId, j.status])).toEqual([[input.jobId, JobStatus.WarmingUp]]);
    await connection.workflowService.terminateWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId: `c2d-${input.jobId}` },
      reason: 'test over',
    });
  });

  it("when the environment's capacity workflow does not answer, then running and queued jobs are counted from visibility", async () => {
    const env = uniqueName('env-unanswered');
    const client = new Client({ connection });
    // the capacity workflow exists, but no worker serves its queue: its queries can never be answered
    await client.workflow.start('environmentSlots', { workflowId: environmentWorkflowId(env, NO_WORKER), taskQueue: NO_WORKER, args: [env] });
    const waiting = [jobInput(env), jobInput(env)];
    for (const input of waiting) await jobs.start(input);
    try {
      // visibility trails the start by a moment
      let queued = 0;
      for (let i = 0; i < 20 && queued !== 2; i++) queued = await jobs.queuedJobs(env);
      expect(queued).toBe(2);
      expect(await jobs.currentJobs(env)).toBe(0);
    } finally {
      for (const id of [environmentWorkflowId(env, NO_WORKER), ...waiting.map((w) => `c2d-${w.jobId}`)]) {
        await connection.workflowService.terminateWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: id }, reason: 'test over' });
      }
    }
  });
});
