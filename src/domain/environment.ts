import { z } from 'zod';
import { feesSchema, type Resource, type ResourceAmount, resourceIdSchema, resourceSchema } from './resources';

/** Where in a job a publisher plugin runs (README: Publisher plugins). afterAlgorithm is Ocean's status 50, "Filtering results". */
export const pluginStages = ['beforeProvision', 'afterAlgorithm', 'beforePublish', 'afterPublish'] as const;
export type PluginStage = (typeof pluginStages)[number];

/**
 * One plugin enabled on an environment. `options` stay in the worker's settings: the workflow only
 * learns the plugin's name, stage and position in this list, so nothing here reaches history.
 */
export const pluginSettingSchema = z.object({
  /** a built-in (`outputFilter`, `webhook`) or the name a `module` exports */
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, _ - (max 64), starting with a letter'),
  /** default: the plugin's own */
  stage: z.enum(pluginStages).optional(),
  /** a module (path, absolute or relative to the worker's working directory) exporting the plugin; not needed for built-ins */
  module: z.string().min(1).optional(),
  /** run on another worker's task queue (src/entrypoints/plugin-worker.ts); default: the job's own */
  taskQueue: z.string().min(1).optional(),
  /** only for jobs on these datasets (DIDs; any dataset of the job); default: every job of the environment */
  datasets: z.array(z.string().min(1)).min(1).optional(),
  /** seconds one attempt may take (default: the plugin's own) */
  timeoutSeconds: z.number().int().positive().optional(),
  /** attempts in all; 0 = until scheduleToCloseSeconds runs out (default: the plugin's own) */
  maxAttempts: z.number().int().nonnegative().optional(),
  /** first retry delay in ms, doubling up to maxRetryIntervalSeconds (default: the plugin's own) */
  retryIntervalMs: z.number().int().positive().optional(),
  maxRetryIntervalSeconds: z.number().int().positive().optional(),
  /** seconds all attempts together may take (default: the plugin's own) */
  scheduleToCloseSeconds: z.number().int().positive().optional(),
  /** the plugin's own settings, checked by the plugin when the worker starts */
  options: z.record(z.string(), z.unknown()).default({}),
});
export type PluginSetting = z.infer<typeof pluginSettingSchema>;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const tolerationSchema = z.object({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

/** Options of the kubernetes backend (src/compute/kubernetes): where and how a job's three pods run. */
export const kubernetesOptionsSchema = z.object({
  /** namespace of the job pods (the worker's Role grants rights there and nowhere else) */
  namespace: z.string().regex(DNS_LABEL, 'a DNS label (lower-case letters, digits, -)').default('c2d-compute'),
  /** images of our own configuration and publishing programs (pod-images/) */
  images: z
    .object({
      configure: z.string().min(1).default('c2d-configure:latest'),
      publish: z.string().min(1).default('c2d-publish:latest'),
    })
    .prefault({}),
  /** algorithm image name as consumers give it (`container.image`, tag and registry ignored) → image the cluster runs */
  algorithmImages: z.record(z.string(), z.string().min(1)).default({ node: 'c2d-algo-node:latest', python: 'c2d-algo-python:latest' }),
  /** also run images not in algorithmImages, as given (`image@checksum`, else `image:tag`) */
  allowAnyImage: z.boolean().default(false),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  /** scratch space (/tmp) of each step pod, in GB */
  ephemeralStorageGB: z.number().positive().default(1),
  /** files the publishing pod copies at most (its bytes are bounded by diskGB); past either, nothing is published (62) */
  maxOutputFiles: z.number().int().positive().default(10_000),
  /** storage class of the per-job data volume (diskGB, ReadWriteOnce); unset: the cluster's default class */
  storageClassName: z.string().optional(),
  nodeSelector: z.record(z.string(), z.string()).default({}),
  tolerations: z.array(tolerationSchema).default([]),
  /** RuntimeClass of the algorithm pod (e.g. gVisor or Kata) */
  runtimeClassName: z.string().optional(),
  /** how the algorithm is kept off the network: a per-job default-deny NetworkPolicy, or the RuntimeClass alone */
  networkIsolation: z.enum(['networkPolicy', 'runtimeClass']).default('networkPolicy'),
  /**
   * With networkIsolation networkPolicy: a NetworkPolicy is enforced some time after its pod starts (the
   * enforcer learns the pod's address first; about a second with kube-router), so the network gate (the
   * algorithm pod's init container `network-gate`, the configure program before it fetches) holds the step
   * back until its egress is really cut: it dials this TCP endpoint on a private address, which any pod
   * without a policy reaches and every job pod's policy denies (default: the node's kubelet, the pod's host
   * IP on 10250), until it no longer answers twice in a row; past timeoutSeconds the step fails instead.
   */
  networkGate: z
    .object({
      host: z.string().min(1).optional(),
      port: z.number().int().min(1).max(65535).default(10250),
      timeoutSeconds: z.number().int().positive().default(60),
    })
    .prefault({}),
  /** annotations of every step pod (e.g. to opt out of a service mesh's sidecar) */
  podAnnotations: z.record(z.string(), z.string()).default({}),
  /** uid and gid (also fsGroup) of every step container */
  runAsUser: z.number().int().positive().default(1000),
  /** ReadWriteMany claim in `namespace` the publishing pod writes outputs to; the worker mounts the same storage at C2D_K8S_RESULTS_DIR */
  resultsClaim: z.string().regex(DNS_LABEL, 'a DNS label (lower-case letters, digits, -)').default('c2d-results'),
  /** CPU and memory of the configuration and publishing pods */
  stepResources: z.object({ cpu: z.number().positive().default(0.5), memoryMB: z.number().int().positive().default(512) }).prefault({}),
});
export type KubernetesOptions = z.infer<typeof kubernetesOptionsSchema>;

/** Ocean's wire fields and what every backend honours. */
const environmentFields = {
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (max 64)'),
  desc: z.string().default(''),
  cpuNumber: z.number().positive().default(1),
  cpuType: z.string().default(''),
  gpuNumber: z.number().int().nonnegative().default(0),
  gpuType: z.string().default(''),
  ramGB: z.number().positive().default(1),
  diskGB: z.number().positive().default(1),
  /** price per minute in fee-token units; 0 = free */
  priceMin: z.number().nonnegative().default(0),
  maxJobs: z.number().int().positive().default(2),
  /** seconds */
  maxJobDuration: z.number().int().positive().default(3600),
  /** seconds results stay downloadable */
  storageExpiry: z
    .number()
    .int()
    .positive()
    .default(7 * 24 * 3600),
  feeToken: z.string().optional(),
  /**
   * Whether this environment's workers can give an algorithm outbound network (README: Algorithm network
   * access). The API cannot see the workers' hosts, so the operator says so: with false, a job whose
   * datasets all allow network access is refused at start (400) instead of ending in 41 network_unavailable.
   */
  algorithmNetwork: z.boolean().default(true),
  /** publisher plugins, run in this order within each stage */
  plugins: z.array(pluginSettingSchema).default([]),
  /**
   * ocean-node's resources (C2D v2 clients): totals of this environment and per-job min/max. Left out,
   * they follow from cpuNumber, ramGB, diskGB and gpuNumber (one job's max) times maxJobs (environmentResources).
   */
  resources: z.array(resourceSchema).min(1).optional(),
  /** C2D v2 prices per resource unit and minute, per chain and fee token; none: paid v2 jobs are refused here */
  fees: feesSchema.default({}),
  /** C2D v2 free compute (freeComputeStart) with its own limits; left out: no free jobs here */
  free: z
    .object({
      maxJobDuration: z.number().int().positive(),
      maxJobs: z.number().int().positive().default(1),
      resources: z.array(z.object({ id: resourceIdSchema, max: z.number().positive() })).default([]),
    })
    .optional(),
};

/** Options of the process backend (src/compute/process): limits of the sandboxed algorithm beyond cpu/ram/disk. */
export const processOptionsSchema = z.object({
  /** the most processes/threads the algorithm may have at once */
  maxProcesses: z.number().int().positive().default(256),
  /**
   * bytes the algorithm may leave in /data/outputs and /data/logs together, and publishing may copy
   * (default: diskGB); counted on disk: allocated blocks or length, whichever is larger, hard links once
   */
  maxOutputBytes: z.number().int().positive().optional(),
  /** names (files, dirs, links, each hard link) the algorithm may leave in /data/outputs and /data/logs together; publishing copies at most this many files */
  maxOutputFiles: z.number().int().positive().default(10_000),
  /** bytes of the algorithm's private /tmp */
  tmpBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
});

/** An environment of the embedded process backend: the default when `backend` is left out. */
export const processEnvironmentSchema = z.object({
  ...environmentFields,
  backend: z.literal('process').default('process'),
  process: processOptionsSchema.prefault({}),
});

export const kubernetesEnvironmentSchema = z
  .object({
    ...environmentFields,
    backend: z.literal('kubernetes'),
    kubernetes: kubernetesOptionsSchema.prefault({}),
  })
  .superRefine((env, ctx) => {
    if (env.kubernetes.networkIsolation === 'runtimeClass' && !env.kubernetes.runtimeClassName) {
      ctx.addIssue({ code: 'custom', path: ['kubernetes', 'runtimeClassName'], message: 'required when networkIsolation is runtimeClass' });
    }
  });

/** Options of the docker backend (src/compute/docker): a Docker Engine (or Podman's Docker-compatible service) on the worker's host. */
export const dockerOptionsSchema = z.object({
  /** the engine's unix socket */
  socketPath: z.string().min(1).default('/var/run/docker.sock'),
  /** images of our own configuration and publishing programs (pod-images/Dockerfile, targets configure and publish) */
  images: z
    .object({
      configure: z.string().min(1).default('c2d-configure:latest'),
      publish: z.string().min(1).default('c2d-publish:latest'),
    })
    .prefault({}),
  /** algorithm image name as consumers give it (`container.image`, tag and registry ignored) → image the engine runs */
  algorithmImages: z.record(z.string(), z.string().min(1)).default({}),
  /** patterns of the algorithm images that may run as given (`*` matches any run of characters), e.g. `registry.example.com/algos/*` */
  allowedImages: z.array(z.string().min(1)).default([]),
  /** also run any other image, as given */
  allowAnyImage: z.boolean().default(false),
  /** `always` pulls before every algorithm, `ifNotPresent` only when the engine lacks the image, `never` runs what the engine has */
  pullPolicy: z.enum(['always', 'ifNotPresent', 'never']).default('ifNotPresent'),
  /** seconds an algorithm image's pull may take (it does not count toward maxJobDuration); past it the job ends 32 */
  pullTimeout: z.number().int().positive().default(600),
  /** uid:gid every step container runs as when the worker runs as root (otherwise the worker's own uid) */
  user: z
    .string()
    .regex(/^[1-9][0-9]*:[0-9]+$/, 'uid:gid, non-root')
    .default('65534:65534'),
  /** the most processes/threads the algorithm may have at once */
  maxProcesses: z.number().int().positive().default(256),
  /** bytes of the algorithm's private /tmp (tmpfs, counted in its memory) */
  tmpBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  /**
   * bytes the algorithm may leave in /data/outputs and /data/logs together, and publishing may copy
   * (default: diskGB); counted on disk as on the process backend: allocated blocks or length, whichever is larger, hard links once
   */
  maxOutputBytes: z.number().int().positive().optional(),
  /** names (files, dirs, links, each hard link) the algorithm may leave in /data/outputs and /data/logs together; publishing copies at most this many files */
  maxOutputFiles: z.number().int().positive().default(10_000),
  /** network of the configuration step, which downloads the inputs (`host`, or a network the engine has) */
  configureNetwork: z.string().min(1).default('host'),
  /** CPU and memory of the configuration and publishing containers */
  stepResources: z.object({ cpu: z.number().positive().default(1), memoryMB: z.number().int().positive().default(512) }).prefault({}),
});
export type DockerOptions = z.infer<typeof dockerOptionsSchema>;

export const dockerEnvironmentSchema = z.object({
  ...environmentFields,
  backend: z.literal('docker'),
  docker: dockerOptionsSchema.prefault({}),
});

/**
 * A compute environment: Ocean's wire fields plus which backend runs it and that backend's options,
 * which exist only on environments of that backend. A new backend (e.g. `docker`) is one more member.
 */
export const environmentSchema = z.discriminatedUnion('backend', [processEnvironmentSchema, kubernetesEnvironmentSchema, dockerEnvironmentSchema]);
export type Environment = z.infer<typeof environmentSchema>;
export type ProcessEnvironment = z.infer<typeof processEnvironmentSchema>;
export type KubernetesEnvironment = z.infer<typeof kubernetesEnvironmentSchema>;
export type DockerEnvironment = z.infer<typeof dockerEnvironmentSchema>;
export type EnvironmentInput = z.input<typeof environmentSchema>;
export type ProcessEnvironmentInput = z.input<typeof processEnvironmentSchema>;
export type KubernetesEnvironmentInput = z.input<typeof kubernetesEnvironmentSchema>;
export type DockerEnvironmentInput = z.input<typeof dockerEnvironmentSchema>;

export const environmentsFileSchema = z
  .array(environmentSchema)
  .min(1)
  .superRefine((envs, ctx) => {
    const seen = new Set<string>();
    for (const [i, env] of envs.entries()) {
      if (seen.has(env.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate environment id ${env.id}` });
      seen.add(env.id);
    }
  });

export const defaultEnvironments: EnvironmentInput[] = [
  { id: 'process-free', desc: 'Free sandboxed process environment', cpuNumber: 1, ramGB: 1, diskGB: 1, maxJobs: 2, maxJobDuration: 3600 },
];

/** The output budget of a process or docker environment: bytes (default: diskGB) and names. */
export const maxOutputBytes = (env: ProcessEnvironment | DockerEnvironment): number =>
  (env.backend === 'docker' ? env.docker.maxOutputBytes : env.process.maxOutputBytes) ?? Math.floor(env.diskGB * 1024 ** 3);
export const maxOutputFiles = (env: ProcessEnvironment | DockerEnvironment): number =>
  env.backend === 'docker' ? env.docker.maxOutputFiles : env.process.maxOutputFiles;

/** The resources of an environment as C2D v2 clients see them: declared, or derived from the legacy per-job fields × maxJobs. */
export function environmentResources(env: Environment): Resource[] {
  if (env.resources) return env.resources;
  const derived = (id: string, perJob: number, description: string): Resource => ({
    id,
    description,
    total: perJob * env.maxJobs,
    min: Math.min(1, perJob),
    max: perJob,
  });
  const resources = [derived('cpu', env.cpuNumber, env.cpuType || 'cores'), derived('ram', env.ramGB, 'GB'), derived('disk', env.diskGB, 'GB')];
  if (env.gpuNumber > 0) resources.push(derived('gpu', env.gpuNumber, env.gpuType || 'devices'));
  return resources;
}

/** Seconds a job may run: what it asked for (C2D v2), never past the environment's (a free job's: the free limit). */
export function jobMaxDuration(env: Environment, job: { maxJobDuration?: number; free?: boolean }): number {
  const cap = job.free && env.free ? env.free.maxJobDuration : env.maxJobDuration;
  return Math.min(job.maxJobDuration ?? cap, cap);
}

/**
 * What a job uses of each resource of its environment: the amounts it asked for (C2D v2), else each
 * resource's min where the environment declares its resources, else one job's share (the per-job
 * fields, so legacy jobs fill the environment exactly at maxJobs). A free job may ask at most the free
 * limits. Returns why the request cannot run here instead, as a message that says what to change.
 */
export function jobResourceAmounts(env: Environment, requested: ResourceAmount[] | undefined, free = false): ResourceAmount[] | string {
  const resources = environmentResources(env);
  for (const r of requested ?? []) {
    if (!resources.some((e) => e.id === r.id))
      return `resource ${r.id} is not offered by environment ${env.id} (it has: ${resources.map((e) => e.id).join(', ')})`;
  }
  const amounts: ResourceAmount[] = [];
  for (const res of resources) {
    const asked = requested?.find((r) => r.id === res.id)?.amount;
    const amount = asked ?? (env.resources ? res.min : res.max);
    const max = free ? Math.min(res.max, env.free?.resources.find((f) => f.id === res.id)?.max ?? res.max) : res.max;
    if (!Number.isFinite(amount) || amount < res.min || amount > max)
      return `resource ${res.id}: ${amount} asked, environment ${env.id} allows ${res.min}–${max} ${free ? 'for a free job' : 'per job'}`;
    amounts.push({ id: res.id, amount });
  }
  return amounts;
}

/**
 * The environment as one job's algorithm gets it: the job's own resource amounts and maxJobDuration in
 * place of the per-job fields, so every backend limits it to what it asked for (and paid for). An amount
 * of 0 leaves the field as it is (a backend cannot run on no cpu or memory).
 */
export function sizedForJob<E extends Environment>(env: E, job: { maxJobDuration: number; resources?: ResourceAmount[] }): E {
  const amount = (id: string, own: number): number => {
    const asked = job.resources?.find((r) => r.id === id)?.amount;
    return asked !== undefined && asked > 0 ? asked : own;
  };
  return {
    ...env,
    maxJobDuration: job.maxJobDuration,
    cpuNumber: amount('cpu', env.cpuNumber),
    ramGB: amount('ram', env.ramGB),
    diskGB: amount('disk', env.diskGB),
    gpuNumber: Math.round(amount('gpu', env.gpuNumber)),
  };
}
