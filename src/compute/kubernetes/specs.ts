/**
 * The objects one job puts in the cluster, as pure functions of the job id, its environment and the
 * step request: no I/O here, so every field is covered by table tests (test/unit/k8s-specs.test.ts).
 *
 * Per job, all in the environment's namespace and all owned by the job's ConfigMap `c2d-<jobId>`
 * (delete it and the garbage collector removes the rest):
 * - `c2d-<jobId>-data`       PVC (ReadWriteOnce, diskGB): the job's /data, shared by the three pods in turn
 * - `c2d-<jobId>-configure-spec` Secret: the configure spec (decrypted file locations), mounted into the configure pod only
 * - `c2d-<jobId>-no-network` NetworkPolicy: no ingress, no egress for the algorithm pod (unless the job may use the network)
 * - `c2d-<jobId>-stop`       ConfigMap: exists once the job was stopped (no new consumer step starts)
 * - `c2d-<jobId>-<step>`     Pods configure, algorithm, publish
 */
import type { ContainerSpec } from '../../domain/job';
import type { KubernetesEnvironment, KubernetesOptions } from '../../domain/environment';
import { type AlgorithmSpec, type ConfigureSpec, PUBLISH_STEP_MAX_SECONDS, type StepName } from '../backend';
import { imageCandidates } from '../images';
import { assertJobId } from '../steps';
import { NETWORK_GATE_SCRIPT } from '../../net/network-gate';
import type { KubeObject, V1Container, V1EnvVar, V1OwnerReference, V1PodSpec, V1Volume, V1VolumeMount } from './client';

export const LABELS = { job: 'c2d.job', step: 'c2d.step', environment: 'c2d.environment', network: 'c2d.network' } as const;
/** The full environment id (a label value is cut to 63 characters). */
export const ENVIRONMENT_ANNOTATION = 'c2d.environment';

export interface JobNames {
  owner: string;
  stopMarker: string;
  data: string;
  secret: string;
  networkPolicy: string;
  pod: (step: StepName) => string;
}

/** Deterministic names: a retried activity finds the objects an earlier attempt created. */
export function jobNames(jobId: string): JobNames {
  assertJobId(jobId);
  const base = `c2d-${jobId}`;
  return {
    owner: base,
    stopMarker: `${base}-stop`,
    data: `${base}-data`,
    secret: `${base}-configure-spec`,
    networkPolicy: `${base}-no-network`,
    pod: (step) => `${base}-${step}`,
  };
}

/** A label value (≤63 chars, alphanumeric at both ends) standing for the environment id. */
export function labelValue(s: string): string {
  return s
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[^A-Za-z0-9]+$/, '');
}

export function jobLabels(jobId: string, environmentId: string, step?: StepName): Record<string, string> {
  return { [LABELS.job]: jobId, [LABELS.environment]: labelValue(environmentId), ...(step ? { [LABELS.step]: step } : {}) };
}

/** Selects every object of one job. */
export const jobSelector = (jobId: string): string => `${LABELS.job}=${jobId}`;

/** What the builders need to know about the job; `owner` is the job's ConfigMap once created (its uid is the API server's). */
export interface JobContext {
  jobId: string;
  environment: KubernetesEnvironment;
  owner: { name: string; uid: string };
}

export function ownerReference(owner: JobContext['owner']): V1OwnerReference {
  // No blockOwnerDeletion: it needs rights on the owner's finalizers, and nothing waits on the dependents.
  return { apiVersion: 'v1', kind: 'ConfigMap', name: owner.name, uid: owner.uid, controller: true };
}

function meta(ctx: JobContext, name: string, step?: StepName) {
  return {
    name,
    namespace: ctx.environment.kubernetes.namespace,
    labels: jobLabels(ctx.jobId, ctx.environment.id, step),
    annotations: { [ENVIRONMENT_ANNOTATION]: ctx.environment.id },
    ownerReferences: [ownerReference(ctx.owner)],
  };
}

