/**
 * The kubernetes backend against a real API server (etcd, kube-apiserver with RBAC and Pod Security
 * admission, the controller-manager's garbage collector), running as the worker's ServiceAccount with
 * the rights of k8s/base/worker-rbac.yaml. No container runs: the test writes each pod's status as a
 * kubelet would (exit codes, OOMKilled, image pull failures) and checks what the backend makes of it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlgorithmSpec, ConfigureSpec, StepOutcome, StepRequest } from '../../src/compute/backend';
import type { KubernetesBackend } from '../../src/compute/kubernetes';
import type { V1Pod } from '../../src/compute/kubernetes/client';
import { type BackendCluster, NAMESPACE, newJobId, recordingHooks, running, startBackendCluster, terminated, waiting } from './backend-cluster';

let cluster: BackendCluster;
beforeAll(async () => {
  cluster = await startBackendCluster();
}, 180_000);
afterAll(async () => {
  if (cluster) await cluster.stop();
});

const configureSpec: ConfigureSpec = {
  datasets: [{ did: 'did:op:abc', ddo: { id: 'did:op:abc' }, files: [{ type: 'url', url: 'https://publisher.example/secret-location.csv', method: 'GET' }] }],
  algorithm: { did: null, ddo: null, rawcode: 'console.log("hi")' },
  maxInputBytes: 1024 * 1024,
};
const algorithmSpec: AlgorithmSpec = {
  container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: '' },
  env: { DIDS: '["did:op:abc"]', TRANSFORMATION_DID: 'raw', INPUTS: '/data/inputs', OUTPUTS: '/data/outputs' },
  allowNetwork: false,
};

function request(jobId: string, step: StepRequest['step'], env = cluster.env()): StepRequest {
  if (step === 'configure') return { jobId, environment: env, step, configure: configureSpec };
  if (step === 'algorithm') return { jobId, environment: env, step, algorithm: algorithmSpec };
  return { jobId, environment: env, step };
}

const podName = (jobId: string, step: string): string => `c2d-${jobId}-${step}`;

/** Runs a step until its pod exists; the caller then writes the pod's status. */
async function startStep(backend: KubernetesBackend, jobId: string, step: StepRequest['step'], hooks = recordingHooks()) {
  const outcome = backend.runStep(request(jobId, step), hooks);
  outcome.catch(() => undefined); // observed by the test
  const pod = await Promise.race([
    cluster.waitForPod(podName(jobId, step)),
    outcome.then((o) => Promise.reject(new Error(`step ended before its pod appeared: ${JSON.stringify(o)}`))),
  ]);
  return { outcome, pod, hooks };
}

const ok = (o: Partial<StepOutcome> = {}): StepOutcome => ({ exitCode: 0, oomKilled: false, reason: '', reattached: false, ...o });

