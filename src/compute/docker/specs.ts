/**
 * The containers of one job as pure functions of the job, its environment and the step request (no
 * I/O: table tests in test/docker/specs.test.ts). Per job, on the worker's host under
 * `<dataDir>/docker-jobs/<jobId>` (layout below), three containers `c2d-<jobId>-<step>`:
 * - configure: our configure image, the job's /data read-write, its spec read-only, the configured network;
 * - algorithm: the consumer's image, no network, read-only root, private /tmp, no capabilities, non-root, limits;
 * - publish: our publish image, /data/outputs read-only, the job's publish dir read-write, no network.
 */
import path from 'node:path';
import { type DockerEnvironment, maxOutputBytes, maxOutputFiles } from '../../domain/environment';
import type { AlgorithmSpec, StepName } from '../backend';
import { assertJobId, MAX_STEP_LOG_BYTES } from '../steps';
import type { ContainerCreateBody } from './client';

export const LABELS = { job: 'c2d.job', step: 'c2d.step', environment: 'c2d.environment' } as const;

/** Every container of every job starts with this (cleanup checks and tests list them by it). */
export const NAME_PREFIX = 'c2d-';

export const containerName = (jobId: string, step: StepName): string => {
  assertJobId(jobId);
  return `${NAME_PREFIX}${jobId}-${step}`;
};

/** Host paths of one job. Everything the job leaves on the host lives under `root`. */
export interface JobLayout {
  root: string;
  /** the job's /data */
  data: string;
  inputs: string;
  transformations: string;
  ddos: string;
  outputs: string;
  dataLogs: string;
  /** the configure spec (decrypted file locations): mounted into the configure container alone, removed when it ends */
  secretDir: string;
  configureSpec: string;
  /** what configure and publish report (never seen by the algorithm) */
  reports: string;
  /** the files publishing collected */
  publish: string;
  /** step logs, written by the worker from the containers' log streams */
  logs: string;
  /** exists once the job was stopped: no configure or algorithm container starts after it */
  stopMarker: string;
  /** exists once the algorithm was killed for its deadline */
  deadlineMarker: string;
  /** the algorithm log's length before the container's output (the pull progress stays; a re-attached follower rewrites the rest) */
  algorithmLogStart: string;
  /** the algorithm image's reference once prepareAlgorithm pulled it (the algorithm step then pulls no more) */
  imageReady: string;
  /** exists once the algorithm passed the output budget: publishing then publishes no output */
  outputLimitMarker: string;
}

export function jobLayout(workDir: string, jobId: string): JobLayout {
  assertJobId(jobId);
  const root = path.join(workDir, jobId);
  const data = path.join(root, 'data');
  const secretDir = path.join(root, 'secret');
  return {
    root,
    data,
    inputs: path.join(data, 'inputs'),
    transformations: path.join(data, 'transformations'),
    ddos: path.join(data, 'ddos'),
    outputs: path.join(data, 'outputs'),
    dataLogs: path.join(data, 'logs'),
    secretDir,
    configureSpec: path.join(secretDir, 'configure.json'),
    reports: path.join(root, 'reports'),
    publish: path.join(root, 'publish'),
    logs: path.join(root, 'logs'),
    stopMarker: path.join(root, 'stop'),
    deadlineMarker: path.join(root, 'deadline'),
    algorithmLogStart: path.join(root, 'algorithm-log-start'),
    imageReady: path.join(root, 'image-ready'),
    outputLimitMarker: path.join(root, 'output-limit'),
  };
}

export const logFile = (job: JobLayout, step: StepName): string => path.join(job.logs, `${step}.log`);
export const reportFile = (job: JobLayout, step: 'configure' | 'publish'): string => path.join(job.reports, `${step}.json`);

/** Paths inside the containers. */
export const PATHS = {
  data: '/data',
  inputs: '/data/inputs',
  transformations: '/data/transformations',
  ddos: '/data/ddos',
  outputs: '/data/outputs',
  logs: '/data/logs',
  algorithm: '/data/transformations/algorithm',
  secret: '/run/c2d/secret',
  configureSpec: '/run/c2d/secret/configure.json',
  reports: '/run/c2d/reports',
  results: '/results',
  tmp: '/tmp',
} as const;

