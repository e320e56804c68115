/**
 * The kubernetes backend's log handling. The pod log API needs a kubelet, which the test control plane
 * does not have (kwok runs no container), so here an in-memory stand-in for the API server serves pods,
 * watches and logs through the backend's own KubeClient interface.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { KubeClient, KubeKind, KubeObject, PodEventType, V1Pod } from '../../src/compute/kubernetes/client';
import { KubernetesBackend } from '../../src/compute/kubernetes';
import { kubernetesEnvironmentSchema } from '../../src/domain/environment';
import { silentLogger } from '../helpers/process-backend';

const jobId = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const podName = (step: string): string => `c2d-${jobId}-${step}`;

/** Objects by kind/name, pod watchers, container logs and live log streams. */
class FakeCluster implements KubeClient {
  calls = 0;
  objects = new Map<string, KubeObject>();
  logs = new Map<string, string>();
  live = new Map<string, PassThrough>();
  private watchers = new Set<(type: PodEventType, pod: V1Pod) => void>();
  private uid = 0;

  create<T extends KubeObject>(obj: T): Promise<{ object: T; created: true } | { object: null; created: false }> {
    this.calls++;
    const key = `${obj.kind}/${obj.metadata?.name}`;
    if (this.objects.has(key)) return Promise.resolve({ object: null, created: false });
    const stored = { ...obj, metadata: { ...obj.metadata, uid: `uid-${++this.uid}` } } as T;
    this.objects.set(key, stored);
    if (obj.kind === 'Pod') this.emit('ADDED', stored as V1Pod);
    return Promise.resolve({ object: stored, created: true });
  }
  read<K extends KubeKind>(kind: K, _ns: string, name: string) {
    this.calls++;
    return Promise.resolve((this.objects.get(`${kind}/${name}`) ?? null) as Extract<KubeObject, { kind: K }> | null);
  }
  remove(kind: KubeKind, _ns: string, name: string) {
    this.calls++;
    const obj = this.objects.get(`${kind}/${name}`);
    this.objects.delete(`${kind}/${name}`);
    if (obj && kind === 'Pod') this.emit('DELETED', obj as V1Pod);
    return Promise.resolve(obj !== undefined);
  }
  listPods(_ns: string, selector: { fieldSelector?: string; labelSelector?: string }) {
    this.calls++;
    const name = selector.fieldSelector?.replace('metadata.name=', '');
    const job = selector.labelSelector?.replace('c2d.job=', '');
    const items = [...this.objects.values()].filter(
      (o): o is KubeObject & { kind: 'Pod' } => o.kind === 'Pod' && (!name || o.metadata?.name === name) && (!job || o.metadata?.labels?.['c2d.job'] === job),
    );
    return Promise.resolve({ items: items, resourceVersion: '1' });
  }
  async watchPods(_ns: string, query: { fieldSelector?: string }, onEvent: (type: PodEventType, pod: V1Pod) => void, signal: AbortSignal) {
    this.calls++;
    if (signal.aborted) return;
    const name = query.fieldSelector?.replace('metadata.name=', '');
    const listener = (type: PodEventType, pod: V1Pod): void => {
      if (!name || pod.metadata?.name === name) onEvent(type, pod);
    };
    this.watchers.add(listener);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    this.watchers.delete(listener);
  }
  podLog(_ns: string, pod: string) {
    this.calls++;
    return Promise.resolve(this.logs.get(pod) ?? null);
  }
  followPodLog(_ns: string, pod: string) {
    this.calls++;
    const s = new PassThrough();
    this.live.set(pod, s);
    return Promise.resolve(s as Readable | null);
  }

  setStatus(name: string, status: V1Pod['status']): void {
    const pod = this.objects.get(`Pod/${name}`) as V1Pod;
    pod.status = status;
    this.emit('MODIFIED', pod);
  }
  private emit(type: PodEventType, pod: V1Pod): void {
    for (const w of this.watchers) w(type, pod);
  }
}

const env = kubernetesEnvironmentSchema.parse({ id: 'k8s', backend: 'kubernetes' });
const terminated = (step: string, exitCode = 0): V1Pod['status'] => ({
  phase: exitCode === 0 ? 'Succeeded' : 'Failed',
  containerStatuses: [{ name: step, image: 'i', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode } } }],
});
const runningStatus = (step: string): V1Pod['status'] => ({
  phase: 'Running',
  containerStatuses: [{ name: step, image: 'i', imageID: '', ready: true, restartCount: 0, state: { running: {} } }],
});
const hooks = { heartbeat: () => undefined, signal: new AbortController().signal };
const algorithm = { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: '' }, env: {}, allowNetwork: false };

