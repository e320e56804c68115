import { algorithmResult, configureResult, publishFailure } from '../../src/activities/outcomes';
import { type AlgorithmSpec, type ConfigureSpec, PUBLISH_STEP_MAX_SECONDS, type StepName } from '../../src/compute/backend';
import type { V1Pod } from '../../src/compute/kubernetes/client';
import { containerStarted, podState } from '../../src/compute/kubernetes/pod-state';
import { NETWORK_GATE_SCRIPT } from '../../src/net/network-gate';
import {
  algorithmNetworkPolicy,
  algorithmPod,
  configurePod,
  configureSecret,
  dataVolumeClaim,
  type JobContext,
  jobLabels,
  jobNames,
  labelValue,
  needsNetworkPolicy,
  ownerConfigMap,
  PATHS,
  publishBudget,
  publishPod,
  resolveAlgorithmImage,
  stopMarker,
} from '../../src/compute/kubernetes/specs';
import { environmentSchema, type KubernetesEnvironmentInput, kubernetesEnvironmentSchema } from '../../src/domain/environment';

const jobId = '0123456789abcdef0123456789abcdef';
const env = (overrides: Partial<KubernetesEnvironmentInput> = {}) =>
  kubernetesEnvironmentSchema.parse({ id: 'k8s-small', backend: 'kubernetes', cpuNumber: 2, ramGB: 1.5, diskGB: 3, maxJobDuration: 600, ...overrides });
const ctx = (overrides: Partial<KubernetesEnvironmentInput> = {}): JobContext => ({
  jobId,
  environment: env(overrides),
  owner: { name: `c2d-${jobId}`, uid: 'owner-uid' },
});
const algorithm = (overrides: Partial<AlgorithmSpec> = {}): AlgorithmSpec => ({
  container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: '' },
  env: { DIDS: '["did:op:1"]', TRANSFORMATION_DID: 'raw' },
  allowNetwork: false,
  ...overrides,
});
const configureSpec: ConfigureSpec = {
  datasets: [{ did: 'did:op:1', ddo: {}, files: [{ type: 'url', url: 'https://secret.example/data.csv', method: 'GET' }] }],
  algorithm: { did: null, ddo: null, rawcode: 'console.log(1)' },
  maxInputBytes: 1024,
};

describe('names and labels', () => {
  it('when names are derived from a job id, then they are the same every time and distinct per object', () => {
    const a = jobNames(jobId);
    const b = jobNames(jobId);
    const all = [a.owner, a.stopMarker, a.data, a.secret, a.networkPolicy, ...(['configure', 'algorithm', 'publish'] as StepName[]).map(a.pod)];
    expect(all).toEqual([b.owner, b.stopMarker, b.data, b.secret, b.networkPolicy, ...(['configure', 'algorithm', 'publish'] as StepName[]).map(b.pod)]);
    expect(new Set(all).size).toBe(all.length);
    expect(a.pod('algorithm')).toBe(`c2d-${jobId}-algorithm`);
    for (const n of all) expect(n).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
  });

  it.each(['../etc', 'ABCDEF0123456789ABCDEF0123456789', '0123', `${jobId}x`])('when the job id is %j, then no name is made from it', (bad) => {
    expect(() => jobNames(bad)).toThrow(/invalid job id/);
  });

  it.each([
    ['k8s-small', 'k8s-small'],
    ['_x.', 'x'],
    ['a'.repeat(64), 'a'.repeat(63)],
    [`${'a'.repeat(62)}.b`, 'a'.repeat(62)],
  ])('when the environment id is %j, then its label value is %j', (id, value) => {
    expect(labelValue(id)).toBe(value);
  });

  it('when labels are made for a step, then they carry job, environment and step', () => {
    expect(jobLabels(jobId, 'env-1', 'publish')).toEqual({ 'c2d.job': jobId, 'c2d.environment': 'env-1', 'c2d.step': 'publish' });
    expect(jobLabels(jobId, 'env-1')).toEqual({ 'c2d.job': jobId, 'c2d.environment': 'env-1' });
  });
});

