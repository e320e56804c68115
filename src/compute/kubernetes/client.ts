/**
 * The one module that imports @kubernetes/client-node. Everything else in the backend talks to the
 * cluster through the narrow KubeClient below and uses the object types re-exported here.
 *
 * The package is ESM-only: it is loaded with a dynamic import() on first use, which works from our
 * CommonJS build on every Node version we support.
 */
import { PassThrough, type Readable } from 'node:stream';
import type * as k8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

export type {
  V1ConfigMap,
  V1Container,
  V1EnvVar,
  V1NetworkPolicy,
  V1ObjectMeta,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodSpec,
  V1Secret,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

type Pod = k8s.V1Pod;

/** The object kinds the backend creates, with the API group each lives in. */
export type KubeObject =
  | (k8s.V1ConfigMap & { kind: 'ConfigMap' })
  | (k8s.V1Secret & { kind: 'Secret' })
  | (k8s.V1PersistentVolumeClaim & { kind: 'PersistentVolumeClaim' })
  | (k8s.V1Pod & { kind: 'Pod' })
  | (k8s.V1NetworkPolicy & { kind: 'NetworkPolicy' });
export type KubeKind = KubeObject['kind'];

export type PodEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface PodSelector {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  /** how dependents (ownerReferences) go: Background (default) deletes the owner at once and lets the garbage collector follow */
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
}

/** Raised for an API answer we do not turn into a result (anything but the 404/409 the methods below absorb). */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeApiError';
  }
}