describe('kubernetes backend against a real API server', () => {
  it('when a job runs its three steps, then exactly its objects exist with the security settings, each step ends as its pod does, and cleanup leaves nothing', async () => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const owner = `c2d-${jobId}`;

    // configure: owner, data volume, secret spec, pod
    const configure = await startStep(backend, jobId, 'configure');
    expect(await cluster.jobObjects(jobId)).toEqual([
      `ConfigMap/${owner}`,
      `PersistentVolumeClaim/${owner}-data`,
      `Pod/${owner}-configure`,
      `Secret/${owner}-configure-spec`,
    ]);
    const ownerCm = await cluster.admin.core.readNamespacedConfigMap({ name: owner, namespace: NAMESPACE });
    const ownerRef = { apiVersion: 'v1', kind: 'ConfigMap', name: owner, uid: ownerCm.metadata?.uid, controller: true };
    const secret = await cluster.admin.core.readNamespacedSecret({ name: `${owner}-configure-spec`, namespace: NAMESPACE });
    expect(JSON.parse(Buffer.from(secret.data?.['configure.json'] ?? '', 'base64').toString())).toEqual(configureSpec);
    expect(secret.immutable).toBe(true);
    const pvc = await cluster.admin.core.readNamespacedPersistentVolumeClaim({ name: `${owner}-data`, namespace: NAMESPACE });
    expect(pvc.spec?.resources?.requests).toEqual({ storage: '1Gi' });
    for (const o of [secret, pvc, configure.pod]) {
      expect(o.metadata?.ownerReferences).toEqual([ownerRef]);
      expect(o.metadata?.labels).toMatchObject({ 'c2d.job': jobId, 'c2d.environment': 'k8s-test' });
    }
    expect(configure.pod.spec?.volumes?.find((v) => v.secret)?.secret?.secretName).toBe(`${owner}-configure-spec`);
    expectHardened(configure.pod);

    await cluster.setPodStatus(podName(jobId, 'configure'), running('configure'));
    await until(() => configure.hooks.beats.some((b) => (b as { state?: string }).state === 'running'));
    await cluster.setPodStatus(podName(jobId, 'configure'), terminated('configure', { exitCode: 0, reason: 'Completed', message: '{"ok":true}' }));
    expect(await configure.outcome).toEqual(ok({ report: { ok: true } }));
    // the decrypted locations are gone as soon as the step that needed them ended
    expect(await cluster.jobObjects(jobId)).not.toContain(`Secret/${owner}-configure-spec`);

    // algorithm: its default-deny policy first, then the pod
    const algorithm = await startStep(backend, jobId, 'algorithm');
    expect(await cluster.jobObjects(jobId)).toEqual([
      `ConfigMap/${owner}`,
      `NetworkPolicy/${owner}-no-network`,
      `PersistentVolumeClaim/${owner}-data`,
      `Pod/${owner}-algorithm`,
      `Pod/${owner}-configure`,
    ]);
    const policy = await cluster.admin.net.readNamespacedNetworkPolicy({ name: `${owner}-no-network`, namespace: NAMESPACE });
    expect(policy.metadata?.ownerReferences).toEqual([ownerRef]);
    expect(policy.spec?.podSelector?.matchLabels).toEqual({ 'c2d.job': jobId, 'c2d.step': 'algorithm' });
    expect(policy.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec?.egress ?? []).toEqual([]);
    expect(policy.spec?.ingress ?? []).toEqual([]);
    const a = algorithm.pod;
    expectHardened(a);
    expect(a.metadata?.labels).toMatchObject({ 'c2d.job': jobId, 'c2d.step': 'algorithm', 'c2d.environment': 'k8s-test' });
    expect(a.metadata?.labels?.['c2d.network']).toBeUndefined();
    expect(a.spec?.activeDeadlineSeconds).toBe(300);
    const c = a.spec!.containers[0]!;
    expect(c.image).toBe('c2d-algo-node:latest');
    expect(c.resources).toEqual({
      requests: { cpu: '1', memory: '512Mi', 'ephemeral-storage': '1Gi' },
      limits: { cpu: '1', memory: '512Mi', 'ephemeral-storage': '1Gi' },
    });
    const mounts = Object.fromEntries((c.volumeMounts ?? []).map((m) => [m.mountPath, Boolean(m.readOnly)]));
    expect(mounts).toEqual({
      '/data/inputs': true,
      '/data/transformations': true,
      '/data/ddos': true,
      '/data/outputs': false,
      '/data/logs': false,
      '/tmp': false,
    });
    expect(a.spec?.volumes?.some((v) => v.secret)).toBe(false);
    expect(c.env).toContainEqual({ name: 'ALGO', value: '/data/transformations/algorithm' });

    await cluster.setPodStatus(podName(jobId, 'algorithm'), running('algorithm'));
    await cluster.setPodStatus(podName(jobId, 'algorithm'), terminated('algorithm', { exitCode: 0, reason: 'Completed' }));
    expect(await algorithm.outcome).toEqual(ok());

    // publish: the pod copies outputs to the job's directory on the results volume, which the worker reads
    const publish = await startStep(backend, jobId, 'publish');
    expectHardened(publish.pod);
    const outputsDir = path.join(cluster.resultsDir, jobId, 'outputs');
    expect(fs.statSync(outputsDir).isDirectory()).toBe(true);
    fs.writeFileSync(path.join(outputsDir, 'result.txt'), 'forty-two');
    fs.symlinkSync('/etc/passwd', path.join(outputsDir, 'planted-link'));
    await cluster.setPodStatus(
      podName(jobId, 'publish'),
      terminated('publish', { exitCode: 0, reason: 'Completed', message: '{"files":[{"filename":"result.txt","size":9}]}' }),
    );
    expect(await publish.outcome).toEqual(ok({ report: { files: [{ filename: 'result.txt', size: 9 }] } }));
    const published = await backend.listPublished(jobId);
    const outputs = published.filter((f) => f.type === 'output');
    expect(outputs.map((f) => [f.filename, f.size])).toEqual([['result.txt', 9]]);
    expect(await readAll(outputs[0]!.open())).toBe('forty-two');

    // cleanup deletes the Secret and the owner; the garbage collector removes the rest
    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
    expect(fs.existsSync(path.join(cluster.resultsDir, jobId))).toBe(false);
    await backend.cleanup(jobId); // twice is fine
  });

  it.each([
    ['exits with code 3', terminated('algorithm', { exitCode: 3, reason: 'Error' }), { exitCode: 3, oomKilled: false, reason: '' }],
    ['is OOMKilled', terminated('algorithm', { exitCode: 137, reason: 'OOMKilled' }), { exitCode: 137, oomKilled: true, reason: 'oom' }],
    [
      'exceeds its deadline',
      { phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline' },
      { exitCode: null, oomKilled: false, reason: 'deadline' },
    ],
  ])('when the algorithm pod %s, then the step outcome says so', async (_, status, expected) => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const step = await startStep(backend, jobId, 'algorithm');
    await cluster.setPodStatus(podName(jobId, 'algorithm'), running('algorithm'));
    await cluster.setPodStatus(podName(jobId, 'algorithm'), status);
    expect(await step.outcome).toEqual({ ...expected, reattached: false });
    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the algorithm image cannot be pulled, then the step ends with a reason naming the image, and its pod is removed so it never starts later', async () => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const step = await startStep(backend, jobId, 'algorithm');
    await cluster.setPodStatus(podName(jobId, 'algorithm'), waiting('algorithm', 'ErrImagePull', 'rpc error: not found'));
    expect(await step.outcome).toEqual({
      exitCode: null,
      oomKilled: false,
      reason: 'image-pull: image "c2d-algo-node:latest" cannot be pulled (ErrImagePull)',
      reattached: false,
    });
    expect(await cluster.jobObjects(jobId)).not.toContain(`Pod/c2d-${jobId}-algorithm`);
    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the configure step fails, then its report comes back and the secret spec is deleted all the same', async () => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const step = await startStep(backend, jobId, 'configure');
    await cluster.setPodStatus(
      podName(jobId, 'configure'),
      terminated('configure', { exitCode: 10, reason: 'Error', message: '{"ok":false,"failed":"dataset","index":0,"reason":"dataset 0 file 0: HTTP 404"}' }),
    );
    expect(await step.outcome).toEqual({
      exitCode: 10,
      oomKilled: false,
      reason: '',
      report: { ok: false, failed: 'dataset', index: 0, reason: 'dataset 0 file 0: HTTP 404' },
      reattached: false,
    });
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('Secret/'))).toEqual([]);
    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the job is stopped while its algorithm runs, then the step ends as stopped, its pods are gone, no consumer step starts afterwards, and cleanup leaves nothing', async () => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const step = await startStep(backend, jobId, 'algorithm');
    await cluster.setPodStatus(podName(jobId, 'algorithm'), running('algorithm'));
    await backend.stopJob(jobId);
    expect(await step.outcome).toEqual({ exitCode: null, oomKilled: false, reason: 'stopped', reattached: false });
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('Pod/'))).toEqual([]);

    const again = await backend.runStep(request(jobId, 'algorithm'), recordingHooks());
    expect(again).toEqual({ exitCode: null, oomKilled: false, reason: 'stopped', reattached: false });
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('Pod/'))).toEqual([]);

    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the worker dies while the algorithm runs and the retried activity runs the step again, then it re-attaches to the same pod and no second pod exists', async () => {
    const jobId = newJobId();
    const first = cluster.backend();
    const abort = new AbortController();
    const step = await startStep(first.backend, jobId, 'algorithm', recordingHooks(abort.signal));
    await cluster.setPodStatus(podName(jobId, 'algorithm'), running('algorithm'));
    abort.abort(); // the activity is gone (worker crash / cancellation): waiting stops, the pod runs on
    await expect(step.outcome).rejects.toMatchObject({ name: 'AbortError' });

    const second = cluster.backend(); // a new worker: new client, nothing cached
    const retried = second.backend.runStep(request(jobId, 'algorithm'), recordingHooks());
    const duplicate = second.backend.runStep(request(jobId, 'algorithm'), recordingHooks());
    await until(async () => (await cluster.admin.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `c2d.job=${jobId}` })).items.length === 1);
    const pods = await cluster.admin.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `c2d.job=${jobId}` });
    expect(pods.items.map((p) => p.metadata?.uid)).toEqual([step.pod.metadata?.uid]);
    await cluster.setPodStatus(podName(jobId, 'algorithm'), terminated('algorithm', { exitCode: 0, reason: 'Completed' }));
    expect(await retried).toEqual(ok({ reattached: true }));
    expect(await duplicate).toEqual(ok({ reattached: true }));
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('Pod/'))).toEqual([`Pod/c2d-${jobId}-algorithm`]);

    await second.backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when configure runs twice at once for one job, then one pod runs and both calls get its outcome', async () => {
    const jobId = newJobId();
    const a = cluster.backend().backend;
    const b = cluster.backend().backend;
    const one = a.runStep(request(jobId, 'configure'), recordingHooks());
    const two = b.runStep(request(jobId, 'configure'), recordingHooks());
    const pod = await cluster.waitForPod(podName(jobId, 'configure'));
    await cluster.setPodStatus(podName(jobId, 'configure'), terminated('configure', { exitCode: 0, message: '{"ok":true}' }));
    const outcomes = await Promise.all([one, two]);
    // one call created the pod, the other found it: both report the one pod's end
    expect(outcomes.map((o) => o.reattached).sort()).toEqual([false, true]);
    expect(outcomes.map((o) => o.exitCode)).toEqual([0, 0]);
    const pods = await cluster.admin.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `c2d.job=${jobId}` });
    expect(pods.items.map((p) => p.metadata?.uid)).toEqual([pod.metadata?.uid]);
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('Secret/'))).toEqual([]);
    await a.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it("when the cluster refuses an object (a configure spec over the Secret size limit), then the step fails as permanent with the API server's reason and starts no pod", async () => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const big: ConfigureSpec = { ...configureSpec, algorithm: { did: null, ddo: null, rawcode: 'x'.repeat(1100 * 1024) } };
    await expect(backend.runStep({ jobId, environment: cluster.env(), step: 'configure', configure: big }, recordingHooks())).rejects.toMatchObject({
      name: 'C2DError',
      kind: 'validation',
      code: 'kubernetes_rejected',
      message: expect.stringContaining('Secret') as unknown,
    });
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('Pod/') || o.startsWith('Secret/'))).toEqual([]);
    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the algorithm may use the network, then no deny policy is made and its pod carries the label the namespace policy lets out', async () => {
    const jobId = newJobId();
    const { backend } = cluster.backend();
    const outcome = backend.runStep(
      { jobId, environment: cluster.env(), step: 'algorithm', algorithm: { ...algorithmSpec, allowNetwork: true } },
      recordingHooks(),
    );
    const pod = await cluster.waitForPod(podName(jobId, 'algorithm'));
    expect(pod.metadata?.labels?.['c2d.network']).toBe('allowed');
    expect((await cluster.jobObjects(jobId)).filter((o) => o.startsWith('NetworkPolicy/'))).toEqual([]);
    await cluster.setPodStatus(podName(jobId, 'algorithm'), terminated('algorithm', { exitCode: 0 }));
    expect(await outcome).toEqual(ok());
    await backend.cleanup(jobId);
    await cluster.waitForNothingLeft(jobId);
  });
});

/** The settings every step pod must have (the restricted Pod Security level admitted it too). */
function expectHardened(pod: V1Pod): void {
  const spec = pod.spec!;
  expect(spec.restartPolicy).toBe('Never');
  expect(spec.automountServiceAccountToken).toBe(false);
  expect(spec.enableServiceLinks).toBe(false);
  expect(spec.hostNetwork ?? false).toBe(false);
  expect(spec.securityContext).toMatchObject({
    runAsNonRoot: true,
    runAsUser: 1000,
    runAsGroup: 1000,
    fsGroup: 1000,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(spec.containers).toHaveLength(1);
  expect(spec.containers[0]!.securityContext).toEqual({
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  });
}

async function until(fn: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(50);
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let s = '';
  for await (const chunk of stream) s += String(chunk);
  return s;
}