describe('owned objects', () => {
  const c = ctx();
  const owned = [
    ['stop marker', stopMarker(c)],
    ['data volume claim', dataVolumeClaim(c)],
    ['configure secret', configureSecret(c, configureSpec)],
    ['network policy', algorithmNetworkPolicy(c)],
    ['configure pod', configurePod(c)],
    ['algorithm pod', algorithmPod(c, algorithm(), 'c2d-algo-node:latest')],
    ['publish pod', publishPod(c)],
  ] as const;

  it.each(owned)('when the %s is built, then the job ConfigMap owns it and it lives in the environment namespace with the job labels', (_, obj) => {
    expect(obj.metadata?.namespace).toBe('c2d-compute');
    expect(obj.metadata?.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'ConfigMap', name: `c2d-${jobId}`, uid: 'owner-uid', controller: true }]);
    expect(obj.metadata?.labels).toMatchObject({ 'c2d.job': jobId, 'c2d.environment': 'k8s-small' });
    expect(obj.metadata?.annotations).toMatchObject({ 'c2d.environment': 'k8s-small' });
  });

  it('when the owner ConfigMap is built, then it has no owner and names the job', () => {
    const owner = ownerConfigMap(jobId, env());
    expect(owner.metadata).toMatchObject({ name: `c2d-${jobId}`, namespace: 'c2d-compute', labels: { 'c2d.job': jobId } });
    expect(owner.metadata?.ownerReferences).toBeUndefined();
    expect(owner.data).toEqual({ jobId, environment: 'k8s-small' });
  });

  it.each([
    [{}, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '3072Mi' } } }],
    [
      { kubernetes: { storageClassName: 'fast' } },
      { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '3072Mi' } }, storageClassName: 'fast' },
    ],
  ] as const)('when the environment is %j, then the data claim spec is %j', (overrides, spec) => {
    expect(dataVolumeClaim(ctx(overrides as Partial<KubernetesEnvironmentInput>)).spec).toEqual(spec);
  });

  it('when the configure secret is built, then it holds the spec as JSON, immutable', () => {
    const secret = configureSecret(c, configureSpec);
    expect(secret.immutable).toBe(true);
    expect(secret.metadata?.labels?.['c2d.step']).toBe('configure');
    expect(JSON.parse(Buffer.from(secret.data?.['configure.json'] ?? '', 'base64').toString())).toEqual(configureSpec);
  });

  it("when the network policy is built, then it selects only this job's algorithm pod and allows nothing in or out", () => {
    expect(algorithmNetworkPolicy(c).spec).toEqual({
      podSelector: { matchLabels: { 'c2d.job': jobId, 'c2d.step': 'algorithm' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress: [],
    });
  });

  it.each([
    [false, 'networkPolicy', true],
    [true, 'networkPolicy', false],
    [false, 'runtimeClass', false],
  ] as const)('when allowNetwork is %s and isolation is %s, then a network policy is needed: %s', (allowNetwork, networkIsolation, needed) => {
    expect(needsNetworkPolicy(env({ kubernetes: { networkIsolation, runtimeClassName: 'gvisor' } }), { allowNetwork })).toBe(needed);
  });
});