/** The job's owner object: deleting it removes everything else the job created. */
export function ownerConfigMap(jobId: string, environment: KubernetesEnvironment): Extract<KubeObject, { kind: 'ConfigMap' }> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: jobNames(jobId).owner,
      namespace: environment.kubernetes.namespace,
      labels: jobLabels(jobId, environment.id),
      annotations: { [ENVIRONMENT_ANNOTATION]: environment.id },
    },
    data: { jobId, environment: environment.id },
  };
}

/** Its existence says "stopped": a configure or algorithm step not started yet never starts. */
export function stopMarker(ctx: JobContext): Extract<KubeObject, { kind: 'ConfigMap' }> {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(ctx, jobNames(ctx.jobId).stopMarker), data: { stopped: 'true' } };
}

const mebibytes = (gb: number): string => `${Math.ceil(gb * 1024)}Mi`;
const millicores = (cpus: number): string => `${Math.round(cpus * 1000)}m`;

/**
 * The job's /data: ReadWriteOnce is enough because the three pods run one after the other. The
 * storage class (the cluster's default unless the environment names one) must provision volumes that
 * honour fsGroup (block-backed classes do), so the non-root steps can write to it.
 */
export function dataVolumeClaim(ctx: JobContext): Extract<KubeObject, { kind: 'PersistentVolumeClaim' }> {
  const k = ctx.environment.kubernetes;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: meta(ctx, jobNames(ctx.jobId).data),
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: mebibytes(ctx.environment.diskGB) } },
      ...(k.storageClassName !== undefined ? { storageClassName: k.storageClassName } : {}),
    },
  };
}

export const CONFIGURE_SPEC_KEY = 'configure.json';
const SECRET_DIR = '/run/c2d/secret';
/** The kubelet turns what a container writes here into its terminated state's `message` (≤4 KiB): the step's report. */
export const REPORT_PATH = '/dev/termination-log';

/** The configure spec holds decrypted file locations: a Secret of its own, mounted into the configure pod only. */
export function configureSecret(ctx: JobContext, spec: ConfigureSpec): Extract<KubeObject, { kind: 'Secret' }> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(ctx, jobNames(ctx.jobId).secret, 'configure'),
    type: 'Opaque',
    immutable: true,
    data: { [CONFIGURE_SPEC_KEY]: Buffer.from(JSON.stringify(spec)).toString('base64') },
  };
}

/** No ingress and no egress for the job's algorithm pod (a namespace-wide default deny may exist too; this one is the job's own). */
export function algorithmNetworkPolicy(ctx: JobContext): Extract<KubeObject, { kind: 'NetworkPolicy' }> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(ctx, jobNames(ctx.jobId).networkPolicy, 'algorithm'),
    spec: {
      podSelector: { matchLabels: { [LABELS.job]: ctx.jobId, [LABELS.step]: 'algorithm' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress: [],
    },
  };
}

/** Whether the job gets its default-deny NetworkPolicy: not when it may use the network, nor when the RuntimeClass isolates it. */
export function needsNetworkPolicy(environment: KubernetesEnvironment, spec: Pick<AlgorithmSpec, 'allowNetwork'>): boolean {
  return !spec.allowNetwork && environment.kubernetes.networkIsolation === 'networkPolicy';
}

/**
 * Whether a pod that fetches or runs what others chose (the configure pod, the algorithm pod) starts behind
 * the network gate: whenever NetworkPolicy keeps job pods off the private ranges, since an enforcer lags a
 * new pod's start. Without the network (the job's own deny-all policy) or with it (the namespace's
 * policies: the internet, no private range), the gate's endpoint (a private address) must stop answering
 * first. The publishing pod runs only our program, which opens no connection: no gate.
 */
const networkGated = (environment: KubernetesEnvironment): boolean => environment.kubernetes.networkIsolation === 'networkPolicy';

const IMAGE_REF = /^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$/;

