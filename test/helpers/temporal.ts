import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import { createWorker } from '../../src/entrypoints/worker';
import type { JobView } from '../../src/domain/job';
import { finalStatuses } from '../../src/domain/status';
import type { JobsService } from '../../src/temporal/jobs-service';
import { testState } from './state';

/** A worker of our workflows on a task queue of its own, on the run's dev server, plus a client. */
export interface TestWorker {
  client: Client;
  taskQueue: string;
  worker: Worker;
  stop(): Promise<void>;
}

export const uniqueName = (prefix: string): string => `${prefix}-${crypto.randomBytes(4).toString('hex')}`;

export async function startTestWorker(activities: Activities): Promise<TestWorker> {
  const address = testState().temporalAddress;
  const taskQueue = uniqueName('test-queue');
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await createWorker({
    config: { temporal: { address, namespace: 'default', taskQueue, uiPort: 0 } },
    activities,
    connection: nativeConnection,
  });
  const running = worker.run();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: 'default' });
  return {
    client,
    taskQueue,
    worker,
    async stop() {
      worker.shutdown();
      await running;
      await nativeConnection.close();
      await connection.close();
    },
  };
}

/** Polls until `fn` returns a value that is not undefined/false, or fails after timeoutMs. */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}` : ''}`);
    await sleep(50);
  }
}

/**
 * The history as text with every payload decoded to UTF-8, so a test can search it for strings that
 * must (job ids) or must not (secrets) be there.
 */
export function historyText(history: unknown): string {
  const decode = (value: unknown): unknown => {
    if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
    if (Array.isArray(value)) return value.map(decode);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
    return value;
  };
  return JSON.stringify(decode(history));
}

/** Waits until the job reaches a final status and returns its view. */
export const finalJobView = (jobs: JobsService, jobId: string, timeoutMs = 30_000): Promise<JobView> =>
  eventually(
    async () => {
      const v = await jobs.get(jobId);
      return v && finalStatuses.includes(v.status) ? v : undefined;
    },
    timeoutMs,
    `job ${jobId} to finish`,
  );