export interface KubeClient {
  /**
   * Creates the object; one that already exists under that name counts as success (created: false,
   * object: null; read it if you need it: not reading keeps the calls, and the rights, to a minimum).
   */
  create<T extends KubeObject>(obj: T): Promise<{ object: T; created: true } | { object: null; created: false }>;
  /** The object, or null when there is none. */
  read<K extends KubeKind>(kind: K, namespace: string, name: string): Promise<Extract<KubeObject, { kind: K }> | null>;
  /** Deletes the object; true when it was there, false when it was not (both count as success). */
  remove(kind: KubeKind, namespace: string, name: string, opts?: DeleteOptions): Promise<boolean>;
  /** Pods matching the selectors, with the list's resourceVersion (to watch from). */
  listPods(namespace: string, selector: PodSelector): Promise<{ items: Pod[]; resourceVersion: string }>;
  /**
   * Watches pods from resourceVersion; onEvent gets every change. Resolves when the server closes the
   * watch or the signal aborts it; rejects on an error answer (410 Gone: the version is too old, list again).
   */
  watchPods(
    namespace: string,
    query: PodSelector & { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (type: PodEventType, pod: Pod) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /** The container's log so far (at most limitBytes), or null when the pod is gone or the container has not started. */
  podLog(namespace: string, pod: string, container: string, opts: { limitBytes: number }): Promise<string | null>;
  /** Follows the container's log until it ends or the signal aborts; null when the pod is gone or the container has not started. */
  followPodLog(namespace: string, pod: string, container: string, signal: AbortSignal): Promise<Readable | null>;
  /** API requests made so far (a watch or a followed log counts once). */
  readonly calls: number;
}

type Api = typeof k8s;

interface Apis {
  lib: Api;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  net: k8s.NetworkingV1Api;
}

/** HTTP status of an error from the client, or undefined when it is not an API answer. */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

function wrap(err: unknown, what: string): KubeApiError {
  const status = statusOf(err) ?? 0;
  const body = (err as { body?: unknown }).body;
  let detail = '';
  if (typeof body === 'string') {
    try {
      const m = (JSON.parse(body) as { message?: unknown }).message;
      detail = typeof m === 'string' ? m : '';
    } catch {
      detail = body.slice(0, 300);
    }
  } else if (body && typeof body === 'object') {
    const m = (body as { message?: unknown }).message;
    detail = typeof m === 'string' ? m : '';
  }
  const reason = detail || (err instanceof Error ? err.message : String(err));
  return new KubeApiError(status, `${what}: ${status ? `HTTP ${status}: ` : ''}${reason}`, { cause: err });
}

/**
 * A client for the cluster in the kubeconfig file, or (undefined) the in-cluster service account.
 * Nothing is read or connected until the first call.
 */
export function createKubeClient(kubeconfig: string | undefined): KubeClient {
  let apis: Promise<Apis> | undefined;
  let calls = 0;
  const load = (): Promise<Apis> => {
    apis ??= import('@kubernetes/client-node').then((lib) => {
      const kc = new lib.KubeConfig();
      if (kubeconfig) kc.loadFromFile(kubeconfig);
      else kc.loadFromCluster();
      return { lib, kc, core: kc.makeApiClient(lib.CoreV1Api), net: kc.makeApiClient(lib.NetworkingV1Api) };
    });
    return apis;
  };
  const call = async <T>(what: string, fn: (a: Apis) => Promise<T>): Promise<T> => {
    const a = await load();
    calls++;
    try {
      return await fn(a);
    } catch (err) {
      throw wrap(err, what);
    }
  };
  /** null for 404 (and, for logs, 400: the container is not running yet) */
  const orNull = async <T>(fn: () => Promise<T>, also: number[] = []): Promise<T | null> => {
    try {
      return await fn();
    } catch (err) {
      const s = (err as KubeApiError).status;
      if (s === 404 || also.includes(s)) return null;
      throw err;
    }
  };

  const readRaw = (a: Apis, kind: KubeKind, namespace: string, name: string): Promise<object> => {
    switch (kind) {
      case 'ConfigMap':
        return a.core.readNamespacedConfigMap({ namespace, name });
      case 'Secret':
        return a.core.readNamespacedSecret({ namespace, name });
      case 'PersistentVolumeClaim':
        return a.core.readNamespacedPersistentVolumeClaim({ namespace, name });
      case 'Pod':
        return a.core.readNamespacedPod({ namespace, name });
      case 'NetworkPolicy':
        return a.net.readNamespacedNetworkPolicy({ namespace, name });
    }
  };

  const client: KubeClient = {
    get calls() {
      return calls;
    },

    async create<T extends KubeObject>(obj: T): Promise<{ object: T; created: true } | { object: null; created: false }> {
      const namespace = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name ?? '';
      try {
        const created = await call(`create ${obj.kind} ${name}`, (a): Promise<object> => {
          switch (obj.kind) {
            case 'ConfigMap':
              return a.core.createNamespacedConfigMap({ namespace, body: obj });
            case 'Secret':
              return a.core.createNamespacedSecret({ namespace, body: obj });
            case 'PersistentVolumeClaim':
              return a.core.createNamespacedPersistentVolumeClaim({ namespace, body: obj });
            case 'Pod':
              return a.core.createNamespacedPod({ namespace, body: obj });
            case 'NetworkPolicy':
              return a.net.createNamespacedNetworkPolicy({ namespace, body: obj });
          }
        });
        return { object: { ...created, kind: obj.kind } as T, created: true };
      } catch (err) {
        if ((err as KubeApiError).status !== 409) throw err;
        return { object: null, created: false };
      }
    },

    async read<K extends KubeKind>(kind: K, namespace: string, name: string) {
      const found = await orNull(() => call(`read ${kind} ${name}`, (a) => readRaw(a, kind, namespace, name)));
      return found ? ({ ...found, kind } as Extract<KubeObject, { kind: K }>) : null;
    },

    async remove(kind: KubeKind, namespace: string, name: string, opts: DeleteOptions = {}): Promise<boolean> {
      const body = { gracePeriodSeconds: opts.gracePeriodSeconds, propagationPolicy: opts.propagationPolicy ?? 'Background' };
      const req = { namespace, name, body, gracePeriodSeconds: opts.gracePeriodSeconds, propagationPolicy: body.propagationPolicy };
      const done = await orNull(() =>
        call(`delete ${kind} ${name}`, (a): Promise<object> => {
          switch (kind) {
            case 'ConfigMap':
              return a.core.deleteNamespacedConfigMap(req);
            case 'Secret':
              return a.core.deleteNamespacedSecret(req);
            case 'PersistentVolumeClaim':
              return a.core.deleteNamespacedPersistentVolumeClaim(req);
            case 'Pod':
              return a.core.deleteNamespacedPod(req);
            case 'NetworkPolicy':
              return a.net.deleteNamespacedNetworkPolicy(req);
          }
        }),
      );
      return done !== null;
    },

    async listPods(namespace: string, selector: PodSelector) {
      const list = await call('list pods', (a) => a.core.listNamespacedPod({ namespace, ...selector }));
      return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
    },

    async watchPods(namespace, query, onEvent, signal) {
      const a = await load();
      if (signal.aborted) return;
      calls++;
      await new Promise<void>((resolve, reject) => {
        let controller: AbortController | undefined;
        let ended = false;
        const onAbort = (): void => controller?.abort();
        const done = (err: unknown): void => {
          if (ended) return;
          ended = true;
          signal.removeEventListener('abort', onAbort);
          // an abort (ours) or the server closing the watch is a normal end
          if (err && !signal.aborted && (err as { name?: string }).name !== 'AbortError') reject(wrap(err, 'watch pods'));
          else resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        new a.lib.Watch(a.kc)
          .watch(
            `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
            { ...query, allowWatchBookmarks: true },
            (type: string, obj: unknown) => {
              if (type === 'ERROR') {
                const status = obj as { code?: number; message?: string };
                done(Object.assign(new Error(status.message ?? 'watch error'), { statusCode: status.code ?? 500 }));
                controller?.abort();
                return;
              }
              onEvent(type as PodEventType, obj as Pod);
            },
            done,
          )
          .then((c) => {
            controller = c;
            if (signal.aborted || ended) c.abort();
          }, done);
      });
    },

    async podLog(namespace, pod, container, opts) {
      return orNull(() => call(`log of ${pod}`, (a) => a.core.readNamespacedPodLog({ namespace, name: pod, container, limitBytes: opts.limitBytes })), [400]);
    },

    async followPodLog(namespace, pod, container, signal) {
      const out = new PassThrough();
      const started = await orNull(
        () =>
          call(`follow log of ${pod}`, async (a) => {
            const controller = await new a.lib.Log(a.kc).log(namespace, pod, container, out, { follow: true });
            const onAbort = (): void => {
              controller.abort();
              out.end();
            };
            if (signal.aborted) onAbort();
            else signal.addEventListener('abort', onAbort, { once: true });
            out.once('close', () => signal.removeEventListener('abort', onAbort));
            return true;
          }),
        [400],
      );
      if (!started) {
        out.destroy();
        return null;
      }
      return out;
    },
  };
  return client;
}
