import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as k8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { StepName, StepRequest } from '../src/compute/backend';
import { createKubeClient, KubernetesBackend } from '../src/compute/kubernetes';
import { kubernetesEnvironmentSchema } from '../src/domain/environment';
import type { Logger } from '../src/domain/logger';
import { k8sBinDir, KWOK_CUSTOM_STATUS_ANNOTATION, kubectl, startControlPlane } from '../tools/k8s-control-plane';

/**
 * `npm run bench:k8s` (also part of `npm run bench`): the kubernetes backend against a local control
 * plane (etcd, kube-apiserver, controller-manager, scheduler, kwok). No container runs: a stand-in
 * kubelet in this process watches the job pods and ends each as soon as it appears. Prints the time
 * from a step's start to its pod existing, a whole job's time through the backend, and the API calls
 * the backend makes per job (requests of our client: a watch or a followed log counts once).
 */
const JOBS = 20;
const CONCURRENT = 20;
const NAMESPACE = 'c2d-compute';
const root = path.resolve(__dirname, __filename.endsWith('.ts') ? '..' : '../..');

const silent: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => silent };
const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const ms = (x: number): string => `${x.toFixed(0)} ms`;
const hex = (): string => Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join('');

async function main(): Promise<void> {
  const lib = await import('@kubernetes/client-node');
  const binDir = k8sBinDir();
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'c2d-bench-k8s-'));
  const cp = await startControlPlane({ dir, binDir });
  const resultsDir = path.join(dir, 'results');
  const watchAbort = new AbortController();
  try {
    const run = (args: string[]): Promise<string> => kubectl(binDir, cp.kubeconfig, args);
    await run(['apply', '-f', path.join(root, 'k8s/base/namespaces.yaml')]);
    await run(['apply', '-f', path.join(root, 'k8s/base/worker-rbac.yaml')]);
    for (let i = 0; ; i++) {
      try {
        await run(['get', 'serviceaccount', 'default', '-n', NAMESPACE]);
        break;
      } catch (err) {
        if (i > 300) throw err;
        await sleep(100);
      }
    }
    const adminConfig = new lib.KubeConfig();
    adminConfig.loadFromFile(cp.kubeconfig);
    const core = adminConfig.makeApiClient(lib.CoreV1Api);

    // the stand-in kubelet: every job pod that appears ends at once with exit 0
    const created = new Map<string, number>();
    const kubelet = new lib.Watch(adminConfig);
    const finish = async (pod: k8s.V1Pod): Promise<void> => {
      const name = pod.metadata?.name ?? '';
      const step = pod.metadata?.labels?.['c2d.step'] ?? '';
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          const fresh = await core.readNamespacedPod({ name, namespace: NAMESPACE });
          fresh.status = {
            phase: 'Succeeded',
            containerStatuses: [
              {
                name: step,
                image: 'img',
                imageID: '',
                ready: false,
                restartCount: 0,
                state: { terminated: { exitCode: 0, reason: 'Completed', message: step === 'configure' ? '{"ok":true}' : '' } },
              },
            ],
          };
          await core.replaceNamespacedPodStatus({ name, namespace: NAMESPACE, body: fresh });
          return;
        } catch (err) {
          if ((err as { code?: number }).code === 404) return;
        }
      }
    };
    const watch = await kubelet.watch(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      { labelSelector: 'c2d.job' },
      (type: string, obj: k8s.V1Pod) => {
        if (type !== 'ADDED') return;
        created.set(obj.metadata?.name ?? '', performance.now());
        void finish(obj);
      },
      () => undefined,
    );
    watchAbort.signal.addEventListener('abort', () => watch.abort());

    const environment = kubernetesEnvironmentSchema.parse({
      id: 'bench-k8s',
      backend: 'kubernetes',
      kubernetes: { podAnnotations: { ...KWOK_CUSTOM_STATUS_ANNOTATION } },
    });
    const client = createKubeClient(cp.kubeconfig);
    const backend = new KubernetesBackend({ environment, client, resultsDir, logger: silent });
    const hooks = () => ({ heartbeat: () => undefined, signal: new AbortController().signal });
    const steps: StepName[] = ['configure', 'algorithm', 'publish'];
    const request = (jobId: string, step: StepName): StepRequest => {
      if (step === 'configure')
        return { jobId, environment, step, configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: 'x' }, maxInputBytes: 1024 } };
      if (step === 'algorithm')
        return {
          jobId,
          environment,
          step,
          algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: '' }, env: {}, allowNetwork: false },
        };
      return { jobId, environment, step };
    };
    const runJob = async (jobId: string): Promise<{ toPod: number[]; total: number }> => {
      const t0 = performance.now();
      const toPod: number[] = [];
      for (const step of steps) {
        const t = performance.now();
        await backend.runStep(request(jobId, step), hooks());
        toPod.push((created.get(`c2d-${jobId}-${step}`) ?? NaN) - t);
      }
      await backend.listPublished(jobId);
      await backend.cleanup(jobId);
      return { toPod, total: performance.now() - t0 };
    };

    await runJob(hex()); // warm-up: client load, connections, API server caches

    // 1. One job at a time: start → pod created per step, whole job, API calls per job
    const before = client.calls;
    const toPod: number[] = [];
    const totals: number[] = [];
    for (let i = 0; i < JOBS; i++) {
      const r = await runJob(hex());
      toPod.push(...r.toPod);
      totals.push(r.total);
    }
    const callsPerJob = (client.calls - before) / JOBS;

    // 2. Concurrent jobs: from starting them all to every algorithm pod existing
    const ids = Array.from({ length: CONCURRENT }, hex);
    const t0 = performance.now();
    await Promise.all(ids.map((id) => backend.runStep(request(id, 'algorithm'), hooks())));
    const allCreated = Math.max(...ids.map((id) => created.get(`c2d-${id}-algorithm`) ?? NaN)) - t0;
    await Promise.all(ids.map((id) => backend.cleanup(id)));

    console.log(`kubernetes backend (local control plane, kwok; ${JOBS} sequential jobs, ${CONCURRENT} concurrent)`);
    console.log(`  step start → pod created: p50 ${ms(percentile(toPod, 50))}, p99 ${ms(percentile(toPod, 99))}`);
    console.log(`  job through three pods (+ listPublished, cleanup): p50 ${ms(percentile(totals, 50))}, p99 ${ms(percentile(totals, 99))}`);
    console.log(`  API calls per job (worker side): ${callsPerJob.toFixed(1)}`);
    console.log(`  ${CONCURRENT} algorithm steps started at once → all pods created: ${ms(allCreated)}`);
  } finally {
    watchAbort.abort();
    await cp.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
