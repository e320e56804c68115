/**
 * Whole jobs on the kubernetes backend: a provider (worker and API processes, the run's Temporal
 * server) whose environment runs on a real API server as the worker ServiceAccount. The test plays the
 * kubelet: it ends each step's pod when it chooses, and checks that the job's Ocean status follows.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { type BackendCluster, running, startBackendCluster, terminated, waiting } from './backend-cluster';

let cluster: BackendCluster;
let stack: Stack;
let data: Awaited<ReturnType<typeof serveFiles>>;
let client: ProviderClient;
let dataset: string;

beforeAll(async () => {
  cluster = await startBackendCluster();
  data = await serveFiles({ 'rows.csv': 'x,y\n1,2\n' });
  const k8sEnv = cluster.env();
  stack = await startStack({
    environments: [
      { id: 'k8s-test', backend: 'kubernetes', cpuNumber: 1, ramGB: 0.5, diskGB: 1, maxJobs: 2, maxJobDuration: 300, kubernetes: k8sEnv.kubernetes },
    ],
    env: { C2D_KUBECONFIG: cluster.workerKubeconfig, C2D_K8S_RESULTS_DIR: cluster.resultsDir },
  });
  client = stack.consumer();
  dataset = await stack.publish(client, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
}, 180_000);

afterAll(async () => {
  if (stack) await stack.stop();
  data?.close();
  if (cluster) await cluster.stop();
});

const raw = { meta: { rawcode: 'console.log(1)', container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'a'.repeat(64)}` } } };

async function statusBecomes(jobId: string, status: number): Promise<JobView> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const job = await client.job(jobId);
    if (job?.status === status) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} is in status ${job?.status}, not ${status}\n${stack.output()}`);
    await sleep(50);
  }
}

const pod = (jobId: string, step: string): string => `c2d-${jobId}-${step}`;

describe('a compute job on the kubernetes backend', () => {
  it('when each step pod ends, then the job moves on: 20 while configuring, 40 while the algorithm runs, 60 while publishing, 70 with its outputs, and nothing is left in the cluster', async () => {
    const { jobId } = await client.startJob({ environment: 'k8s-test', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });

    await cluster.waitForPod(pod(jobId, 'configure'));
    await statusBecomes(jobId, 20);
    await cluster.setPodStatus(pod(jobId, 'configure'), terminated('configure', { exitCode: 0, message: '{"ok":true}' }));

    await cluster.waitForPod(pod(jobId, 'algorithm'));
    await statusBecomes(jobId, 40);
    await cluster.setPodStatus(pod(jobId, 'algorithm'), running('algorithm'));
    await cluster.setPodStatus(pod(jobId, 'algorithm'), terminated('algorithm', { exitCode: 0 }));

    await cluster.waitForPod(pod(jobId, 'publish'));
    await statusBecomes(jobId, 60);
    fs.writeFileSync(path.join(cluster.resultsDir, jobId, 'outputs', 'sum.txt'), '6'); // what the publishing pod copies there
    await cluster.setPodStatus(pod(jobId, 'publish'), terminated('publish', { exitCode: 0 }));

    const done = await statusBecomes(jobId, 70);
    expect(done.terminationDetails).toMatchObject({ exitCode: 0, oomKilled: false });
    expect(done.results).toEqual(expect.arrayContaining([{ filename: 'sum.txt', filesize: 1, type: 'output' }]));
    const index = done.results === '' ? -1 : done.results.findIndex((r) => r.filename === 'sum.txt');
    expect(await (await client.result(jobId, index)).text()).toBe('6');
    await cluster.waitForNothingLeft(jobId);
    expect(fs.existsSync(path.join(cluster.resultsDir, jobId))).toBe(false);
  });

  it('when the publishing pod stops at its budget (exit 3), then the job ends 62, no output is published and nothing is left', async () => {
    const { jobId } = await client.startJob({ environment: 'k8s-test', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });
    await cluster.waitForPod(pod(jobId, 'configure'));
    await cluster.setPodStatus(pod(jobId, 'configure'), terminated('configure', { exitCode: 0, message: '{"ok":true}' }));
    await cluster.waitForPod(pod(jobId, 'algorithm'));
    await cluster.setPodStatus(pod(jobId, 'algorithm'), terminated('algorithm', { exitCode: 0 }));

    const publishing = await cluster.waitForPod(pod(jobId, 'publish'));
    // the environment's budget reaches the program: diskGB (1) in bytes and the default file cap
    expect(publishing.spec!.containers[0]!.args).toEqual([
      '/data/outputs',
      '/results/outputs',
      '/dev/termination-log',
      `--max-bytes=${1024 ** 3}`,
      '--max-files=10000',
    ]);
    // a file on the results volume that the pod did not report (it copied nothing valid): never served
    fs.writeFileSync(path.join(cluster.resultsDir, jobId, 'outputs', 'big.bin'), 'x');
    await cluster.setPodStatus(pod(jobId, 'publish'), terminated('publish', { exitCode: 3 }));

    const done = await statusBecomes(jobId, 62);
    expect(done.terminationDetails).toEqual({
      exitCode: 3,
      oomKilled: false,
      reason: 'could not publish results: publishing step wrote more output than the environment allows',
    });
    expect(done.results === '' ? [] : done.results.filter((r) => r.type === 'output')).toEqual([]);
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the algorithm image cannot be pulled, then the job ends in 32 with a reason naming the image, not stuck, and nothing is left', async () => {
    const { jobId } = await client.startJob({ environment: 'k8s-test', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });
    await cluster.waitForPod(pod(jobId, 'configure'));
    await cluster.setPodStatus(pod(jobId, 'configure'), terminated('configure', { exitCode: 0, message: '{"ok":true}' }));
    await cluster.waitForPod(pod(jobId, 'algorithm'));
    await cluster.setPodStatus(pod(jobId, 'algorithm'), waiting('algorithm', 'ImagePullBackOff', 'Back-off pulling image'));
    await cluster.waitForPod(pod(jobId, 'publish'));
    await cluster.setPodStatus(pod(jobId, 'publish'), terminated('publish', { exitCode: 0 }));
    const done = await statusBecomes(jobId, 32);
    expect(done.terminationDetails).toEqual({
      exitCode: null,
      oomKilled: false,
      reason: 'algorithm could not start: image "c2d-algo-node:latest" cannot be pulled (ImagePullBackOff)',
    });
    await cluster.waitForNothingLeft(jobId);
  });

  it('when the consumer stops a running job, then its algorithm pod goes, publishing still runs, the job ends 70 with stopreq 1, and nothing is left', async () => {
    const { jobId } = await client.startJob({ environment: 'k8s-test', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: raw });
    await cluster.waitForPod(pod(jobId, 'configure'));
    await cluster.setPodStatus(pod(jobId, 'configure'), terminated('configure', { exitCode: 0, message: '{"ok":true}' }));
    await cluster.waitForPod(pod(jobId, 'algorithm'));
    await cluster.setPodStatus(pod(jobId, 'algorithm'), running('algorithm'));
    await statusBecomes(jobId, 40);
    await client.stopJob(jobId);
    // publishing still collects what the algorithm wrote before the stop
    await cluster.waitForPod(pod(jobId, 'publish'));
    expect(await cluster.jobObjects(jobId)).not.toContain(`Pod/${pod(jobId, 'algorithm')}`);
    await cluster.setPodStatus(pod(jobId, 'publish'), terminated('publish', { exitCode: 0 }));
    const done = await statusBecomes(jobId, 70);
    expect(done).toMatchObject({ stopreq: 1, terminationDetails: { exitCode: null, oomKilled: false } });
    await cluster.waitForNothingLeft(jobId);
  });
});
