/**
 * A real control plane (test/helpers/kube.ts) prepared for the kubernetes backend: the namespaces and
 * the worker's and the API's RBAC from k8s/base applied, and a kubeconfig holding the worker ServiceAccount's token,
 * so the backend under test has exactly the rights production gives it. The test's own checks use an
 * admin client of @kubernetes/client-node directly (not our wrapper), to read what the API server stored.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as k8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { StepHooks } from '../../src/compute/backend';
import { createKubeClient, type KubeClient, KubernetesBackend } from '../../src/compute/kubernetes';
import { type KubernetesEnvironment, type KubernetesEnvironmentInput, kubernetesEnvironmentSchema } from '../../src/domain/environment';
import { localResultsVolume } from '../../tools/k8s-node';
import { type Kube, KWOK_CUSTOM_STATUS_ANNOTATION, startKube } from '../helpers/kube';
import { silentLogger } from '../helpers/process-backend';

export const NAMESPACE = 'c2d-compute';
const root = path.resolve(__dirname, '../..');

export const newJobId = (): string => randomBytes(16).toString('hex');

export interface Admin {
  core: k8s.CoreV1Api;
  net: k8s.NetworkingV1Api;
  authz: k8s.AuthorizationV1Api;
}

export interface BackendCluster {
  kube: Kube;
  admin: Admin;
  /** kubeconfig authenticating as system:serviceaccount:c2d-provider:c2d-worker */
  workerKubeconfig: string;
  /** kubeconfig authenticating as system:serviceaccount:c2d-provider:c2d-api */
  apiKubeconfig: string;
  resultsDir: string;
  env(overrides?: Partial<KubernetesEnvironmentInput>): KubernetesEnvironment;
  /** a fresh backend (a fresh worker: own client, nothing cached) running as the worker ServiceAccount */
  backend(environment?: KubernetesEnvironment): { backend: KubernetesBackend; client: KubeClient };
  /** every object of the job in the namespace, as Kind/name, sorted */
  jobObjects(jobId: string): Promise<string[]>;
  waitForPod(name: string): Promise<k8s.V1Pod>;
  /** writes the pod's status (the status subresource), as a kubelet would */
  setPodStatus(name: string, status: k8s.V1PodStatus): Promise<void>;
  /** resolves once nothing of the job is left in the namespace (the garbage collector follows ownerReferences) */
  waitForNothingLeft(jobId: string): Promise<void>;
  stop(): Promise<void>;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

/**
 * `{ node: 'real' }`: on a real node (test/helpers/kube.ts), where the step pods really run: the results
 * claim `c2d-results` binds a local volume that is `resultsDir` itself (the worker reads what the
 * publishing pods wrote there), and no pod status is played by the test.
 */