/**
 * The image the cluster runs for an algorithm's container, or null when the environment does not run it:
 * a name in algorithmImages (tag and registry ignored, as for the process backend's runtimes), else
 * with allowAnyImage the image as given, pinned to its digest when the container has one.
 */
export function resolveAlgorithmImage(
  k: Pick<KubernetesOptions, 'algorithmImages' | 'allowAnyImage'>,
  container: Pick<ContainerSpec, 'image' | 'tag' | 'checksum'>,
): string | null {
  for (const name of imageCandidates(container.image.toLowerCase())) {
    const mapped = k.algorithmImages[name];
    if (mapped) return mapped;
  }
  if (!k.allowAnyImage) return null;
  const image = container.image.trim();
  const digest = /^sha256:[0-9a-f]{64}$/i.test(container.checksum.trim()) ? container.checksum.trim().toLowerCase() : null;
  const ref = digest ? `${image.replace(/@sha256:[0-9a-f]+$/i, '')}@${digest}` : /[:@][^/]*$/.test(image) ? image : `${image}:${container.tag || 'latest'}`;
  return IMAGE_REF.test(ref) ? ref : null;
}

/** Mount points inside every step pod. */
export const PATHS = {
  data: '/data',
  inputs: '/data/inputs',
  transformations: '/data/transformations',
  ddos: '/data/ddos',
  outputs: '/data/outputs',
  logs: '/data/logs',
  algorithm: '/data/transformations/algorithm',
  configureSpec: `${SECRET_DIR}/${CONFIGURE_SPEC_KEY}`,
  results: '/results/outputs',
  tmp: '/tmp',
} as const;

const DATA_VOLUME = 'data';
const TMP_VOLUME = 'tmp';
const SECRET_VOLUME = 'configure-spec';
const RESULTS_VOLUME = 'results';

/** What every container of ours and the consumer's gets: no privileges, a read-only root. */
const CONTAINER_HARDENING = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
} as const;

/** Name of the algorithm pod's init container that waits for its NetworkPolicy to be enforced. */
export const NETWORK_GATE = 'network-gate';

/** The gate's settings (src/net/network-gate.ts reads them): the endpoint it dials (default: the pod's node's kubelet) and its deadline. */
function gateEnv(k: KubernetesOptions): V1EnvVar[] {
  const g = k.networkGate;
  return [
    g.host ? { name: 'GATE_HOST', value: g.host } : { name: 'GATE_HOST', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
    { name: 'GATE_PORT', value: String(g.port) },
    { name: 'GATE_TIMEOUT_SECONDS', value: String(g.timeoutSeconds) },
  ];
}

/** The algorithm pod's init container: the gate run by `node -e` (the configure pod's program runs it itself). */
function networkGate(k: KubernetesOptions): V1Container {
  return {
    name: NETWORK_GATE,
    image: k.images.configure,
    command: ['node', '-e', NETWORK_GATE_SCRIPT],
    env: gateEnv(k),
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '200m', memory: '64Mi' } },
    ...(k.imagePullPolicy ? { imagePullPolicy: k.imagePullPolicy } : {}),
    terminationMessagePath: REPORT_PATH,
    terminationMessagePolicy: 'File',
    securityContext: { ...CONTAINER_HARDENING, capabilities: { drop: ['ALL'] } },
  };
}

/** The same hardening for every step: the consumer's algorithm, and our programs that handle its inputs and outputs. */
function podSpec(ctx: JobContext, step: StepName, container: V1Container, volumes: V1Volume[], extra: Partial<V1PodSpec> = {}): V1PodSpec {
  const k = ctx.environment.kubernetes;
  return {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    activeDeadlineSeconds: step === 'publish' ? PUBLISH_STEP_MAX_SECONDS : ctx.environment.maxJobDuration,
    terminationGracePeriodSeconds: 5,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: k.runAsUser,
      runAsGroup: k.runAsUser,
      fsGroup: k.runAsUser,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    },
    ...(Object.keys(k.nodeSelector).length > 0 ? { nodeSelector: k.nodeSelector } : {}),
    ...(k.tolerations.length > 0 ? { tolerations: k.tolerations } : {}),
    containers: [
      {
        ...container,
        name: step,
        ...(k.imagePullPolicy ? { imagePullPolicy: k.imagePullPolicy } : {}),
        terminationMessagePath: REPORT_PATH,
        terminationMessagePolicy: 'File',
        securityContext: { ...CONTAINER_HARDENING, capabilities: { drop: ['ALL'] } },
        volumeMounts: [...(container.volumeMounts ?? []), { name: TMP_VOLUME, mountPath: PATHS.tmp }],
      },
    ],
    volumes: [...volumes, { name: TMP_VOLUME, emptyDir: { sizeLimit: mebibytes(k.ephemeralStorageGB) } }],
    ...extra,
  };
}

