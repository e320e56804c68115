import { InterceptingCall, type Interceptor, status } from '@grpc/grpc-js';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { C2DError, UnavailableError } from '../../src/domain/errors';
import { JobStatus } from '../../src/domain/status';
import { TemporalJobsService } from '../../src/temporal/client';
import { testState } from '../helpers/state';
import { uniqueName } from '../helpers/temporal';
import { jobInput, MemoryResultStore } from './fakes';

/**
 * A start whose request reaches Temporal but whose answer is replaced by `code` (the first `times` starts):
 * `forward` false refuses it before the server sees it.
 */
function faultyStarts(code: status, times: number, forward: boolean): { interceptor: Interceptor; calls: () => number } {
  let calls = 0;
  const interceptor: Interceptor = (options, nextCall) => {
    if (!options.method_definition.path.endsWith('/StartWorkflowExecution')) return new InterceptingCall(nextCall(options));
    calls++;
    if (calls > times) return new InterceptingCall(nextCall(options));
    if (!forward) {
      return new InterceptingCall(nextCall(options), {
        start(metadata, listener) {
          setImmediate(() => listener.onReceiveStatus({ code, details: 'refused by the test', metadata }));
        },
        sendMessage() {},
        halfClose() {},
      });
    }
    return new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        next(metadata, {
          onReceiveMetadata: (m, n) => n(m),
          onReceiveMessage: (m, n) => n(m), // a unary call with an error status drops its message: the answer is lost
          onReceiveStatus: (s, n) => n({ ...s, code, details: 'answer lost in the test' }),
        });
      },
    });
  };
  return { interceptor, calls: () => calls };
}

/** The first `times` StartWorkflowExecution calls are stuck `ms` on their way to the server (an overloaded frontend, a stalled stream). */
function stuckStarts(times: number, ms: number): { interceptor: Interceptor; calls: () => number } {
  let calls = 0;
  const interceptor: Interceptor = (options, nextCall) => {
    if (!options.method_definition.path.endsWith('/StartWorkflowExecution')) return new InterceptingCall(nextCall(options));
    calls++;
    if (calls > times) return new InterceptingCall(nextCall(options));
    // the call starts (its deadline runs), its request goes out late
    return new InterceptingCall(nextCall(options), {
      sendMessage: (message, next) => setTimeout(() => next(message), ms).unref(),
      halfClose: (next) => setTimeout(() => next(), ms).unref(),
    });
  };
  return { interceptor, calls: () => calls };
}

/**
 * The first `times` StartWorkflowExecution calls never get their request to the server, which gives up on
 * each at its deadline by resetting the stream: the answer is CANCELLED ("Call cancelled"), not the
 * client's own DEADLINE_EXCEEDED (which of the two comes first is a race on a busy machine).
 */
function cancelledAtDeadline(times: number): { interceptor: Interceptor; calls: () => number } {
  let calls = 0;
  const interceptor: Interceptor = (options, nextCall) => {
    if (!options.method_definition.path.endsWith('/StartWorkflowExecution')) return new InterceptingCall(nextCall(options));
    calls++;
    if (calls > times) return new InterceptingCall(nextCall(options));
    const deadline = options.deadline instanceof Date ? options.deadline.getTime() : Number(options.deadline);
    return new InterceptingCall(nextCall({ ...options, deadline: Infinity }), {
      start(metadata, listener) {
        // the server counts the deadline from the header's arrival, rounded: its reset may come a little early
        setTimeout(() => listener.onReceiveStatus({ code: status.CANCELLED, details: 'Call cancelled', metadata }), Math.max(0, deadline - Date.now() - 20));
      },
      sendMessage() {},
      halfClose() {},
    });
  };
  return { interceptor, calls: () => calls };
}

/** The job's one workflow runs (it was started once, however many attempts it took); then it is ended. */
async function expectOneRunningJob(connection: Connection, jobId: string): Promise<void> {
  const described = await connection.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: `c2d-${jobId}` } });
  expect(described.workflowExecutionInfo?.status).toBe(1);
  await connection.workflowService.terminateWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: `c2d-${jobId}` }, reason: 'test over' });
}

