import type { StepHooks } from '../backend';
import { stepWaitAborted } from '../steps';

const HEARTBEAT_MS = 1000;

/**
 * Waits for `ended` (handed a signal that aborts once nobody waits any more), heartbeating `details`
 * meanwhile. When the activity is cancelled it rejects at once, after `onCancel`; the step itself is
 * not touched here.
 */
export function waitForStep<T>(hooks: StepHooks, details: unknown, ended: (gaveUp: AbortSignal) => Promise<T>, onCancel?: () => void): Promise<T> {
  if (hooks.signal.aborted) return Promise.reject(stepWaitAborted(hooks.signal));
  const gaveUp = new AbortController();
  return new Promise<T>((resolve, reject) => {
    const timer = setInterval(() => hooks.heartbeat(details), HEARTBEAT_MS);
    const done = (): void => {
      clearInterval(timer);
      hooks.signal.removeEventListener('abort', cancelled);
      gaveUp.abort();
    };
    const cancelled = (): void => {
      done();
      onCancel?.();
      reject(stepWaitAborted(hooks.signal));
    };
    hooks.signal.addEventListener('abort', cancelled, { once: true });
    hooks.heartbeat(details);
    ended(gaveUp.signal).then(
      (value) => {
        done();
        resolve(value);
      },
      (err: unknown) => {
        done();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