export interface StepContext {
  jobId: string;
  environment: DockerEnvironment;
  job: JobLayout;
  /** `uid:gid` the containers run as */
  user: string;
}

const bind = (host: string, inside: string, readOnly: boolean): string => `${host}:${inside}:${readOnly ? 'ro' : 'rw'}`;

function labels(ctx: StepContext, step: StepName): Record<string, string> {
  return { [LABELS.job]: ctx.jobId, [LABELS.step]: step, [LABELS.environment]: ctx.environment.id };
}

const ENGINE_LOG_MARGIN_BYTES = 16 * 1024 * 1024;

/**
 * What the engine itself keeps of a step's output (its own log file, beside ours) is bounded too, so a
 * chatty algorithm cannot fill the engine's disk before its deadline. Our copy (the follower) is the one
 * capped at `capBytes`; the engine's must not rotate away bytes the follower has not read yet, which a
 * busy machine lets lag behind (a file of exactly the cap lost part of a 4 MiB log that way): each of its
 * two files holds twice the cap, since json-file wraps every line in ~60 bytes of JSON, plus a margin.
 */
export const engineLogConfig = (capBytes: number) => ({
  Type: 'json-file',
  Config: { 'max-size': String(2 * capBytes + ENGINE_LOG_MARGIN_BYTES), 'max-file': '2' },
});

/** The same hardening for every step: the consumer's algorithm, and our programs that handle its inputs and outputs. */
function hardened(tmpBytes: number, pids: number, memoryBytes: number, cpus: number, logBytes = MAX_STEP_LOG_BYTES) {
  return {
    LogConfig: engineLogConfig(logBytes),
    ReadonlyRootfs: true,
    Tmpfs: { [PATHS.tmp]: `rw,nosuid,nodev,size=${tmpBytes}` },
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    Privileged: false,
    IpcMode: 'private',
    PidsLimit: pids,
    Memory: memoryBytes,
    // no swap: the limit is the memory the step gets
    MemorySwap: memoryBytes,
    NanoCpus: Math.round(cpus * 1e9),
    AutoRemove: false,
    RestartPolicy: { Name: '' },
  };
}

const stepMemory = (env: DockerEnvironment): number => env.docker.stepResources.memoryMB * 1024 * 1024;

/** The largest file a step that writes outputs may write: one byte over the budget, so a file cut off at it is seen as over it (as on the process backend). */
const fsizeLimit = (env: DockerEnvironment) => {
  const bytes = maxOutputBytes(env) + 1;
  return [{ Name: 'fsize', Soft: bytes, Hard: bytes }];
};

/** Configure: our configure-step program (`<spec.json> <report.json>`) fetches the inputs into /data; it needs the network. */
export function configureContainer(ctx: StepContext): ContainerCreateBody {
  const d = ctx.environment.docker;
  return {
    name: containerName(ctx.jobId, 'configure'),
    Image: d.images.configure,
    Cmd: [PATHS.configureSpec, `${PATHS.reports}/configure.json`],
    User: ctx.user,
    WorkingDir: PATHS.data,
    Env: [`HOME=${PATHS.tmp}`],
    Labels: labels(ctx, 'configure'),
    HostConfig: {
      ...hardened(d.tmpBytes, d.maxProcesses, stepMemory(ctx.environment), d.stepResources.cpu),
      NetworkMode: d.configureNetwork,
      Binds: [bind(ctx.job.data, PATHS.data, false), bind(ctx.job.secretDir, PATHS.secret, true), bind(ctx.job.reports, PATHS.reports, false)],
    },
  };
}

/**
 * The consumer's algorithm in `image` (already resolved and pulled): `/bin/sh -c <entrypoint>` in
 * /data, inputs, its code and the DDOs read-only, outputs and logs writable, a private /tmp, no
 * network, no capabilities, a non-root user, the environment's memory (no swap), CPUs, processes and GPUs.
 */