function pod(ctx: JobContext, step: StepName, spec: V1PodSpec, labels: Record<string, string> = {}): Extract<KubeObject, { kind: 'Pod' }> {
  const m = meta(ctx, jobNames(ctx.jobId).pod(step), step);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...m, labels: { ...m.labels, ...labels }, annotations: { ...ctx.environment.kubernetes.podAnnotations, ...m.annotations } },
    spec,
  };
}

const dataVolume = (ctx: JobContext): V1Volume => ({ name: DATA_VOLUME, persistentVolumeClaim: { claimName: jobNames(ctx.jobId).data } });

const stepResources = (k: KubernetesOptions) => {
  const r = { cpu: millicores(k.stepResources.cpu), memory: `${k.stepResources.memoryMB}Mi`, 'ephemeral-storage': mebibytes(k.ephemeralStorageGB) };
  return { requests: r, limits: r };
};

/**
 * Configure: our configure-step program (image `images.configure`, its entrypoint takes
 * `<spec.json> <report.json>`) fetches the inputs into the job's volume. It needs the network; its
 * secret spec is mounted read-only and readable by the step's group only.
 */
export function configurePod(ctx: JobContext): Extract<KubeObject, { kind: 'Pod' }> {
  const k = ctx.environment.kubernetes;
  const names = jobNames(ctx.jobId);
  return pod(
    ctx,
    'configure',
    podSpec(
      ctx,
      'configure',
      {
        name: 'configure',
        image: k.images.configure,
        args: [PATHS.configureSpec, REPORT_PATH],
        workingDir: PATHS.data,
        // no fetch before the namespace's policy keeps the pod off the private ranges: the program runs the gate first
        env: [{ name: 'HOME', value: PATHS.tmp }, ...(networkGated(ctx.environment) ? gateEnv(k) : [])],
        resources: stepResources(k),
        volumeMounts: [
          { name: DATA_VOLUME, mountPath: PATHS.data },
          { name: SECRET_VOLUME, mountPath: SECRET_DIR, readOnly: true },
        ],
      },
      [
        dataVolume(ctx),
        { name: SECRET_VOLUME, secret: { secretName: names.secret, defaultMode: 0o440, items: [{ key: CONFIGURE_SPEC_KEY, path: CONFIGURE_SPEC_KEY }] } },
      ],
    ),
  );
}

function algorithmResources(env: KubernetesEnvironment) {
  const r: Record<string, string> = {
    cpu: millicores(env.cpuNumber),
    memory: mebibytes(env.ramGB),
    'ephemeral-storage': mebibytes(env.kubernetes.ephemeralStorageGB),
  };
  if (env.gpuNumber > 0) r['nvidia.com/gpu'] = String(env.gpuNumber);
  return { requests: r, limits: { ...r } };
}

/**
 * The consumer's algorithm in `image`: inputs, its code and the DDOs read-only, outputs and logs
 * writable, a private /tmp, no service account token, no capabilities, the environment's resources
 * as both requests and limits, and the job deadline as activeDeadlineSeconds (the publishing pod: PUBLISH_STEP_MAX_SECONDS).
 */