describe('step pods', () => {
  const steps = [
    ['configure', configurePod(ctx())],
    ['algorithm', algorithmPod(ctx(), algorithm(), 'c2d-algo-node:latest')],
    ['publish', publishPod(ctx())],
  ] as const;

  it.each(steps)(
    'when the %s pod is built, then it is hardened: non-root, read-only root, no token, no capabilities, no escalation, never restarted',
    (step, pod) => {
      const spec = pod.spec!;
      expect(pod.metadata?.name).toBe(`c2d-${jobId}-${step}`);
      expect(pod.metadata?.labels?.['c2d.step']).toBe(step);
      expect(spec.restartPolicy).toBe('Never');
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(spec.enableServiceLinks).toBe(false);
      // maxJobDuration bounds the job's configuration and algorithm; publishing runs after the deadline too, with a bound of its own
      expect(spec.activeDeadlineSeconds).toBe(step === 'publish' ? PUBLISH_STEP_MAX_SECONDS : 600);
      expect(spec.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 1000,
        runAsGroup: 1000,
        fsGroup: 1000,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(spec.containers).toHaveLength(1);
      const c = spec.containers[0]!;
      expect(c.name).toBe(step);
      expect(c.securityContext).toEqual({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.terminationMessagePath).toBe('/dev/termination-log');
      expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
      expect(spec.volumes).toContainEqual({ name: 'tmp', emptyDir: { sizeLimit: '1024Mi' } });
      expect(spec.hostNetwork).toBeUndefined();
      expect(spec.nodeSelector).toBeUndefined();
    },
  );

  it('when the algorithm pod is built, then inputs, code and DDOs are read-only, outputs and logs writable', () => {
    const c = algorithmPod(ctx(), algorithm(), 'img').spec!.containers[0]!;
    expect(c.volumeMounts).toEqual([
      { name: 'data', subPath: 'inputs', mountPath: '/data/inputs', readOnly: true },
      { name: 'data', subPath: 'transformations', mountPath: '/data/transformations', readOnly: true },
      { name: 'data', subPath: 'ddos', mountPath: '/data/ddos', readOnly: true },
      { name: 'data', subPath: 'outputs', mountPath: '/data/outputs', readOnly: false },
      { name: 'data', subPath: 'logs', mountPath: '/data/logs', readOnly: false },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(c.command).toEqual(['/bin/sh', '-c', 'node $ALGO']);
    expect(c.env).toEqual([
      { name: 'DIDS', value: '["did:op:1"]' },
      { name: 'TRANSFORMATION_DID', value: 'raw' },
      { name: 'ALGO', value: PATHS.algorithm },
      { name: 'HOME', value: '/tmp' },
    ]);
  });

  it.each([
    [
      { cpuNumber: 2, ramGB: 1.5 },
      { cpu: '2000m', memory: '1536Mi', 'ephemeral-storage': '1024Mi' },
    ],
    [
      { cpuNumber: 0.5, ramGB: 4, gpuNumber: 2, kubernetes: { ephemeralStorageGB: 10 } },
      { cpu: '500m', memory: '4096Mi', 'ephemeral-storage': '10240Mi', 'nvidia.com/gpu': '2' },
    ],
  ] as const)('when the environment is %j, then the algorithm requests and is limited to %j', (overrides, resources) => {
    const c = algorithmPod(ctx(overrides), algorithm(), 'img').spec!.containers[0]!;
    expect(c.resources).toEqual({ requests: resources, limits: resources });
  });

  it('when the environment sets placement and a RuntimeClass, then the algorithm pod gets them and the others get only placement', () => {
    const c = ctx({
      kubernetes: {
        nodeSelector: { pool: 'c2d' },
        tolerations: [{ key: 'c2d', operator: 'Exists', effect: 'NoSchedule' }],
        runtimeClassName: 'gvisor',
        imagePullPolicy: 'Never',
        podAnnotations: { 'sidecar.istio.io/inject': 'false' },
      },
    });
    const algo = algorithmPod(c, algorithm(), 'img');
    expect(algo.spec).toMatchObject({
      nodeSelector: { pool: 'c2d' },
      tolerations: [{ key: 'c2d', operator: 'Exists', effect: 'NoSchedule' }],
      runtimeClassName: 'gvisor',
    });
    expect(algo.spec!.containers[0]!.imagePullPolicy).toBe('Never');
    expect(algo.metadata?.annotations).toEqual({ 'sidecar.istio.io/inject': 'false', 'c2d.environment': 'k8s-small' });
    for (const p of [configurePod(c), publishPod(c)]) {
      expect(p.spec).toMatchObject({ nodeSelector: { pool: 'c2d' } });
      expect(p.spec!.runtimeClassName).toBeUndefined();
    }
  });

  it('when the algorithm is kept off the network by a NetworkPolicy, then a hardened init container waits for the policy by dialing the node kubelet, or the endpoint the environment names', () => {
    const gate = algorithmPod(ctx(), algorithm(), 'img').spec!.initContainers;
    expect(gate).toHaveLength(1);
    expect(gate![0]).toMatchObject({
      name: 'network-gate',
      image: 'c2d-configure:latest',
      command: ['node', '-e', NETWORK_GATE_SCRIPT],
      env: [
        { name: 'GATE_HOST', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'GATE_PORT', value: '10250' },
        { name: 'GATE_TIMEOUT_SECONDS', value: '60' },
      ],
      securityContext: {
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      },
    });
    expect(gate![0]!.volumeMounts).toBeUndefined(); // it sees none of the job's data
    const named = algorithmPod(ctx({ kubernetes: { networkGate: { host: '10.0.0.10', port: 443, timeoutSeconds: 5 } } }), algorithm(), 'img').spec!
      .initContainers![0]!;
    expect(named.env).toEqual([
      { name: 'GATE_HOST', value: '10.0.0.10' },
      { name: 'GATE_PORT', value: '443' },
      { name: 'GATE_TIMEOUT_SECONDS', value: '5' },
    ]);
  });

  it('when NetworkPolicy keeps job pods off the private ranges, then an algorithm allowed the network starts behind the same gate, the configure program runs it itself (its container has the same settings, no init container), and the publishing pod has none', () => {
    const gate = algorithmPod(ctx(), algorithm(), 'img').spec!.initContainers;
    expect(algorithmPod(ctx(), algorithm({ allowNetwork: true }), 'img').spec!.initContainers).toEqual(gate);
    const configure = configurePod(ctx()).spec!;
    expect(configure.initContainers).toBeUndefined();
    expect(configure.containers[0]!.env).toEqual([{ name: 'HOME', value: '/tmp' }, ...gate![0]!.env!]);
    expect(publishPod(ctx()).spec!.initContainers).toBeUndefined();
    expect(publishPod(ctx()).spec!.containers[0]!.env ?? []).not.toContainEqual(expect.objectContaining({ name: 'GATE_PORT' }));
  });

  it('when the RuntimeClass isolates the algorithm, then no pod has a network gate', () => {
    const c = ctx({ kubernetes: { networkIsolation: 'runtimeClass', runtimeClassName: 'gvisor' } });
    expect(algorithmPod(c, algorithm(), 'img').spec!.initContainers).toBeUndefined();
    expect(configurePod(c).spec!.containers[0]!.env).toEqual([{ name: 'HOME', value: '/tmp' }]);
  });

  it.each([
    [false, undefined],
    [true, 'allowed'],
  ])('when allowNetwork is %s, then the algorithm pod network label is %s', (allowNetwork, label) => {
    expect(algorithmPod(ctx(), algorithm({ allowNetwork }), 'img').metadata?.labels?.['c2d.network']).toBe(label);
  });

  it('when the configure pod is built, then it alone mounts the secret spec, read-only and group-readable only', () => {
    const p = configurePod(ctx());
    expect(p.spec!.volumes).toContainEqual({
      name: 'configure-spec',
      secret: { secretName: `c2d-${jobId}-configure-spec`, defaultMode: 0o440, items: [{ key: 'configure.json', path: 'configure.json' }] },
    });
    expect(p.spec!.containers[0]!.volumeMounts).toContainEqual({ name: 'configure-spec', mountPath: '/run/c2d/secret', readOnly: true });
    expect(p.spec!.containers[0]!.args).toEqual(['/run/c2d/secret/configure.json', '/dev/termination-log']);
    expect(p.spec!.containers[0]!.image).toBe('c2d-configure:latest');
    for (const other of [algorithmPod(ctx(), algorithm(), 'img'), publishPod(ctx())]) {
      expect(JSON.stringify(other)).not.toContain('configure-spec');
      expect(other.spec!.volumes!.some((v) => v.secret)).toBe(false);
    }
  });

  it('when the publish pod is built, then it reads outputs read-only and writes only its job directory of the results volume', () => {
    const p = publishPod(ctx());
    expect(p.spec!.containers[0]!.volumeMounts).toEqual([
      { name: 'data', subPath: 'outputs', mountPath: '/data/outputs', readOnly: true },
      { name: 'results', subPath: `${jobId}/outputs`, mountPath: '/results/outputs' },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(p.spec!.volumes).toContainEqual({ name: 'results', persistentVolumeClaim: { claimName: 'c2d-results' } });
    expect(p.spec!.containers[0]!.args).toEqual([
      '/data/outputs',
      '/results/outputs',
      '/dev/termination-log',
      `--max-bytes=${3 * 1024 ** 3}`,
      '--max-files=10000',
    ]);
  });

  it.each([
    [{ maxBytes: 5, maxFiles: 2, withhold: false }, ['--max-bytes=5', '--max-files=2']],
    [{ maxBytes: 5, maxFiles: 2, withhold: true }, ['--max-bytes=5', '--max-files=2', '--withhold']],
  ])('when the publish pod gets the budget %j, then its program is told %j', (budget, flags) => {
    expect(publishPod(ctx(), budget).spec!.containers[0]!.args!.slice(3)).toEqual(flags);
  });

  it('when the environment sets diskGB and maxOutputFiles, then they are the publishing budget', () => {
    const env = ctx().environment;
    const custom = { ...env, diskGB: 0.5, kubernetes: { ...env.kubernetes, maxOutputFiles: 7 } };
    expect(publishBudget(custom, true)).toEqual({ maxBytes: 512 * 1024 ** 2, maxFiles: 7, withhold: true });
  });
});

describe('algorithm images', () => {
  const mapped = { algorithmImages: { node: 'registry.local/c2d/node:20', python: 'registry.local/c2d/python:3.12' }, allowAnyImage: false };
  const digest = `sha256:${'a'.repeat(64)}`;
  it.each([
    [mapped, { image: 'node', tag: '18', checksum: '' }, 'registry.local/c2d/node:20'],
    [mapped, { image: 'docker.io/library/python', tag: 'latest', checksum: '' }, 'registry.local/c2d/python:3.12'],
    [mapped, { image: 'rust', tag: '1', checksum: '' }, null],
    [{ ...mapped, allowAnyImage: true }, { image: 'rust', tag: '1', checksum: '' }, 'rust:1'],
    [{ ...mapped, allowAnyImage: true }, { image: 'ghcr.io/org/tool', tag: '', checksum: digest }, `ghcr.io/org/tool@${digest}`],
    [{ ...mapped, allowAnyImage: true }, { image: 'ghcr.io/org/tool', tag: '', checksum: '' }, 'ghcr.io/org/tool:latest'],
    [{ ...mapped, allowAnyImage: true }, { image: 'bad image; rm -rf', tag: '1', checksum: '' }, null],
  ])('when the options are %j and the container is %j, then the pod runs %j', (k, container, image) => {
    expect(resolveAlgorithmImage(k, container)).toBe(image);
  });
});

describe('environment schema', () => {
  it('when a kubernetes environment isolates by RuntimeClass without naming one, then it is refused', () => {
    const r = environmentSchema.safeParse({ id: 'x', backend: 'kubernetes', kubernetes: { networkIsolation: 'runtimeClass' } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('runtimeClassName');
  });

  it('when a namespace is not a DNS label, then it is refused', () => {
    expect(environmentSchema.safeParse({ id: 'x', backend: 'kubernetes', kubernetes: { namespace: 'Bad_NS' } }).success).toBe(false);
  });
});

describe('pod states', () => {
  const pod = (status: V1Pod['status'], image = 'c2d-algo-node:latest'): V1Pod => ({ spec: { containers: [{ name: 'algorithm', image }] }, status });
  const terminated = (t: object, phase = 'Failed') =>
    pod({
      phase,
      containerStatuses: [{ name: 'algorithm', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, ...t } } }],
    });
  const waiting = (reason: string, message?: string) =>
    pod({
      phase: 'Pending',
      containerStatuses: [{ name: 'algorithm', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, message } } }],
    });

  it.each([
    ['no status yet', pod(undefined), { kind: 'pending', detail: 'waiting to be scheduled' }],
    [
      'unschedulable',
      pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] }),
      { kind: 'pending', detail: 'Unschedulable' },
    ],
    ['creating', waiting('ContainerCreating'), { kind: 'pending', detail: 'ContainerCreating' }],
    [
      'running',
      pod({ phase: 'Running', containerStatuses: [{ name: 'algorithm', image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: {} } }] }),
      { kind: 'running' },
    ],
    ['exit 0', terminated({ exitCode: 0, reason: 'Completed' }, 'Succeeded'), { kind: 'ended', outcome: { exitCode: 0, oomKilled: false, reason: '' } }],
    ['exit 3', terminated({ exitCode: 3, reason: 'Error' }), { kind: 'ended', outcome: { exitCode: 3, oomKilled: false, reason: '' } }],
    ['OOMKilled', terminated({ exitCode: 137, reason: 'OOMKilled' }), { kind: 'ended', outcome: { exitCode: 137, oomKilled: true, reason: 'oom' } }],
    [
      'a report in the termination message',
      terminated({ exitCode: 10, message: '{"ok":false,"failed":"dataset","index":0}' }),
      { kind: 'ended', outcome: { exitCode: 10, oomKilled: false, reason: '', report: { ok: false, failed: 'dataset', index: 0 } } },
    ],
    [
      'deadline exceeded',
      pod({ phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline' }),
      { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: 'deadline' } },
    ],
    [
      'evicted',
      pod({ phase: 'Failed', reason: 'Evicted', message: 'low on ephemeral-storage' }),
      { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: 'start-failed: Evicted: low on ephemeral-storage' } },
    ],
    [
      'ErrImagePull',
      waiting('ErrImagePull', 'not found'),
      { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: 'image-pull: image "c2d-algo-node:latest" cannot be pulled (ErrImagePull)' } },
    ],
    [
      'ImagePullBackOff',
      waiting('ImagePullBackOff'),
      { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: 'image-pull: image "c2d-algo-node:latest" cannot be pulled (ImagePullBackOff)' } },
    ],
    [
      'InvalidImageName',
      waiting('InvalidImageName'),
      { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: 'image-pull: image "c2d-algo-node:latest" cannot be pulled (InvalidImageName)' } },
    ],
    [
      'its network gate gave up',
      pod({
        phase: 'Failed',
        initContainerStatuses: [
          {
            name: 'network-gate',
            image: 'x',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { terminated: { exitCode: 1, message: 'the network policy was not enforced in time' } },
          },
        ],
        containerStatuses: [{ name: 'algorithm', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }],
      }),
      {
        kind: 'ended',
        outcome: { exitCode: null, oomKilled: false, reason: 'start-failed: network isolation not confirmed: the network policy was not enforced in time' },
      },
    ],
    [
      'CreateContainerConfigError',
      waiting('CreateContainerConfigError', 'secret "x" not found'),
      { kind: 'ended', outcome: { exitCode: null, oomKilled: false, reason: 'start-failed: CreateContainerConfigError: secret "x" not found' } },
    ],
  ])('when the pod is %s, then the step state says so', (_, p, state) => {
    expect(podState(p, 'algorithm')).toEqual(state);
  });

  it('when the container runs or ran, then its log can be read; while it waits, not', () => {
    expect(containerStarted(waiting('ContainerCreating'), 'algorithm')).toBe(false);
    expect(containerStarted(terminated({ exitCode: 1 }), 'algorithm')).toBe(true);
  });
});

