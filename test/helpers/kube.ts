import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RealNode } from '../../tools/k8s-node';
import { FAKE_NODE, KWOK_CUSTOM_STATUS_ANNOTATION, k8sBinDir, kubectl, STORAGE_CLASS, startControlPlane } from '../../tools/k8s-control-plane';

export { FAKE_NODE, KWOK_CUSTOM_STATUS_ANNOTATION, STORAGE_CLASS };

/**
 * A real Kubernetes control plane for one test file: etcd + kube-apiserver (RBAC, Node authorizer,
 * default admission incl. ServiceAccount/NamespaceLifecycle) + kube-controller-manager (garbage
 * collector: ownerReferences cascade; service accounts and their tokens; namespaces; jobs) +
 * kube-scheduler + kwok playing the kubelet of one fake node (`kwok-node-0`: 64 CPU, 256Gi, 8
 * nvidia.com/gpu). Ready in a few seconds (binaries from tools/ensure-k8s.sh, which `npm test`'s
 * setup builds once and caches).
 *
 * Usage:
 *   let kube: Kube;
 *   beforeAll(async () => { kube = await startKube(); }, 120_000);
 *   afterAll(() => kube.stop());
 *   // kube.kubeconfig: an admin (system:masters) kubeconfig file → KubeConfig.loadFromFile(kube.kubeconfig)
 *   // kube.kubectl(['get', 'pods', '-A', '-o', 'json']) for quick checks and setup (stdin as 2nd argument)
 *
 * Pods: the scheduler binds them to the fake node, kwok makes them Running/Ready (it gives them a podIP)
 * and removes them on delete (no container runs). kwok never ends a pod (except pods owned by a Job),
 * and it only touches pods without a podIP, so a test plays the container's end by writing the pod's
 * status once it is Running: kube.finishPod(ns, name, { exitCode: 0 }) → Succeeded, any other code →
 * Failed, `reason: 'OOMKilled'` for the OOM killer; kube.waitPod(ns, name, 'ImagePullBackOff') for a
 * container stuck waiting (phase Pending). Pods created with the annotation KWOK_CUSTOM_STATUS_ANNOTATION
 * (`kwok.x-k8s.io/status: custom`) are never touched by kwok (they stay Pending until the test writes
 * their status). New namespaces get their `default` ServiceAccount from the controller-manager within a
 * second: pods created before it exists are refused by the ServiceAccount admission plugin — wait for it
 * (kube.waitForServiceAccount(ns)).
 * PersistentVolumeClaims (no storageClassName: the default class `local`) bind within a second or two
 * to one of 32 pre-made PersistentVolumes (1Ti, ReadWriteOnce+ReadWriteMany; not mounted anywhere); pods
 * using them schedule; a deleted claim goes once no pod uses it (pvc-protection), its volume is not reused.
 * Impersonation (`--as=system:serviceaccount:<ns>:<name>`, or the client's impersonate options) and
 * SelfSubjectAccessReview work as on a real cluster; so do ServiceAccount tokens (TokenRequest).
 */
export interface Kube {
  /** admin kubeconfig file */
  kubeconfig: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** directory of the kube binaries (kubectl among them) */
  binDir: string;
  /** the node pods run on: kwok's fake node, or the real one */
  nodeName: string;
  /** the real node, with `{ node: 'real' }` */
  realNode?: RealNode;
  /** kubectl against this cluster as admin; resolves with stdout, rejects with stderr */
  kubectl(args: string[], stdin?: string): Promise<string>;
  /** resolves once the namespace's `default` ServiceAccount exists (pods can be created) */
  waitForServiceAccount(namespace: string, name?: string): Promise<void>;
  /** resolves with the pod (JSON) once `ready(pod)` holds, e.g. (p) => p.status?.phase === 'Running' */
  waitForPod(namespace: string, name: string, ready: (pod: PodJson) => boolean, timeoutMs?: number): Promise<PodJson>;
  /** ends a Running pod as its kubelet would: every container terminated with exitCode (and reason); phase Succeeded iff 0 */
  finishPod(namespace: string, name: string, end: { exitCode: number; reason?: string; message?: string }): Promise<void>;
  /** leaves every container of the pod waiting with `reason` (e.g. ErrImagePull, ImagePullBackOff); phase Pending */
  waitPod(namespace: string, name: string, reason: string, message?: string): Promise<void>;
  stop(): Promise<void>;
}

/** The parts of a Pod the helpers read. */
export interface PodJson {
  metadata: { name: string; namespace: string; uid: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { nodeName?: string; containers: { name: string; image: string }[] };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[]; containerStatuses?: unknown[] };
}