export function algorithmPod(ctx: JobContext, spec: AlgorithmSpec, image: string): Extract<KubeObject, { kind: 'Pod' }> {
  const k = ctx.environment.kubernetes;
  const sub = (subPath: string, mountPath: string, readOnly: boolean): V1VolumeMount => ({ name: DATA_VOLUME, subPath, mountPath, readOnly });
  const env = { ...spec.env, ALGO: PATHS.algorithm, HOME: PATHS.tmp };
  return pod(
    ctx,
    'algorithm',
    podSpec(
      ctx,
      'algorithm',
      {
        name: 'algorithm',
        image,
        command: ['/bin/sh', '-c', spec.container.entrypoint],
        workingDir: PATHS.data,
        env: Object.entries(env).map(([name, value]) => ({ name, value })),
        resources: algorithmResources(ctx.environment),
        volumeMounts: [
          sub('inputs', PATHS.inputs, true),
          sub('transformations', PATHS.transformations, true),
          sub('ddos', PATHS.ddos, true),
          sub('outputs', PATHS.outputs, false),
          sub('logs', PATHS.logs, false),
        ],
      },
      [dataVolume(ctx)],
      {
        ...(k.runtimeClassName ? { runtimeClassName: k.runtimeClassName } : {}),
        // the algorithm starts once its policy really holds (an enforcer lags the pod's start)
        ...(networkGated(ctx.environment) ? { initContainers: [networkGate(k)] } : {}),
      },
    ),
    // the namespace's policies let pods with this label out (k8s/base/network-policies.yaml)
    spec.allowNetwork ? { [LABELS.network]: 'allowed' } : {},
  );
}

/** What the publishing pod may copy; `withhold`: no output at all (a plugin refused them), only the logs are kept. */
export interface PublishBudget {
  maxBytes: number;
  maxFiles: number;
  withhold: boolean;
}

/** The environment's budget: the job volume's size in bytes, `maxOutputFiles` files. */
export const publishBudget = (env: KubernetesEnvironment, withhold: boolean): PublishBudget => ({
  maxBytes: Math.floor(env.diskGB * 1024 ** 3),
  maxFiles: env.kubernetes.maxOutputFiles,
  withhold,
});

/**
 * Publish: our publish-step program (image `images.publish`, its entrypoint takes
 * `<outputs> <publish dir> <report.json> [--max-bytes=N] [--max-files=N] [--withhold]`) copies the
 * top-level regular files of /data/outputs (read-only here) to the job's directory `<jobId>/outputs` on
 * the results volume, which the worker mounts too (C2D_K8S_RESULTS_DIR) and reads them from. Past its
 * budget it copies nothing and exits PUBLISH_OVER_LIMIT_EXIT. It needs no network.
 */
export function publishPod(ctx: JobContext, budget: PublishBudget = publishBudget(ctx.environment, false)): Extract<KubeObject, { kind: 'Pod' }> {
  const k = ctx.environment.kubernetes;
  return pod(
    ctx,
    'publish',
    podSpec(
      ctx,
      'publish',
      {
        name: 'publish',
        image: k.images.publish,
        args: [
          PATHS.outputs,
          PATHS.results,
          REPORT_PATH,
          `--max-bytes=${budget.maxBytes}`,
          `--max-files=${budget.maxFiles}`,
          ...(budget.withhold ? ['--withhold'] : []),
        ],
        workingDir: PATHS.data,
        env: [{ name: 'HOME', value: PATHS.tmp }],
        resources: stepResources(k),
        volumeMounts: [
          { name: DATA_VOLUME, subPath: 'outputs', mountPath: PATHS.outputs, readOnly: true },
          { name: RESULTS_VOLUME, subPath: resultsSubPath(ctx.jobId), mountPath: PATHS.results },
        ],
      },
      [dataVolume(ctx), { name: RESULTS_VOLUME, persistentVolumeClaim: { claimName: k.resultsClaim } }],
    ),
  );
}

/** Where a job's published outputs live on the results volume (relative to its root). */
export const resultsSubPath = (jobId: string): string => `${jobId}/outputs`;
