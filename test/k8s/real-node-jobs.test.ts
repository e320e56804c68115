/**
 * Whole jobs on the kubernetes backend with a real node: the configure, algorithm and publishing pods
 * really run (our images and a Python one from the local registry, by digest), as the worker
 * ServiceAccount of k8s/base; nobody plays the kubelet.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ProviderClient } from '../../src/client/provider-client';
import type { KubernetesEnvironmentInput } from '../../src/domain/environment';
import { startTestEngine, type TestEngine } from '../helpers/docker';
import { describeAsRoot } from '../helpers/privilege';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText, waitFor } from '../integration/helpers';
import { type BackendCluster, startBackendCluster } from './backend-cluster';

describeAsRoot('a real Kubernetes node (containerd, the kubelet, kube-router)')('jobs on the kubernetes backend with a real node', () => {
  let engine: TestEngine;
  let cluster: BackendCluster;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let nodeService: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let privateDataset: string;

  const env = (id: string, extra: Partial<KubernetesEnvironmentInput> = {}): KubernetesEnvironmentInput => {
    const k = cluster.env({
      kubernetes: {
        images: { configure: engine.images.configure, publish: engine.images.publish },
        algorithmImages: { python: engine.images.pythonNumpy },
        allowAnyImage: true,
        stepResources: { cpu: 0.25, memoryMB: 256 },
        // the gate dials the node's kubelet (on the pod's host IP) until the job's NetworkPolicy cuts it off
        networkGate: { port: cluster.kube.realNode!.kubeletPort },
        ...extra.kubernetes,
      },
    }).kubernetes;
    return { id, backend: 'kubernetes', cpuNumber: 0.5, ramGB: 0.25, diskGB: 1, maxJobs: 2, maxJobDuration: 120, ...extra, kubernetes: k };
  };

  beforeAll(async () => {
    engine = startTestEngine();
    cluster = await startBackendCluster({ node: 'real' });
    // the namespace's policies as deployed: configure pods reach the internet but no private range, the rest nothing
    await cluster.kube.kubectl(['apply', '-f', path.join(__dirname, '../../k8s/base/network-policies.yaml')]);
    // the dataset's server, where pods reach "the internet" (an address of the host's outside the private ranges)
    data = await serveFiles({ 'numbers.csv': '1\n2\n3\n4\n' }, { address: cluster.kube.realNode!.outsideAddress });
    // a service of the node itself, on its private address: allowed by the provider's fetch guard here, so
    // that only the network policy stands between a configure pod and it
    nodeService = await serveFiles({ 'numbers.csv': 'secret\n' }, { address: cluster.kube.realNode!.gateway });
    stack = await startStack({
      environments: [env('real'), env('real-short', { maxJobDuration: 8 })],
      env: { C2D_KUBECONFIG: cluster.workerKubeconfig, C2D_K8S_RESULTS_DIR: cluster.resultsDir },
    });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'numbers', urls: [data.url('numbers.csv')], compute: { allowRawAlgorithm: true } });
    privateDataset = await stack.publish(client, {
      type: 'dataset',
      name: 'on the node',
      urls: [nodeService.url('numbers.csv')],
      compute: { allowRawAlgorithm: true },
    });
  }, 900_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    nodeService?.close();
    await cluster?.stop();
    engine?.stop();
  }, 120_000);

  // `python` is the environment's name for the Python image (algorithmImages); its checksum is that image's digest
  const python = (rawcode: string, container: { image?: string; checksum?: string } = {}) => ({
    meta: { rawcode, container: { entrypoint: 'python3 $ALGO', image: 'python', tag: '3', checksum: engine.images.pythonNumpy.split('@')[1]!, ...container } },
  });
  /** an algorithm that dials each [host, port] first thing and writes what happened ("reached" or the error's name) to dial.json */
  const dialing = (targets: readonly (readonly [string, number])[]) =>
    python(`
import json, socket
out = []
for host, port in ${JSON.stringify(targets)}:
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); out.append("reached")
    except Exception as e:
        out.append(type(e).__name__)
open('/data/outputs/dial.json', 'w').write(json.dumps(out))
`);
  const start = (environment: string, algorithm: ReturnType<typeof python>) =>
    client.startJob({ environment, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm });
  const run = async (environment: string, algorithm: ReturnType<typeof python>) =>
    client.waitForJob((await start(environment, algorithm)).jobId, { timeoutMs: 150_000 });

  it('when a Python algorithm reads its input with numpy, then three real pods run, the job reaches 70 with its output and log, and nothing is left', async () => {
    const done = await run(
      'real',
      python(`
import numpy as np, os, glob
x = np.loadtxt(glob.glob('/data/inputs/*/0')[0])
open('/data/outputs/result.txt', 'w').write(f"sum={x.sum():.0f} mean={x.mean():.2f} uid={os.getuid()}")
print("computed with numpy", np.__version__)
`),
    );
    expect({ status: done.status, terminationDetails: done.terminationDetails }).toMatchObject({
      status: 70,
      terminationDetails: { exitCode: 0, oomKilled: false },
    });
    expect(await resultText(client, done, 'result.txt')).toBe('sum=10 mean=2.50 uid=1000');
    expect(await resultText(client, done, 'algorithm.log')).toContain('computed with numpy');
    await cluster.waitForNothingLeft(done.jobId);
    await waitFor('the job results dir to go', () => !fs.existsSync(path.join(cluster.resultsDir, done.jobId)));
  }, 180_000);

  it('when the algorithm dials the dataset server the configure pod fetched from, the node (its kubelet) and the Kubernetes API, then nothing answers: its pod has no network', async () => {
    const target = new URL(data.url('numbers.csv'));
    const targets = [
      [target.hostname, Number(target.port)],
      [cluster.kube.realNode!.gateway, cluster.kube.realNode!.kubeletPort],
      [new URL(cluster.kube.server).hostname, Number(new URL(cluster.kube.server).port)],
      ['10.96.0.1', 443], // the kubernetes Service
    ] as const;
    const done = await run('real', dialing(targets));
    expect(done.status).toBe(70);
    const results = JSON.parse(await resultText(client, done, 'dial.json')) as string[];
    expect(results).toHaveLength(targets.length);
    expect(results.filter((r) => r === 'reached')).toEqual([]);
  }, 180_000);

  it("when an algorithm allowed the network dials the node's private address the moment it starts, then nothing answers (its pod waited for its policy), while the internet does", async () => {
    const open = await stack.publish(client, {
      type: 'dataset',
      name: 'open numbers',
      urls: [data.url('numbers.csv')],
      compute: { allowRawAlgorithm: true, allowNetworkAccess: true },
    });
    const outside = new URL(data.url('numbers.csv'));
    const targets = [
      [cluster.kube.realNode!.gateway, Number(new URL(nodeService.url('numbers.csv')).port)],
      [cluster.kube.realNode!.gateway, cluster.kube.realNode!.kubeletPort],
      [outside.hostname, Number(outside.port)],
    ] as const;
    const { jobId } = await client.startJob({
      environment: 'real',
      dataset: { documentId: open, serviceId: 'compute' },
      algorithm: dialing(targets),
    });
    const done = await client.waitForJob(jobId, { timeoutMs: 150_000 });
    expect(done.status).toBe(70);
    const [service, kubelet, internet] = JSON.parse(await resultText(client, done, 'dial.json')) as string[];
    expect({ service, kubelet, internet }).toEqual({
      service: expect.not.stringMatching(/^reached$/),
      kubelet: expect.not.stringMatching(/^reached$/),
      internet: 'reached',
    });
    expect(nodeService.hits).toEqual([]);
  }, 180_000);

  it("when one job's algorithm dials another job's running algorithm pod, then nothing answers, though that pod listens", async () => {
    const listener = await start(
      'real',
      python(`
import socket, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("0.0.0.0", 8080)); srv.listen()
c = socket.create_connection(("127.0.0.1", 8080), timeout=3); c.close()
print("listening", flush=True)
srv.settimeout(1)
accepted = 0
for _ in range(25):
    try:
        srv.accept(); accepted += 1
    except socket.timeout:
        pass
open('/data/outputs/accepted.txt', 'w').write(str(accepted))
`),
    );
    const pod = await waitFor(
      "the listening job's algorithm pod to run",
      async () => {
        const p = await cluster.admin.core.readNamespacedPod({ name: `c2d-${listener.jobId}-algorithm`, namespace: 'c2d-compute' }).catch(() => null);
        return p?.status?.phase === 'Running' && p.status.podIP ? p : undefined;
      },
      120_000,
      200,
    );
    const dialer = await run(
      'real',
      python(`
import socket
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("${pod.status!.podIP}", 8080)); r = "reached"
except Exception as e:
    r = type(e).__name__
open('/data/outputs/dial.txt', 'w').write(r)
`),
    );
    expect(dialer.status).toBe(70);
    expect(await resultText(client, dialer, 'dial.txt')).not.toBe('reached');
    const done = await client.waitForJob(listener.jobId, { timeoutMs: 120_000 });
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'algorithm.log')).toContain('listening');
    expect(await resultText(client, done, 'accepted.txt')).toBe('1'); // its own probe only
  }, 300_000);

  it('when the worker is killed with SIGKILL mid-algorithm, then a new worker picks the job up: it completes and there was only ever one algorithm pod, run once', async () => {
    const { jobId } = await start(
      'real',
      python(`
import time
open('/data/outputs/runs.txt', 'a').write('run\\n')
print('started', flush=True)
time.sleep(8)
open('/data/outputs/result.txt', 'w').write('done')
print('finished', flush=True)
`),
    );
    const name = `c2d-${jobId}-algorithm`;
    const uids = new Set<string>();
    const seen = async (): Promise<string | undefined> => {
      const p = await cluster.admin.core.readNamespacedPod({ name, namespace: 'c2d-compute' }).catch(() => null);
      if (p?.metadata?.uid) uids.add(p.metadata.uid);
      return p?.status?.phase;
    };
    await waitFor('the algorithm to run', async () => (await seen()) === 'Running', 120_000, 100);
    const exited = new Promise((r) => stack.worker.once('exit', r));
    stack.worker.kill('SIGKILL');
    await exited;
    stack.startWorker();
    const job = await waitFor(
      'the job to end',
      async () => {
        await seen();
        const j = await client.job(jobId);
        return j && j.status >= 70 ? j : undefined;
      },
      120_000,
      100,
    );
    expect(job.status).toBe(70);
    expect(await resultText(client, job, 'runs.txt')).toBe('run\n');
    expect(await resultText(client, job, 'result.txt')).toBe('done');
    expect((await resultText(client, job, 'algorithm.log')).match(/started/g)).toHaveLength(1);
    expect(uids.size).toBe(1);
    await cluster.waitForNothingLeft(jobId);
  }, 300_000);

  it("when a dataset lives on the node's private address, then the configure pod cannot reach it (only the internet): the job ends 31 and the service saw nothing", async () => {
    const { jobId } = await client.startJob({
      environment: 'real',
      dataset: { documentId: privateDataset, serviceId: 'compute' },
      algorithm: python('print(1)'),
    });
    const done = await client.waitForJob(jobId, { timeoutMs: 150_000 });
    expect(done.status).toBe(31);
    // the network turned it away (the fetch guard allows this host here: it would say "refused: ...")
    expect(done.terminationDetails).toMatchObject({ reason: 'could not fetch the dataset: dataset 0 file 0: connection failed (ECONNREFUSED)' });
    expect(nodeService.hits).toEqual([]);
    await cluster.waitForNothingLeft(jobId);
  }, 180_000);

  it('when the algorithm exhausts its memory, then the kernel kills it and the job says OOM', async () => {
    const done = await run('real', python('b = bytearray(1024 * 1024 * 1024); print(len(b))'));
    expect(done.status).toBe(41);
    expect(done.terminationDetails).toMatchObject({ oomKilled: true });
  }, 180_000);

  it('when the algorithm runs past maxJobDuration, then its pod is ended at the deadline', async () => {
    const t0 = Date.now();
    const done = await run('real-short', python('import time; time.sleep(600)'));
    expect(done.terminationDetails).toMatchObject({ reason: 'exceeded maxJobDuration' });
    expect(Date.now() - t0).toBeLessThan(90_000);
    await cluster.waitForNothingLeft(done.jobId);
  }, 180_000);

  it('when the consumer stops a running job, then its algorithm pod goes and the job ends stopped', async () => {
    const { jobId } = await start('real', python('import time; print("started", flush=True); time.sleep(600)'));
    await waitFor('the algorithm to run', async () => (await client.job(jobId))?.status === 40, 120_000, 200);
    await client.stopJob(jobId);
    const done = await client.waitForJob(jobId, { timeoutMs: 120_000 });
    expect(done.stopreq).toBeGreaterThan(0);
    await cluster.waitForNothingLeft(jobId);
  }, 240_000);

  it('when the image does not exist in the registry, then the job ends 32, naming the image', async () => {
    const done = await run('real', python('print(1)', { image: '127.0.0.1:5000/no-such-image', checksum: `sha256:${'b'.repeat(64)}` }));
    expect(done.status).toBe(32);
    expect(done.terminationDetails).toMatchObject({ reason: expect.stringContaining('127.0.0.1:5000/no-such-image') });
    await cluster.waitForNothingLeft(done.jobId);
  }, 180_000);

  it('when container.checksum is not the digest of the image, then that image is not run: the job ends 32 naming the digest', async () => {
    const [image] = engine.images.pythonNumpy.split('@') as [string];
    const other = `sha256:${'c'.repeat(64)}`;
    const done = await run('real', python('print(1)', { image, checksum: other }));
    expect(done.status).toBe(32);
    expect(done.terminationDetails).toMatchObject({ reason: expect.stringContaining(other) });
    await cluster.waitForNothingLeft(done.jobId);
  }, 180_000);

  it('when the image is given by its digest, then the pod runs exactly that image', async () => {
    const [image, digest] = engine.images.pythonNumpy.split('@') as [string, string];
    const done = await run('real', python('print("pinned")', { image, checksum: digest }));
    expect(done.status).toBe(70);
    expect(await resultText(client, done, 'algorithm.log')).toContain('pinned');
  }, 180_000);
});
