import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FAKE_NODE, KWOK_CUSTOM_STATUS_ANNOTATION, k8sBinDir, kubectl, startControlPlane } from '../../src/entrypoints/k8s-control-plane';

export { FAKE_NODE, KWOK_CUSTOM_STATUS_ANNOTATION };

/**
 * A real Kubernetes control plane for one test file: etcd + kube-apiserver (RBAC, Node authorizer,
 * default admission incl. ServiceAccount/NamespaceLifecycle) + kube-controller-manager (garbage
 * collector: ownerReferences cascade; service accounts and their tokens; namespaces; jobs) +
 * kube-scheduler + kwok playing the kubelet of one fake node (`kwok-node-0`: 64 CPU, 256Gi, 8
 * nvidia.com/gpu). Ready in a few seconds (binaries from scripts/ensure-k8s.sh, which `npm test`'s
 * setup builds once and caches).
 *
 * Usage:
 *   let kube: Kube;
 *   beforeAll(async () => { kube = await startKube(); }, 120_000);
 *   afterAll(() => kube.stop());
 *   // kube.kubeconfig: an admin (system:masters) kubeconfig file → KubeConfig.loadFromFile(kube.kubeconfig)
 *   // kube.kubectl(['get', 'pods', '-A', '-o', 'json']) for quick checks and setup (stdin as 2nd argument)
 *
 * Pods: the scheduler binds them to the fake node, kwok makes them Running/Ready and removes them on
 * delete (no container runs). kwok never ends a pod: to make one Succeeded/Failed (exit code, OOMKilled,
 * ImagePullBackOff...), create it with the annotation KWOK_CUSTOM_STATUS_ANNOTATION
 * (`kwok.x-k8s.io/status: custom`) and write its status yourself (the `status` subresource, e.g.
 * `kubectl replace --subresource=status` or the client's replaceNamespacedPodStatus); kwok then leaves it
 * alone. New namespaces get their `default` ServiceAccount from the controller-manager within about a
 * second: pods created before it exists are refused by the ServiceAccount admission plugin — wait for it
 * (kube.waitForServiceAccount(ns)).
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
  /** kubectl against this cluster as admin; resolves with stdout, rejects with stderr */
  kubectl(args: string[], stdin?: string): Promise<string>;
  /** resolves once the namespace's `default` ServiceAccount exists (pods can be created) */
  waitForServiceAccount(namespace: string, name?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startKube(): Promise<Kube> {
  const binDir = k8sBinDir();
  // etcd runs with --unsafe-no-fsync; RAM-backed /dev/shm keeps it fast when present.
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, 'c2d-kube-'));
  const cp = await startControlPlane({ dir, binDir }).catch((err: unknown) => {
    const logs = fs.existsSync(path.join(dir, 'logs')) ? fs.readdirSync(path.join(dir, 'logs')).map((f) => `--- ${f}\n${fs.readFileSync(path.join(dir, 'logs', f), 'utf8').slice(-2000)}`) : [];
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs.join('\n')}`);
  });
  const run = (args: string[], stdin?: string): Promise<string> => kubectl(binDir, cp.kubeconfig, args, stdin);
  return {
    kubeconfig: cp.kubeconfig,
    server: cp.server,
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
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async stop() {
      await cp.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