describe('a network gate that gives up', () => {
  it("when the configure pod's policy is never enforced, then its program fetches nothing and the job fails with status 31, saying isolation was not confirmed", () => {
    const report = JSON.stringify({ ok: false, reason: 'network isolation not confirmed: the network policy was not enforced in time' });
    const state = podState(
      {
        spec: { containers: [{ name: 'configure', image: 'c2d-configure:latest' }] },
        status: {
          phase: 'Failed',
          containerStatuses: [
            {
              name: 'configure',
              image: 'c2d-configure:latest',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 1, message: report } },
            },
          ],
        },
      },
      'configure',
    );
    if (state.kind !== 'ended') throw new Error(`expected an ended step, got ${state.kind}`);
    expect(configureResult({ ...state.outcome, reattached: false })).toEqual({
      ok: false,
      failStatus: 31,
      terminationDetails: {
        exitCode: 1,
        oomKilled: false,
        reason: 'could not fetch the inputs: network isolation not confirmed: the network policy was not enforced in time',
      },
    });
  });
});

describe('image pull failures', () => {
  it('when the algorithm image cannot be pulled, then the job fails with status 32 and says which image', () => {
    const state = podState(
      {
        spec: { containers: [{ name: 'algorithm', image: 'c2d-algo-nope:1' }] },
        status: {
          phase: 'Pending',
          containerStatuses: [
            { name: 'algorithm', image: 'c2d-algo-nope:1', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff' } } },
          ],
        },
      },
      'algorithm',
    );
    if (state.kind !== 'ended') throw new Error(`expected an ended step, got ${state.kind}`);
    const result = algorithmResult({ ...state.outcome, reattached: false });
    expect(result).toEqual({
      ok: false,
      failStatus: 32,
      terminationDetails: {
        exitCode: null,
        oomKilled: false,
        reason: 'algorithm could not start: image "c2d-algo-nope:1" cannot be pulled (ImagePullBackOff)',
      },
    });
  });
});

describe('a step past its bound', () => {
  const pastDeadline = (step: StepName) => {
    const state = podState({ spec: { containers: [{ name: step, image: 'x' }] }, status: { phase: 'Failed', reason: 'DeadlineExceeded' } }, step);
    if (state.kind !== 'ended') throw new Error(`expected an ended step, got ${state.kind}`);
    return { ...state.outcome, reattached: false };
  };

  it('when the algorithm pod passes its activeDeadlineSeconds, then the job says it exceeded maxJobDuration', () => {
    expect(algorithmResult(pastDeadline('algorithm'))).toMatchObject({
      ok: false,
      deadline: true,
      terminationDetails: { reason: 'algorithm exceeded maxJobDuration' },
    });
  });

  it("when the publishing pod passes its own bound, then the reason names that bound, not the job's maxJobDuration", () => {
    expect(publishFailure(pastDeadline('publish'))).toMatchObject({
      reason: `could not publish results: publishing step took longer than ${PUBLISH_STEP_MAX_SECONDS} s`,
    });
  });
});