export async function startBackendCluster(opts: { node?: 'fake' | 'real' } = {}): Promise<BackendCluster> {
  const real = opts.node === 'real';
  const kube = await startKube({ node: opts.node ?? 'fake' });
  const lib = await import('@kubernetes/client-node');
  try {
    await kube.kubectl(['apply', '-f', path.join(root, 'k8s/base/namespaces.yaml')]);
    await kube.kubectl(['apply', '-f', path.join(root, 'k8s/base/worker-rbac.yaml')]);
    await kube.kubectl(['apply', '-f', path.join(root, 'k8s/base/api-rbac.yaml')]);
    await kube.waitForServiceAccount(NAMESPACE);

    const adminConfig = new lib.KubeConfig();
    adminConfig.loadFromFile(kube.kubeconfig);
    const cluster = adminConfig.getCurrentCluster();
    if (!cluster) throw new Error('admin kubeconfig has no cluster');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-k8s-backend-'));
    /** A kubeconfig authenticating with a token of one of our ServiceAccounts in c2d-provider. */
    const kubeconfigOf = async (serviceAccount: string): Promise<string> => {
      const token = (await kube.kubectl(['create', 'token', serviceAccount, '-n', 'c2d-provider', '--duration=2h'])).trim();
      const config = new lib.KubeConfig();
      config.loadFromOptions({
        clusters: [cluster],
        users: [{ name: serviceAccount, token }],
        contexts: [{ name: serviceAccount, cluster: cluster.name, user: serviceAccount }],
        currentContext: serviceAccount,
      });
      const file = path.join(dir, `${serviceAccount}.kubeconfig`);
      fs.writeFileSync(file, config.exportConfig(), { mode: 0o600 });
      return file;
    };
    const workerKubeconfig = await kubeconfigOf('c2d-worker');
    const apiKubeconfig = await kubeconfigOf('c2d-api');
    const resultsDir = path.join(dir, 'results');
    fs.mkdirSync(resultsDir);
    if (real) await kube.kubectl(['apply', '-f', '-'], JSON.stringify(localResultsVolume(resultsDir, kube.nodeName, NAMESPACE)));

    const admin: Admin = {
      core: adminConfig.makeApiClient(lib.CoreV1Api),
      net: adminConfig.makeApiClient(lib.NetworkingV1Api),
      authz: adminConfig.makeApiClient(lib.AuthorizationV1Api),
    };
    // The kubelet's last word on a deleted pod: once its containers are gone it removes the pod
    // (grace 0). kwok leaves that to us for the pods whose status we write; none of them runs anything.
    const kubelet = real
      ? { abort: () => undefined }
      : await new lib.Watch(adminConfig).watch(
          `/api/v1/namespaces/${NAMESPACE}/pods`,
          {},
          (type: string, pod: k8s.V1Pod) => {
            if (type === 'DELETED' || !pod.metadata?.deletionTimestamp || !pod.spec?.nodeName) return;
            admin.core.deleteNamespacedPod({ name: pod.metadata.name ?? '', namespace: NAMESPACE, gracePeriodSeconds: 0 }).catch(() => undefined);
          },
          () => undefined,
        );
    const env = (overrides: Partial<KubernetesEnvironmentInput> = {}): KubernetesEnvironment =>
      kubernetesEnvironmentSchema.parse({
        id: 'k8s-test',
        backend: 'kubernetes',
        cpuNumber: 1,
        ramGB: 0.5,
        diskGB: 1,
        maxJobDuration: 300,
        ...overrides,
        // kwok leaves the status of these pods to the test (it plays the kubelet for the rest)
        kubernetes: real
          ? { ...overrides.kubernetes }
          : { podAnnotations: { ...KWOK_CUSTOM_STATUS_ANNOTATION }, imagePullPolicy: 'Never', ...overrides.kubernetes },
      });

    const jobObjects = async (jobId: string): Promise<string[]> => {
      const labelSelector = `c2d.job=${jobId}`;
      const namespace = NAMESPACE;
      const [cms, secrets, pvcs, pods, nps] = await Promise.all([
        admin.core.listNamespacedConfigMap({ namespace, labelSelector }),
        admin.core.listNamespacedSecret({ namespace, labelSelector }),
        admin.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector }),
        admin.core.listNamespacedPod({ namespace, labelSelector }),
        admin.net.listNamespacedNetworkPolicy({ namespace, labelSelector }),
      ]);
      const names = (kind: string, items: { metadata?: { name?: string } }[]) => items.map((i) => `${kind}/${i.metadata?.name ?? ''}`);
      return [
        ...names('ConfigMap', cms.items),
        ...names('Secret', secrets.items),
        ...names('PersistentVolumeClaim', pvcs.items),
        ...names('Pod', pods.items),
        ...names('NetworkPolicy', nps.items),
      ].sort();
    };

    return {
      kube,
      admin,
      workerKubeconfig,
      apiKubeconfig,
      resultsDir,
      env,
      backend(environment = env()) {
        const client = createKubeClient(workerKubeconfig);
        return { backend: new KubernetesBackend({ environment, client, resultsDir, logger: silentLogger, heartbeatMs: 100, stopTimeoutMs: 10_000 }), client };
      },
      jobObjects,
      waitForPod: (name) =>
        until(`pod ${name}`, async () => {
          try {
            return await admin.core.readNamespacedPod({ name, namespace: NAMESPACE });
          } catch (err) {
            if (statusOf(err) === 404) return undefined;
            throw err;
          }
        }),
      async setPodStatus(name, status) {
        for (;;) {
          const pod = await admin.core.readNamespacedPod({ name, namespace: NAMESPACE });
          pod.status = status;
          try {
            await admin.core.replaceNamespacedPodStatus({ name, namespace: NAMESPACE, body: pod });
            return;
          } catch (err) {
            if (statusOf(err) !== 409) throw err; // the scheduler wrote a condition meanwhile: again
          }
        }
      },
      async waitForNothingLeft(jobId) {
        await until(`the objects of job ${jobId} to be gone`, async () => ((await jobObjects(jobId)).length === 0 ? true : undefined));
      },
      async stop() {
        kubelet.abort();
        await kube.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await kube.stop();
    throw err;
  }
}

/** Hooks that record every heartbeat. */
export function recordingHooks(signal: AbortSignal = new AbortController().signal): StepHooks & { beats: unknown[] } {
  const beats: unknown[] = [];
  return { beats, heartbeat: (d) => beats.push(d), signal };
}

/** A container status as the kubelet writes it. */
export function containerStatus(name: string, state: k8s.V1ContainerState): k8s.V1ContainerStatus {
  return { name, image: 'img', imageID: '', ready: Boolean(state.running), restartCount: 0, started: Boolean(state.running), state };
}

export const running = (step: string): k8s.V1PodStatus => ({
  phase: 'Running',
  startTime: new Date(),
  containerStatuses: [containerStatus(step, { running: { startedAt: new Date() } })],
});

export const terminated = (step: string, t: Partial<k8s.V1ContainerStateTerminated> & { exitCode: number }): k8s.V1PodStatus => ({
  phase: t.exitCode === 0 ? 'Succeeded' : 'Failed',
  startTime: new Date(),
  containerStatuses: [containerStatus(step, { terminated: { startedAt: new Date(), finishedAt: new Date(), ...t } })],
});

export const waiting = (step: string, reason: string, message?: string): k8s.V1PodStatus => ({
  phase: 'Pending',
  containerStatuses: [containerStatus(step, { waiting: { reason, ...(message ? { message } : {}) } })],
});
