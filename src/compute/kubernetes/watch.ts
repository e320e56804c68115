import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeClient, PodSelector, V1Pod } from './client';

/** How long the API server keeps one watch open before we list again (it also bounds a silently dead connection). */
const WATCH_SECONDS = 240;
const RETRY_MS = 500;
const MAX_RETRY_MS = 5000;

export class WatchAborted extends Error {
  constructor(reason?: unknown) {
    super('stopped watching: the caller gave up', { cause: reason });
    this.name = 'AbortError';
  }
}

/**
 * Lists the selected pods, then watches them (list + watch, the informer pattern, not a polling loop)
 * until `check` returns a value for the pods as they are now. A closed watch lists again; an error
 * answer (e.g. 410 Gone, or the API server restarting) retries with back-off. Rejects with
 * WatchAborted when the signal aborts.
 */
export async function waitForPods<T>(
  client: KubeClient,
  namespace: string,
  selector: PodSelector,
  check: (pods: ReadonlyMap<string, V1Pod>) => T | undefined,
  signal: AbortSignal,
): Promise<T> {
  let retryMs = RETRY_MS;
  for (;;) {
    if (signal.aborted) throw new WatchAborted(signal.reason);
    try {
      const list = await client.listPods(namespace, selector);
      const pods = new Map(list.items.map((p) => [p.metadata?.name ?? '', p]));
      let result = check(pods);
      if (result !== undefined) return result;
      const watch = new AbortController();
      const stop = (): void => watch.abort();
      signal.addEventListener('abort', stop, { once: true });
      if (signal.aborted) stop(); // aborted while we listed
      try {
        await client.watchPods(
          namespace,
          { ...selector, resourceVersion: list.resourceVersion, timeoutSeconds: WATCH_SECONDS },
          (type, pod) => {
            if (result !== undefined || type === 'BOOKMARK') return;
            const name = pod.metadata?.name ?? '';
            if (type === 'DELETED') pods.delete(name);
            else pods.set(name, pod);
            result = check(pods);
            if (result !== undefined) watch.abort();
          },
          watch.signal,
        );
      } finally {
        signal.removeEventListener('abort', stop);
      }
      if (result !== undefined) return result;
      retryMs = RETRY_MS;
    } catch (err) {
      if (signal.aborted) throw new WatchAborted(signal.reason);
      if (!isTransient(err)) throw err;
      await sleep(retryMs, undefined, { signal }).catch(() => undefined); // aborted: the next turn throws WatchAborted
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    }
  }
}

/** Errors worth another list + watch: anything but a refusal (401/403) or a bad request. */
function isTransient(err: unknown): boolean {
  const status = (err as { status?: unknown }).status;
  return typeof status !== 'number' || !(status === 401 || status === 403 || status === 400 || status === 422);
}