/**
 * `{ node: 'real' }`: a real node instead of kwok's (tools/k8s-node.ts; root, containerd, the kubelet):
 * containers really run, so nothing may be played with finishPod/waitPod; the default StorageClass binds
 * claims to local volumes on the node; `kube.realNode.gateway` is the host as pods reach it.
 */
export async function startKube(opts: { node?: 'fake' | 'real' } = {}): Promise<Kube> {
  const binDir = k8sBinDir();
  // etcd runs with --unsafe-no-fsync; RAM-backed /dev/shm keeps it fast when it has room (etcd preallocates 64 MB WAL files).
  const roomy = (dir: string): boolean => {
    try {
      const st = fs.statfsSync(dir);
      return st.bavail * st.bsize > 1024 ** 3;
    } catch {
      return false;
    }
  };
  const base = roomy('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, 'c2d-kube-'));
  // the real node's images and snapshots on a disk filesystem (overlayfs upper dirs; room for images)
  const nodeDir = opts.node === 'real' ? fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-node-')) : undefined;
  const removeDirs = (): void => {
    fs.rmSync(dir, { recursive: true, force: true });
    if (nodeDir) fs.rmSync(nodeDir, { recursive: true, force: true });
  };
  const cp = await startControlPlane({ dir, binDir, node: opts.node ?? 'fake', ...(nodeDir ? { nodeDir } : {}) }).catch((err: unknown) => {
    const logDirs = [path.join(dir, 'logs'), ...(nodeDir ? [path.join(nodeDir, 'logs')] : [])].filter((d) => fs.existsSync(d));
    const logs = logDirs.flatMap((d) => fs.readdirSync(d).map((f) => `--- ${f}\n${fs.readFileSync(path.join(d, f), 'utf8').slice(-2000)}`));
    removeDirs();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs.join('\n')}`);
  });
  const run = (args: string[], stdin?: string): Promise<string> => kubectl(binDir, cp.kubeconfig, args, stdin);
  return {
    kubeconfig: cp.kubeconfig,
    server: cp.server,
    nodeName: cp.nodeName,
    ...(cp.realNode ? { realNode: cp.realNode } : {}),
    binDir,
    kubectl: run,
    async waitForServiceAccount(namespace, name = 'default') {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await run(['get', 'serviceaccount', name, '-n', namespace, '-o', 'name']);
          return;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await sleep(100);
        }
      }
    },
    async waitForPod(namespace, name, ready, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last = 'not found';
      for (;;) {
        try {
          const pod = JSON.parse(await run(['-n', namespace, 'get', 'pod', name, '-o', 'json'])) as PodJson;
          if (ready(pod)) return pod;
          last = JSON.stringify(pod.status);
        } catch (err) {
          last = err instanceof Error ? err.message : String(err);
        }
        if (Date.now() > deadline) throw new Error(`pod ${namespace}/${name} not as expected within ${timeoutMs} ms; last seen: ${last}`);
        await sleep(100);
      }
    },
    async finishPod(namespace, name, end) {
      const pod = JSON.parse(await run(['-n', namespace, 'get', 'pod', name, '-o', 'json'])) as PodJson;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const terminated = {
        exitCode: end.exitCode,
        reason: end.reason ?? (end.exitCode === 0 ? 'Completed' : 'Error'),
        ...(end.message ? { message: end.message } : {}),
        startedAt: now,
        finishedAt: now,
      };
      const containerStatuses = pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { terminated },
      }));
      const conditions = ['Ready', 'ContainersReady'].map((type) => ({ type, status: 'False', reason: 'PodCompleted', lastTransitionTime: now }));
      await run([
        '-n',
        namespace,
        'patch',
        'pod',
        name,
        '--subresource=status',
        '--type=strategic',
        '-p',
        JSON.stringify({ status: { phase: end.exitCode === 0 ? 'Succeeded' : 'Failed', containerStatuses, conditions } }),
      ]);
    },
    async waitPod(namespace, name, reason, message) {
      const pod = JSON.parse(await run(['-n', namespace, 'get', 'pod', name, '-o', 'json'])) as PodJson;
      const containerStatuses = pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { waiting: { reason, ...(message ? { message } : {}) } },
      }));
      await run([
        '-n',
        namespace,
        'patch',
        'pod',
        name,
        '--subresource=status',
        '--type=strategic',
        '-p',
        JSON.stringify({ status: { phase: 'Pending', containerStatuses } }),
      ]);
    },
    async stop() {
      await cp.stop();
      removeDirs();
    },
  };
}
