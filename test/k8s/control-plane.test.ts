import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive } from '../../tools/k8s-control-plane';
import { realNodePids } from '../../tools/k8s-node';
import { FAKE_NODE, KWOK_CUSTOM_STATUS_ANNOTATION, type Kube, STORAGE_CLASS, startKube } from '../helpers/kube';

const exec = promisify(execFile);
const root = path.resolve(__dirname, '../..');

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last instanceof Error ? ` (${last.message})` : ''}`);
    await sleep(100);
  }
}

interface PodJson {
  spec: { nodeName?: string };
  status: { phase?: string; conditions?: { type: string; status: string }[] };
}

describe('the local Kubernetes control plane', () => {
  let kube: Kube;
  let startedInMs = 0;
  const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kube.kubectl([...args, '-o', 'json'])) as T;
  const pod = (name: string, annotations: Record<string, string> = {}): string =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, annotations },
      spec: {
        automountServiceAccountToken: false,
        restartPolicy: 'Never',
        containers: [
          { name: 'main', image: 'busybox', resources: { requests: { cpu: '1', 'nvidia.com/gpu': '1' }, limits: { cpu: '1', 'nvidia.com/gpu': '1' } } },
        ],
      },
    });

  beforeAll(async () => {
    const t0 = Date.now();
    kube = await startKube();
    startedInMs = Date.now() - t0;
  }, 180_000);
  afterAll(() => kube?.stop());

  it('when started, then it is ready within seconds and kubectl reaches it as an admin', async () => {
    expect(startedInMs).toBeLessThan(60_000);
    expect(kube.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect((await kube.kubectl(['auth', 'can-i', '*', '*', '--all-namespaces'])).trim()).toBe('yes');
    const node = await getJson<{ status: { allocatable: Record<string, string> } }>(['get', 'node', FAKE_NODE]);
    expect(node.status.allocatable['nvidia.com/gpu']).toBe('8');
  });

  it('when a service account has no binding, then RBAC refuses it and a RoleBinding grants exactly what its Role says', async () => {
    await kube.kubectl(['create', 'namespace', 'rbac-check']);
    await kube.kubectl(['-n', 'rbac-check', 'create', 'serviceaccount', 'someone']);
    const as = ['--as=system:serviceaccount:rbac-check:someone'];
    await expect(kube.kubectl(['-n', 'rbac-check', 'get', 'pods', ...as])).rejects.toThrow(/forbidden/);
    await kube.kubectl(['-n', 'rbac-check', 'create', 'role', 'pod-reader', '--verb=get,list', '--resource=pods']);
    await kube.kubectl(['-n', 'rbac-check', 'create', 'rolebinding', 'pod-reader', '--role=pod-reader', '--serviceaccount=rbac-check:someone']);
    await eventually('the binding takes effect', async () =>
      (await kube.kubectl(['-n', 'rbac-check', 'auth', 'can-i', 'list', 'pods', ...as]).catch(() => 'no')).trim() === 'yes' ? true : undefined,
    );
    await expect(kube.kubectl(['-n', 'rbac-check', 'auth', 'can-i', 'create', 'pods', ...as])).rejects.toThrow();
    await expect(kube.kubectl(['-n', 'default', 'get', 'pods', ...as])).rejects.toThrow(/forbidden/);
  });

  it('when a pod is created, then the ServiceAccount admission needs the namespace default account, the scheduler binds it to the fake node and kwok makes it Running', async () => {
    await kube.kubectl(['create', 'namespace', 'pods']);
    await kube.waitForServiceAccount('pods');
    await kube.kubectl(['-n', 'pods', 'create', '-f', '-'], pod('runs'));
    const p = await eventually('the pod Running', async () => {
      const p = await getJson<PodJson>(['-n', 'pods', 'get', 'pod', 'runs']);
      return p.status.phase === 'Running' ? p : undefined;
    });
    expect(p.spec.nodeName).toBe(FAKE_NODE);
    expect(p.status.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'True' }));
  });

  it('when a pod carries the custom-status annotation, then kwok leaves its status to the test, which can end it', async () => {
    await kube.kubectl(['create', 'namespace', 'custom']);
    await kube.waitForServiceAccount('custom');
    await kube.kubectl(['-n', 'custom', 'create', '-f', '-'], pod('ends', KWOK_CUSTOM_STATUS_ANNOTATION));
    await eventually('the pod scheduled', async () =>
      (await getJson<PodJson>(['-n', 'custom', 'get', 'pod', 'ends'])).spec.nodeName === FAKE_NODE ? true : undefined,
    );
    await sleep(1000);
    expect((await getJson<PodJson>(['-n', 'custom', 'get', 'pod', 'ends'])).status.phase).toBe('Pending');
    const status = {
      status: {
        phase: 'Failed',
        containerStatuses: [
          { name: 'main', image: 'busybox', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } },
        ],
      },
    };
    await kube.kubectl(['-n', 'custom', 'patch', 'pod', 'ends', '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
    await sleep(1000);
    const after = await getJson<PodJson & { status: { containerStatuses: { state: { terminated?: { exitCode: number; reason: string } } }[] } }>([
      '-n',
      'custom',
      'get',
      'pod',
      'ends',
    ]);
    expect(after.status.phase).toBe('Failed');
    expect(after.status.containerStatuses[0]?.state.terminated).toMatchObject({ exitCode: 137, reason: 'OOMKilled' });
  });

  it('when a test ends a Running pod or leaves it waiting on its image, then the status sticks (kwok does not undo it)', async () => {
    await kube.kubectl(['create', 'namespace', 'ends']);
    await kube.waitForServiceAccount('ends');
    for (const name of ['ok', 'oom', 'pull']) await kube.kubectl(['-n', 'ends', 'create', '-f', '-'], pod(name));
    for (const name of ['ok', 'oom', 'pull']) await kube.waitForPod('ends', name, (p) => p.status?.phase === 'Running');
    await kube.finishPod('ends', 'ok', { exitCode: 0 });
    await kube.finishPod('ends', 'oom', { exitCode: 137, reason: 'OOMKilled' });
    await kube.waitPod('ends', 'pull', 'ImagePullBackOff', 'Back-off pulling image "busybox"');
    await sleep(1500);
    type Terminated = { exitCode: number; reason: string };
    const state = async (name: string): Promise<{ phase?: string; state: { terminated?: Terminated; waiting?: { reason: string } } }> => {
      const p = await kube.waitForPod('ends', name, () => true);
      return {
        phase: p.status?.phase,
        state: (p.status?.containerStatuses as { state: { terminated?: Terminated; waiting?: { reason: string } } }[])[0]!.state,
      };
    };
    expect(await state('ok')).toMatchObject({ phase: 'Succeeded', state: { terminated: { exitCode: 0, reason: 'Completed' } } });
    expect(await state('oom')).toMatchObject({ phase: 'Failed', state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } });
    expect(await state('pull')).toMatchObject({ phase: 'Pending', state: { waiting: { reason: 'ImagePullBackOff' } } });
  });

  it('when a claim asks for the default storage, then it binds, its pod runs, and once both are deleted nothing is left', async () => {
    await kube.kubectl(['create', 'namespace', 'vol']);
    await kube.waitForServiceAccount('vol');
    const claim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data' },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } },
    };
    await kube.kubectl(['-n', 'vol', 'create', '-f', '-'], JSON.stringify(claim));
    const user = JSON.parse(pod('user')) as { spec: { volumes?: unknown[] } };
    user.spec.volumes = [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }];
    await kube.kubectl(['-n', 'vol', 'create', '-f', '-'], JSON.stringify(user));
    await kube.waitForPod('vol', 'user', (p) => p.status?.phase === 'Running');
    const bound = await getJson<{ status: { phase: string }; spec: { storageClassName: string } }>(['-n', 'vol', 'get', 'pvc', 'data']);
    expect(bound).toMatchObject({ status: { phase: 'Bound' }, spec: { storageClassName: STORAGE_CLASS } });
    await kube.kubectl(['-n', 'vol', 'delete', 'pvc', 'data', '--wait=false']);
    await kube.kubectl(['-n', 'vol', 'delete', 'pod', 'user', '--wait=false']);
    await eventually('pod and claim gone', async () => ((await kube.kubectl(['-n', 'vol', 'get', 'pods,pvc', '-o', 'name'])).trim() === '' ? true : undefined));
  });

  it('when an owner is deleted, then the garbage collector deletes its dependents (ownerReferences cascade)', async () => {
    await kube.kubectl(['create', 'namespace', 'gc']);
    await kube.kubectl(['-n', 'gc', 'create', 'configmap', 'owner']);
    const uid = (await kube.kubectl(['-n', 'gc', 'get', 'configmap', 'owner', '-o', 'jsonpath={.metadata.uid}'])).trim();
    const child = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'child', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid }] },
      stringData: { a: 'b' },
    };
    await kube.kubectl(['-n', 'gc', 'create', '-f', '-'], JSON.stringify(child));
    await kube.kubectl(['-n', 'gc', 'delete', 'configmap', 'owner']);
    await eventually('the dependent deleted', async () =>
      (await kube.kubectl(['-n', 'gc', 'get', 'secrets', '-o', 'name'])).includes('secret/child') ? undefined : true,
    );
  });

  it('when a namespace is deleted, then the namespace controller empties and removes it', async () => {
    await kube.kubectl(['create', 'namespace', 'gone']);
    await kube.kubectl(['-n', 'gone', 'create', 'configmap', 'x']);
    await kube.kubectl(['delete', 'namespace', 'gone', '--wait=false']);
    await eventually('the namespace gone', async () =>
      (await kube.kubectl(['get', 'namespaces', '-o', 'name'])).includes('namespace/gone') ? undefined : true,
    );
  });

  it('when npm run k8s:up and k8s:down run, then up prints a working kubeconfig path, says so when already up, and down stops every process', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-k8s-up-'));
    const script = path.join(root, 'dist/tools/k8s-control-plane.js');
    const env = { ...process.env, C2D_DATA_DIR: dataDir };
    try {
      const up = await exec(process.execPath, [script, 'up'], { env, timeout: 120_000 });
      const kubeconfig = up.stdout.trim().split('\n').pop()!;
      expect(kubeconfig).toBe(path.join(dataDir, 'k8s', 'admin.kubeconfig'));
      const ns = await exec(path.join(kube.binDir, 'kubectl'), ['--kubeconfig', kubeconfig, 'get', 'namespaces', '-o', 'name']);
      expect(ns.stdout).toContain('namespace/kube-system');
      const again = await exec(process.execPath, [script, 'up'], { env });
      expect(again.stdout).toContain('already runs');
      const state = JSON.parse(fs.readFileSync(path.join(dataDir, 'k8s', 'state.json'), 'utf8')) as { pids: { pid: number }[]; nodeDir?: string };
      const pids = state.pids.map((p) => p.pid);
      // as root with containerd (CI), a real node: containerd, kubelet, kube-proxy, CoreDNS, kube-router; else kwok's fake node
      const real = process.getuid?.() === 0 && fs.existsSync('/usr/bin/containerd');
      expect(up.stdout).toContain(real ? 'Node c2d-node-0: a real kubelet' : "Node kwok-node-0: kwok's fake node");
      const nodes = await exec(path.join(kube.binDir, 'kubectl'), ['--kubeconfig', kubeconfig, 'get', 'nodes', '-o', 'name']);
      expect(nodes.stdout.trim()).toBe(real ? 'node/c2d-node-0' : 'node/kwok-node-0');
      const nodePids = real ? realNodePids(state.nodeDir!) : [];
      expect([pids.length, nodePids.length]).toEqual(real ? [4, 5] : [5, 0]);
      const down = await exec(process.execPath, [script, 'down'], { env });
      expect(down.stdout).toContain(`Stopped the local control plane (${pids.length + nodePids.length} processes)`);
      expect([...pids, ...nodePids].filter(alive)).toEqual([]);
    } finally {
      await exec(process.execPath, [script, 'down'], { env }).catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