describe('starting a job when Temporal refuses or loses the answer', () => {
  const connections: Connection[] = [];
  const jobsWith = async (
    interceptor: Interceptor,
    more: { attemptTimeoutMs?: number } = {},
  ): Promise<{ jobs: TemporalJobsService; connection: Connection }> => {
    const connection = await Connection.connect({
      address: testState().temporalAddress,
      // outermost: what the client sees after its own retries
      interceptors: [interceptor, makeGrpcRetryInterceptor(defaultGrpcRetryOptions())],
    });
    connections.push(connection);
    const jobs = new TemporalJobsService({
      client: new Client({ connection }),
      taskQueue: uniqueName('no-worker'),
      results: new MemoryResultStore(),
      rpcTimeoutMs: 5000,
      ...more,
    });
    return { jobs, connection };
  };

  afterAll(async () => {
    for (const c of connections) await c.close();
  });

  it('when the server started the job but its answer was lost (DEADLINE_EXCEEDED), then the start is tried again and answers the one job that runs', async () => {
    const faults = faultyStarts(status.DEADLINE_EXCEEDED, 1, true);
    const { jobs, connection } = await jobsWith(faults.interceptor);
    const input = jobInput(uniqueName('env-lost-answer'));
    const view = await jobs.start(input);
    expect(view).toMatchObject({ jobId: input.jobId, status: JobStatus.WarmingUp });
    expect(faults.calls()).toBe(2);
    await expectOneRunningJob(connection, input.jobId);
  });

  it('when a start is stuck longer than one attempt may take, then it is tried again under the same workflow id and returns the one job', async () => {
    const faults = stuckStarts(1, 4000);
    const { jobs, connection } = await jobsWith(faults.interceptor, { attemptTimeoutMs: 500 });
    const input = jobInput(uniqueName('env-slow-answer'));
    const t0 = Date.now();
    const view = await jobs.start(input);
    expect(view).toMatchObject({ jobId: input.jobId, status: JobStatus.WarmingUp });
    expect(faults.calls()).toBe(2);
    expect(Date.now() - t0).toBeLessThan(3000); // not the 4 s the first attempt was stuck
    await expectOneRunningJob(connection, input.jobId);
  });

  it('when the server gives up on an attempt at its deadline (CANCELLED, not DEADLINE_EXCEEDED), then the start is tried again and returns the one job', async () => {
    const faults = cancelledAtDeadline(1);
    const { jobs, connection } = await jobsWith(faults.interceptor, { attemptTimeoutMs: 500 });
    const input = jobInput(uniqueName('env-cancelled-attempt'));
    const view = await jobs.start(input);
    expect(view).toMatchObject({ jobId: input.jobId, status: JobStatus.WarmingUp });
    expect(faults.calls()).toBe(2);
    await expectOneRunningJob(connection, input.jobId);
  });

  it('when a start is cancelled long before its deadline, then it is not taken for a timed-out attempt: 503 at once, tried once', async () => {
    const faults = faultyStarts(status.CANCELLED, 1, false);
    const { jobs } = await jobsWith(faults.interceptor, { attemptTimeoutMs: 5000 });
    const err = await jobs.start(jobInput(uniqueName('env-cancelled-early'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toBe('Temporal is unavailable (CANCELLED)');
    expect(faults.calls()).toBe(1);
  });

  it('when Temporal keeps refusing with a transient status, then the start gives up at its deadline with 503 naming it, and no job exists', async () => {
    const faults = faultyStarts(status.UNAVAILABLE, Number.POSITIVE_INFINITY, false);
    const { jobs } = await jobsWith(faults.interceptor);
    const input = jobInput(uniqueName('env-unavailable'));
    const t0 = Date.now();
    const err = await jobs.start(input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/^Temporal is unavailable \((UNAVAILABLE|DEADLINE_EXCEEDED)\)$/);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(faults.calls()).toBeGreaterThan(1);
    expect(await jobs.get(input.jobId)).toBeNull();
  });

  it('when Temporal refuses the start as invalid, then it is not tried again, and it is an internal error naming INVALID_ARGUMENT, not an outage', async () => {
    const faults = faultyStarts(status.INVALID_ARGUMENT, 1, false);
    const { jobs } = await jobsWith(faults.interceptor);
    const err = await jobs.start(jobInput(uniqueName('env-invalid'))).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(UnavailableError);
    expect(err).toBeInstanceOf(C2DError);
    expect(err).toMatchObject({ kind: 'internal', code: 'temporal_refused', message: "Temporal refused the provider's request (INVALID_ARGUMENT)" });
    expect(faults.calls()).toBe(1);
  });
});
