import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as k8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { StepName, StepRequest } from '../src/compute/backend';
import { createKubeClient, KubernetesBackend } from '../src/compute/kubernetes';
import { type KubernetesEnvironment, kubernetesEnvironmentSchema } from '../src/domain/environment';
import type { Logger } from '../src/domain/logger';
import { startLocalDockerEngine } from '../tools/docker-engine';
import { k8sBinDir, KWOK_CUSTOM_STATUS_ANNOTATION, kubectl, startControlPlane } from '../tools/k8s-control-plane';
import { localResultsVolume } from '../tools/k8s-node';

/**
 * `npm run bench:k8s` (also part of `npm run bench`): the kubernetes backend against a local control
 * plane (etcd, kube-apiserver, controller-manager, scheduler), in two parts.
 * 1. kwok's fake node: no container runs; a stand-in kubelet in this process watches the job pods and
 *    ends each as soon as it appears. Prints the time from a step's start to its pod existing, a whole
 *    job's time through the backend, and the API calls the backend makes per job (requests of our
 *    client: a watch or a followed log counts once).
 * 2. As root, a real node (tools/k8s-node.ts: containerd, kubelet, kube-router; our images from the local
 *    registry): step start → its pod running, one job through three real pods (a trivial Python
 *    algorithm; the algorithm pod behind its network gate), and 20 whole jobs at once.
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

async function waitForDefaultServiceAccount(run: (args: string[]) => Promise<string>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await run(['get', 'serviceaccount', 'default', '-n', NAMESPACE]);
      return;
    } catch (err) {
      if (i > 300) throw err;
      await sleep(100);
    }
  }
}

async function main(): Promise<void> {
  if (!process.env.BENCH_K8S_TRACE) await fakeNode();
  if ((process.getuid?.() ?? 1) === 0 && fs.existsSync('/usr/bin/containerd')) await realNode();
  else console.log('kubernetes backend on a real node: skipped (needs root and containerd: bash tools/setup.sh --k8s as root)');
}

async function fakeNode(): Promise<void> {
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
    await waitForDefaultServiceAccount(run);
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

const REAL_JOBS = Number(process.env.BENCH_K8S_REAL_JOBS ?? 10);
const REAL_CONCURRENT = Number(process.env.BENCH_K8S_REAL_CONCURRENT ?? 20);

async function realNode(): Promise<void> {
  const lib = await import('@kubernetes/client-node');
  const binDir = k8sBinDir();
  const engine = startLocalDockerEngine();
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'c2d-bench-k8s-'));
  const nodeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-bench-node-'));
  const tStart = performance.now();
  const cp = await startControlPlane({ dir, binDir, node: 'real', nodeDir });
  const upMs = performance.now() - tStart;
  const watchAbort = new AbortController();
  try {
    const run = (args: string[]): Promise<string> => kubectl(binDir, cp.kubeconfig, args);
    await run(['apply', '-f', path.join(root, 'k8s/base/namespaces.yaml')]);
    await run(['apply', '-f', path.join(root, 'k8s/base/network-policies.yaml')]);
    await waitForDefaultServiceAccount(run);
    const resultsDir = path.join(nodeDir, 'results');
    fs.mkdirSync(resultsDir);
    await kubectl(binDir, cp.kubeconfig, ['apply', '-f', '-'], JSON.stringify(localResultsVolume(resultsDir, cp.nodeName, NAMESPACE)));
    const adminConfig = new lib.KubeConfig();
    adminConfig.loadFromFile(cp.kubeconfig);

    // when each pod's first container ran (its network gate for the algorithm pod; BENCH_K8S_TRACE=1 prints every pod event)
    const running = new Map<string, number>();
    const watch = await new lib.Watch(adminConfig).watch(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      { labelSelector: 'c2d.job' },
      (_type: string, pod: k8s.V1Pod) => {
        const name = pod.metadata?.name ?? '';
        if (process.env.BENCH_K8S_TRACE)
          console.log(
            `${(performance.now() / 1000).toFixed(3)} ${_type} ${name.slice(-12)} ${pod.spec?.nodeName ?? '-'} ${pod.status?.phase} ${JSON.stringify(pod.status?.initContainerStatuses?.map((c) => Object.keys(c.state ?? {})))} ${JSON.stringify(pod.status?.containerStatuses?.map((c) => Object.keys(c.state ?? {})))}`,
          );
        const initRan = pod.status?.initContainerStatuses?.some((c) => c.state?.running || c.state?.terminated) ?? false;
        if (!running.has(name) && (initRan || ['Running', 'Succeeded', 'Failed'].includes(pod.status?.phase ?? ''))) running.set(name, performance.now());
      },
      (err: unknown) => {
        if (err && !watchAbort.signal.aborted) console.error('pod watch ended:', err);
      },
    );
    watchAbort.signal.addEventListener('abort', () => watch.abort());

    // one at a time: the default CPU of our steps (0.5) and half a CPU for the algorithm; 20 at once: 0.09 CPU
    // each, so that all fit the node's 2 CPUs (requests are limits: our programs start more slowly there)
    const envOf = (cpu: number): KubernetesEnvironment =>
      kubernetesEnvironmentSchema.parse({
        id: `bench-k8s-real-${cpu}`,
        backend: 'kubernetes',
        cpuNumber: cpu,
        ramGB: 0.25,
        diskGB: 1,
        maxJobDuration: 300,
        kubernetes: {
          images: { configure: engine.images.configure, publish: engine.images.publish },
          algorithmImages: { python: engine.images.pythonNumpy },
          stepResources: { cpu, memoryMB: 128 },
          networkGate: { port: cp.realNode!.kubeletPort },
        },
      });
    const client = createKubeClient(cp.kubeconfig);
    type Env = { environment: KubernetesEnvironment; backend: KubernetesBackend };
    const envAndBackend = (environment: KubernetesEnvironment): Env => ({
      environment,
      backend: new KubernetesBackend({ environment, client, resultsDir, logger: silent }),
    });
    const one = envAndBackend(envOf(0.5));
    const many = envAndBackend(envOf(0.09));
    const hooks = () => ({ heartbeat: () => undefined, signal: new AbortController().signal });
    const steps: StepName[] = ['configure', 'algorithm', 'publish'];
    const request = (environment: KubernetesEnvironment, jobId: string, step: StepName): StepRequest => {
      if (step === 'configure')
        return { jobId, environment, step, configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: 'print(1)' }, maxInputBytes: 1024 } };
      if (step === 'algorithm')
        return {
          jobId,
          environment,
          step,
          algorithm: { container: { image: 'python', tag: '3', entrypoint: 'python3 $ALGO', checksum: '' }, env: {}, allowNetwork: false },
        };
      return { jobId, environment, step };
    };
    const stepMs: Record<string, number[]> = { configure: [], algorithm: [], publish: [], cleanup: [] };
    const runJob = async ({ environment, backend }: Env, jobId: string): Promise<{ toRunning: number[]; total: number }> => {
      const t0 = performance.now();
      const started: [string, number][] = [];
      for (const step of steps) {
        const t = performance.now();
        if (process.env.BENCH_K8S_TRACE) console.log(`${(t / 1000).toFixed(3)} start ${step}`);
        const outcome = await backend.runStep(request(environment, jobId, step), hooks());
        stepMs[step]!.push(performance.now() - t);
        if (outcome.exitCode !== 0) throw new Error(`job ${jobId} step ${step}: ${JSON.stringify(outcome)}`);
        started.push([`c2d-${jobId}-${step}`, t]);
      }
      const t = performance.now();
      await backend.listPublished(jobId);
      await backend.cleanup(jobId);
      stepMs.cleanup!.push(performance.now() - t);
      const total = performance.now() - t0;
      // (this process's own watch may see a pod's status a moment after the backend's: not counted in the job's time)
      for (const [pod] of started) for (let i = 0; i < 40 && !running.has(pod); i++) await sleep(50);
      return { toRunning: started.map(([pod, at]) => (running.get(pod) ?? NaN) - at), total };
    };

    await runJob(one, hex()); // warm-up: images into containerd, client connections
    for (const v of Object.values(stepMs)) v.length = 0;

    const toRunning: number[] = [];
    const totals: number[] = [];
    for (let i = 0; i < REAL_JOBS; i++) {
      const r = await runJob(one, hex());
      toRunning.push(...r.toRunning);
      totals.push(r.total);
    }
    const sequentialSteps = Object.entries(stepMs).map(([k, v]) => `${k} ${ms(percentile(v, 50))}`);
    const t0 = performance.now();
    const together = await Promise.all(Array.from({ length: REAL_CONCURRENT }, () => runJob(many, hex())));
    const allDone = performance.now() - t0;

    console.log(`kubernetes backend on a real node (containerd + kubelet + kube-router; ${REAL_JOBS} sequential jobs, ${REAL_CONCURRENT} at once)`);
    console.log(`  control plane + real node up: ${ms(upMs)}`);
    console.log(`  one job at a time, per step (start → its end seen), p50: ${sequentialSteps.join(', ')}`);
    console.log(`  step start → its pod running: p50 ${ms(percentile(toRunning, 50))}, p99 ${ms(percentile(toRunning, 99))}`);
    console.log(`  job through three real pods (+ listPublished, cleanup): p50 ${ms(percentile(totals, 50))}, p99 ${ms(percentile(totals, 99))}`);
    console.log(
      `  ${REAL_CONCURRENT} jobs at once: all done in ${ms(allDone)}; per job p50 ${ms(
        percentile(
          together.map((r) => r.total),
          50,
        ),
      )}, p99 ${ms(
        percentile(
          together.map((r) => r.total),
          99,
        ),
      )} (load average ${os.loadavg()[0]!.toFixed(1)})`,
    );
  } finally {
    watchAbort.abort();
    await cp.stop();
    engine.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(nodeDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