async function text(stream: Readable | null): Promise<string> {
  if (!stream) throw new Error('no stream');
  let s = '';
  for await (const chunk of stream) s += String(chunk);
  return s;
}

async function eventually(fn: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(fn()).toBe(true);
}

describe('kubernetes backend logs', () => {
  let cluster: FakeCluster;
  let resultsDir: string;
  let backend: KubernetesBackend;
  beforeEach(() => {
    cluster = new FakeCluster();
    resultsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-k8s-logs-'));
    backend = new KubernetesBackend({ environment: env, client: cluster, resultsDir, logger: silentLogger, heartbeatMs: 50 });
  });
  afterEach(() => fs.rmSync(resultsDir, { recursive: true, force: true }));

  it('when a step ends, then its log is kept beside the outputs and listed as a result after them', async () => {
    const run = backend.runStep({ jobId, environment: env, step: 'algorithm', algorithm }, hooks);
    await eventually(() => cluster.objects.has(`Pod/${podName('algorithm')}`));
    cluster.logs.set(podName('algorithm'), 'hello from the algorithm\n');
    cluster.setStatus(podName('algorithm'), terminated('algorithm'));
    expect((await run).exitCode).toBe(0);
    cluster.logs.clear(); // pods (and their logs) go with cleanup: the kept copy must serve
    const publish = backend.runStep({ jobId, environment: env, step: 'publish' }, hooks);
    await eventually(() => cluster.objects.has(`Pod/${podName('publish')}`));
    fs.writeFileSync(path.join(resultsDir, jobId, 'outputs', 'out.csv'), 'a,b');
    cluster.setStatus(podName('publish'), terminated('publish'));
    await publish;
    const files = await backend.listPublished(jobId);
    expect(files.map((f) => [f.filename, f.type, f.size])).toEqual([
      ['out.csv', 'output', 3],
      ['algorithm.log', 'algorithmLog', 25],
    ]);
    expect(await text(files[1]!.open())).toBe('hello from the algorithm\n');
    expect(await text(backend.openLog(jobId, 'algorithm', { follow: true }))).toBe('hello from the algorithm\n');
  });

  it("when a running algorithm's log is followed, then it streams from the pod log API once the container has started, until it ends", async () => {
    const run = backend.runStep({ jobId, environment: env, step: 'algorithm', algorithm }, hooks);
    await eventually(() => cluster.objects.has(`Pod/${podName('algorithm')}`));
    const reading = text(backend.openLog(jobId, 'algorithm', { follow: true }));
    await new Promise((r) => setTimeout(r, 50));
    expect(cluster.live.size).toBe(0); // not before the container runs
    cluster.setStatus(podName('algorithm'), runningStatus('algorithm'));
    await eventually(() => cluster.live.has(podName('algorithm')));
    const live = cluster.live.get(podName('algorithm'))!;
    live.write('step 1\n');
    live.end('step 2\n');
    expect(await reading).toBe('step 1\nstep 2\n');
    cluster.setStatus(podName('algorithm'), terminated('algorithm'));
    await run;
  });

  it('when the algorithm never started, then its followed log is empty at once', async () => {
    expect(await text(backend.openLog(jobId, 'algorithm', { follow: true }))).toBe('');
  });

  it('when the reader leaves, then following stops', async () => {
    const run = backend.runStep({ jobId, environment: env, step: 'algorithm', algorithm }, hooks);
    await eventually(() => cluster.objects.has(`Pod/${podName('algorithm')}`));
    const abort = new AbortController();
    const reading = text(backend.openLog(jobId, 'algorithm', { follow: true, signal: abort.signal }));
    abort.abort();
    expect(await reading).toBe('');
    cluster.setStatus(podName('algorithm'), terminated('algorithm'));
    await run;
  });

  it('when the job is stopped, then the logs of its started steps are kept before the pods go', async () => {
    const run = backend.runStep({ jobId, environment: env, step: 'algorithm', algorithm }, hooks);
    await eventually(() => cluster.objects.has(`Pod/${podName('algorithm')}`));
    cluster.setStatus(podName('algorithm'), runningStatus('algorithm'));
    cluster.logs.set(podName('algorithm'), 'partial output\n');
    await backend.stopJob(jobId);
    expect((await run).reason).toBe('stopped');
    expect(cluster.objects.has(`Pod/${podName('algorithm')}`)).toBe(false);
    cluster.logs.clear();
    const files = await backend.listPublished(jobId);
    expect(files.map((f) => f.filename)).toEqual(['algorithm.log']);
    expect(await text(files[0]!.open())).toBe('partial output\n');
  });
});