export function algorithmContainer(ctx: StepContext, spec: AlgorithmSpec, image: string, network?: string): ContainerCreateBody {
  const env = ctx.environment;
  const d = env.docker;
  const vars = { ...spec.env, ALGO: PATHS.algorithm, HOME: PATHS.tmp };
  return {
    name: containerName(ctx.jobId, 'algorithm'),
    Image: image,
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: [spec.container.entrypoint],
    User: ctx.user,
    WorkingDir: PATHS.data,
    Env: Object.entries(vars).map(([k, v]) => `${k}=${v}`),
    Labels: labels(ctx, 'algorithm'),
    ...(network ? {} : { NetworkDisabled: true }),
    HostConfig: {
      ...hardened(d.tmpBytes, d.maxProcesses, Math.floor(env.ramGB * 1024 ** 3), env.cpuNumber, Math.min(MAX_STEP_LOG_BYTES, maxOutputBytes(env))),
      Ulimits: fsizeLimit(env),
      NetworkMode: network ?? 'none',
      Binds: [
        bind(ctx.job.inputs, PATHS.inputs, true),
        bind(ctx.job.transformations, PATHS.transformations, true),
        bind(ctx.job.ddos, PATHS.ddos, true),
        bind(ctx.job.outputs, PATHS.outputs, false),
        bind(ctx.job.dataLogs, PATHS.logs, false),
      ],
      ...(env.gpuNumber > 0 ? { DeviceRequests: [{ Driver: '', Count: env.gpuNumber, Capabilities: [['gpu']] }] } : {}),
    },
  };
}

/** The container that holds a job's network namespace on Docker Engine (which cannot join a named one): the algorithm joins it. */
export const networkHolderName = (jobId: string): string => `${NAME_PREFIX}${jobId}-network`;

/**
 * It only sleeps, in our publish image (nothing of the consumer's), with no network of the engine's:
 * the backend moves the job's egress-only link into its namespace (src/compute/process/network.ts).
 */
export function networkHolderContainer(ctx: StepContext): ContainerCreateBody {
  const d = ctx.environment.docker;
  return {
    name: networkHolderName(ctx.jobId),
    Image: d.images.publish,
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: ['exec sleep infinity'],
    User: ctx.user,
    Labels: { [LABELS.job]: ctx.jobId, [LABELS.environment]: ctx.environment.id },
    HostConfig: { ...hardened(d.tmpBytes, 4, 16 * 1024 * 1024, 0.1), NetworkMode: 'none' },
  };
}

/**
 * Publish: our publish-step program (`<outputs> <publish dir> <report.json> --max-bytes --max-files
 * [--withhold]`) copies the top-level regular files of /data/outputs within the environment's output
 * budget (all or none); no network. `withhold`: it publishes and names none (a plugin refused them, or
 * the algorithm passed the budget).
 */
export function publishContainer(ctx: StepContext, withhold = false): ContainerCreateBody {
  const env = ctx.environment;
  const d = env.docker;
  const budget = [`--max-bytes=${maxOutputBytes(env)}`, `--max-files=${maxOutputFiles(env)}`];
  return {
    name: containerName(ctx.jobId, 'publish'),
    Image: d.images.publish,
    Cmd: [PATHS.outputs, PATHS.results, `${PATHS.reports}/publish.json`, ...budget, ...(withhold ? ['--withhold'] : [])],
    User: ctx.user,
    WorkingDir: PATHS.data,
    Env: [`HOME=${PATHS.tmp}`],
    Labels: labels(ctx, 'publish'),
    NetworkDisabled: true,
    HostConfig: {
      ...hardened(d.tmpBytes, d.maxProcesses, stepMemory(env), d.stepResources.cpu),
      Ulimits: fsizeLimit(env),
      NetworkMode: 'none',
      Binds: [bind(ctx.job.outputs, PATHS.outputs, true), bind(ctx.job.publish, PATHS.results, false), bind(ctx.job.reports, PATHS.reports, false)],
    },
  };
}
