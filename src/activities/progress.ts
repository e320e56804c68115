import { Context } from '@temporalio/activity';
import type { Logger } from '../domain/logger';

/** Must match imagePullProgressSignal in src/workflows/definitions.ts (activities may not import workflow code). */
export const PULL_PROGRESS_SIGNAL = 'imagePullProgress';
/** at most one signal (one history event) per this many ms; the last line always goes */
const PROGRESS_EVERY_MS = 2000;

/**
 * Sends the running activity's workflow a line of progress for its summary in the Web UI (the workflow's
 * current details): the first line at once, then at most one every PROGRESS_EVERY_MS, the latest line
 * each time; `flush` sends what is pending and waits for it. Best effort: a signal that fails is logged,
 * never fails the step. Lines carry ids and image references only (they land in history).
 */
export function progressToWorkflow(log: Logger): { progress: (line: string) => void; flush: () => Promise<void> } {
  const ctx = Context.current();
  const run = ctx.info.workflowExecution;
  let signal: (line: string) => Promise<void>;
  try {
    if (!run) throw new Error('not started by a workflow');
    const handle = ctx.client.workflow.getHandle(run.workflowId, run.runId);
    signal = (line) => handle.signal(PULL_PROGRESS_SIGNAL, line);
  } catch {
    return { progress: () => undefined, flush: () => Promise.resolve() }; // no client (a unit test's activity environment) or no workflow
  }
  let pending: string | null = null;
  let sentAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let sending = Promise.resolve();
  const send = (): void => {
    timer = undefined;
    if (pending === null) return;
    const line = pending;
    pending = null;
    sentAt = Date.now();
    sending = sending
      .then(() => signal(line))
      .catch((err: unknown) => log.debug({ err: err instanceof Error ? err.message : String(err) }, 'progress signal failed'));
  };
  return {
    progress(line) {
      pending = line;
      timer ??= setTimeout(send, Math.max(0, sentAt + PROGRESS_EVERY_MS - Date.now()));
    },
    async flush() {
      clearTimeout(timer);
      send();
      await sending;
    },
  };
}
