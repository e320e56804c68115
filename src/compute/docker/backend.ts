import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { type DockerEnvironment, type Environment, maxOutputBytes, maxOutputFiles } from '../../domain/environment';
import { C2DError } from '../../domain/errors';
import type { ContainerSpec } from '../../domain/job';
import type { Logger } from '../../domain/logger';
import type { ComputeBackend, JobWorkspace, PublishedFile, StepHooks, StepName, StepOutcome, StepRequest } from '../backend';
import { diskUsage, openStepLog, regularFile } from '../files';
import { MAX_STEP_LOG_BYTES, PUBLISH_OVER_LIMIT_EXIT, STEP_LOGS, STEPS, stepWaitAborted } from '../steps';
import { type ContainerState, DockerApiError, type DockerClient, type RegistryAuth, type Ulimit } from './client';
import type { JobNetworks } from '../process/network';
import { processWorkspace } from '../process/workspace';
import { hasDigest, resolveImage } from './images';
import { PullProgress } from './pull-progress';
import {
  algorithmContainer,
  configureContainer,
  containerName,
  type JobLayout,
  jobLayout,
  logFile,
  networkHolderContainer,
  networkHolderName,
  publishContainer,
  reportFile,
  type StepContext,
} from './specs';

export interface DockerBackendOptions {
  /** per-job egress-only networks for algorithms whose datasets all allow network access; absent: such jobs end saying the worker cannot */
  networks?: JobNetworks;
  /** the environment this backend runs (each docker environment has its own backend) */
  environment: DockerEnvironment;
  client: DockerClient;
  /** where job directories live: `<workDir>/<jobId>` (the engine must see the same paths: it runs on this host) */
  workDir: string;
  /** credentials per registry host (`registry.example.com`), from the worker's settings */
  registryAuth?: Record<string, { username: string; password: string }>;
  logger: Logger;
  /** how often a waiting step heartbeats; default 1000 ms */
  heartbeatMs?: number;
}

type Ended = Omit<StepOutcome, 'reattached'>;

const publishReportSchema = z.object({ files: z.array(z.object({ filename: z.string() }).loose()).default([]) }).loose();
const plainName = (n: string): boolean => n !== '' && n !== '.' && n !== '..' && n === path.basename(n);
const SIGKILL_EXIT = 137;
/** a process killed by SIGXFSZ (its file passed RLIMIT_FSIZE), as the engine reports it */
const SIGXFSZ_EXIT = 128 + 25;
const SIZE_CHECK_MS = 500;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const fileSize = (file: string): number => regularFile(file)?.size ?? 0;

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** how long a container's log stream may stay silent after the container ended before it is given up */
const LOG_QUIET_MS = 2000;
/** the most a step waits for its ended container's log stream to deliver the rest */
const LOG_DRAIN_MAX_MS = 60_000;

/** Resolves when `done` settles, or once `progress()` has not moved for `quietMs`, or after `maxMs`. */
async function untilQuiet(done: Promise<unknown>, progress: () => number, quietMs: number, maxMs: number): Promise<void> {
  let settled = false;
  const settle = (): void => void (settled = true);
  done.then(settle, settle);
  const started = Date.now();
  let last = progress();
  let movedAt = Date.now();
  while (!settled && Date.now() - movedAt < quietMs && Date.now() - started < maxMs) {
    await Promise.race([done.catch(() => undefined), sleep(100)]);
    if (progress() !== last) {
      last = progress();
      movedAt = Date.now();
    }
  }
}

/**
 * Runs each step of a job as a container of a Docker Engine (or Podman's Docker-compatible service) on
 * the worker's host (specs.ts: the containers and their settings). Container names come from the job id
 * and the step: a create that finds the container counts as success and a container that has started
 * once is never started again, so a retried activity re-attaches to the algorithm an earlier attempt
 * started. Logs follow the containers' log streams into the job's directory.
 */
export class DockerBackend implements ComputeBackend {
  readonly kind = 'docker';
  private readonly env: DockerEnvironment;
  private readonly client: DockerClient;
  private readonly log: Logger;
  private engine: Promise<{ podman: boolean }> | undefined;
  /** Podman's default ulimits (podmanUlimits), learnt at the first step that names a ulimit */
  private podmanDefaults: Promise<Ulimit[]> | undefined;

  constructor(private readonly opts: DockerBackendOptions) {
    this.env = opts.environment;
    this.client = opts.client;
    this.log = opts.logger;
  }

  checkContainer(container: ContainerSpec): string | null {
    const r = resolveImage(this.env.docker, container);
    return 'error' in r ? r.error : null;
  }

  private job(jobId: string): JobLayout {
    return jobLayout(this.opts.workDir, jobId);
  }

  /** `uid:gid` of every step container: the environment's when the worker is root, else the worker's own (it owns the job's files). */
  private user(): string {
    const uid = process.getuid?.() ?? 0;
    return uid === 0 ? this.env.docker.user : `${uid}:${process.getgid?.() ?? uid}`;
  }

  /** The job's directories; those the containers write belong to the containers' user. */
  private prepare(job: JobLayout): void {
    const fresh = !fs.existsSync(job.data);
    fs.mkdirSync(job.root, { recursive: true, mode: 0o711 });
    fs.mkdirSync(job.logs, { recursive: true, mode: 0o700 });
    const shared = [job.data, job.inputs, job.transformations, job.ddos, job.outputs, job.dataLogs, job.publish, job.reports, job.secretDir];
    for (const d of shared) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    fs.chmodSync(job.secretDir, 0o700);
    if (fresh && (process.getuid?.() ?? 1) === 0) {
      const [uid, gid] = this.env.docker.user.split(':').map(Number) as [number, number];
      for (const d of shared) fs.chownSync(d, uid, gid);
    }
  }

  async runStep(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    if (req.environment.id !== this.env.id)
      throw new C2DError('internal', 'bad_step_request', `environment ${req.environment.id} sent to the backend of ${this.env.id}`);
    try {
      return await this.startAndWait(req, hooks);
    } catch (err) {
      if (err instanceof DockerApiError) throw this.unavailable(err);
      throw err;
    } finally {
      if (req.step === 'configure') fs.rmSync(this.job(req.jobId).configureSpec, { force: true });
    }
  }

  /**
   * Pulls the algorithm's image (its progress at the start of the algorithm log) before the algorithm's
   * deadline starts; bounded by the environment's pullTimeout. The algorithm step then pulls no more.
   */
  async prepareAlgorithm(req: { jobId: string; environment: Environment; container: ContainerSpec }, hooks: StepHooks): Promise<StepOutcome> {
    if (req.environment.id !== this.env.id)
      throw new C2DError('internal', 'bad_step_request', `environment ${req.environment.id} sent to the backend of ${this.env.id}`);
    const job = this.job(req.jobId);
    this.prepare(job);
    const ready: StepOutcome = { exitCode: 0, oomKilled: false, reason: '', reattached: false };
    if (fs.existsSync(job.stopMarker)) return { ...ready, exitCode: null, reason: 'stopped' };
    // an earlier attempt got as far as the algorithm: nothing left to pull
    if (await this.call(() => this.client.inspect(containerName(req.jobId, 'algorithm')))) return { ...ready, reattached: true };
    const image = resolveImage(this.env.docker, req.container);
    if ('error' in image) throw new C2DError('validation', 'unknown_image', image.error);
    const failed = await this.call(() => this.ensureImage(req.jobId, image.ref, image.digest, logFile(job, 'algorithm'), hooks));
    if (failed) return { exitCode: null, oomKilled: false, reason: `image-pull: ${failed}`, reattached: false };
    fs.writeFileSync(job.imageReady, image.ref);
    // the algorithm's log exists from here on (status 40 follows): a live log opened now waits for its container
    fs.closeSync(fs.openSync(logFile(job, 'algorithm'), 'a', 0o600));
    return ready;
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (err instanceof DockerApiError) throw this.unavailable(err);
      throw err;
    }
  }

  private unavailable(err: DockerApiError): C2DError {
    if (err.status === 400) return new C2DError('validation', 'docker_rejected', `the engine refused the step: ${err.message}`, undefined, { cause: err });
    return new C2DError('unavailable', 'docker_unavailable', `Docker Engine API: ${err.message}`, undefined, { cause: err });
  }

  private async startAndWait(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    const job = this.job(req.jobId);
    this.prepare(job);
    const name = containerName(req.jobId, req.step);
    const ctx: StepContext = { jobId: req.jobId, environment: this.env, job, user: this.user() };
    const stopped = (): boolean => req.step !== 'publish' && fs.existsSync(job.stopMarker);

    let state = await this.client.inspect(name);
    let created = false;
    if (!state) {
      if (stopped()) return this.endStopped(req);
      let body;
      if (req.step === 'configure') {
        fs.writeFileSync(job.configureSpec, JSON.stringify(req.configure), { mode: 0o400 });
        if ((process.getuid?.() ?? 1) === 0) {
          const [uid, gid] = ctx.user.split(':').map(Number) as [number, number];
          fs.chownSync(job.configureSpec, uid, gid);
          fs.chownSync(job.secretDir, uid, gid);
        }
        body = configureContainer(ctx);
        const missing = await this.ensureStepImage(req.jobId, body.Image ?? '', hooks);
        if (missing) return this.ended(req, name, false, { exitCode: null, oomKilled: false, reason: `image-pull: ${missing}` });
      } else if (req.step === 'algorithm') {
        const networks = this.opts.networks;
        if (req.algorithm.allowNetwork && (!networks || networks.problem))
          return this.ended(req, name, false, {
            exitCode: null,
            oomKilled: false,
            reason: `start-failed: this worker cannot give algorithms network access${networks?.problem ? `: ${networks.problem}` : ''} (set algorithmNetwork: false on the environment so such jobs are refused at start)`,
          });
        const image = resolveImage(this.env.docker, req.algorithm.container);
        if ('error' in image) throw new C2DError('validation', 'unknown_image', image.error);
        // pulled already by prepareAlgorithm (then only the digest is checked again), or pulled here (a workflow that does not prepare)
        const prepared = readText(job.imageReady) === image.ref;
        const pulled = await this.ensureImage(req.jobId, image.ref, image.digest, logFile(job, 'algorithm'), hooks, prepared);
        if (pulled) return this.ended(req, name, false, { exitCode: null, oomKilled: false, reason: `image-pull: ${pulled}` });
        fs.writeFileSync(job.algorithmLogStart, String(fileSize(logFile(job, 'algorithm'))));
        const network = req.algorithm.allowNetwork && networks ? await this.jobNetwork(ctx, networks) : undefined;
        body = algorithmContainer(ctx, req.algorithm, image.ref, network);
      } else {
        // nothing is published once the algorithm passed the output budget: what it left is cut off, and may be the flood itself
        body = publishContainer(ctx, req.withholdOutputs === true || fs.existsSync(job.outputLimitMarker));
        const missing = await this.ensureStepImage(req.jobId, body.Image ?? '', hooks);
        if (missing) return this.ended(req, name, false, { exitCode: null, oomKilled: false, reason: `image-pull: ${missing}` });
      }
      if (body.HostConfig?.Ulimits?.length && (await this.isPodman()))
        body.HostConfig.Ulimits.push(...(await this.podmanUlimits(body.HostConfig.Ulimits, this.env.docker.images.configure)));
      created = await this.client.create(body);
      if (created && stopped()) {
        await this.client.remove(name);
        return this.endStopped(req);
      }
      state = await this.client.inspect(name);
      if (!state) throw new DockerApiError(0, `container ${name} vanished right after it was created`);
    }
    this.log.info({ jobId: req.jobId, step: req.step, container: name }, created ? 'step container created' : 're-attaching to step container');

    if (!state.started) {
      try {
        await this.client.start(name);
      } catch (err) {
        if (!(err instanceof DockerApiError) || err.status === 0) throw err;
        // e.g. the entrypoint's program is not in the image: the step could not start, it will not on a retry either
        await this.client.remove(name);
        return this.ended(req, name, !created, { exitCode: null, oomKilled: false, reason: `start-failed: ${err.message}` });
      }
    }
    const ended = await this.follow(req, name, job, hooks);
    if (req.step === 'algorithm' && req.algorithm.allowNetwork) await this.dropNetwork(req.jobId);
    return this.ended(req, name, !created, ended);
  }

  private ended(req: StepRequest, name: string, reattached: boolean, ended: Ended): StepOutcome {
    const job = this.job(req.jobId);
    const report = req.step === 'algorithm' ? undefined : readJson(reportFile(job, req.step));
    this.log.info(
      { jobId: req.jobId, step: req.step, container: name, exitCode: ended.exitCode, reason: ended.reason, oomKilled: ended.oomKilled },
      'step container ended',
    );
    return { ...ended, ...(report !== undefined ? { report } : {}), reattached };
  }

  private endStopped(req: StepRequest): StepOutcome {
    this.log.info({ jobId: req.jobId, step: req.step }, 'job was stopped: step not started');
    return { exitCode: null, oomKilled: false, reason: 'stopped', reattached: false };
  }

  /**
   * Makes sure the engine has the image (pull policy; pinned images by digest) and writes the pull's
   * progress into the algorithm log. Returns null when it has, else why not (naming the image).
   */
  private async ensureImage(jobId: string, ref: string, digest: string | null, log: string, hooks: StepHooks, pulled = false): Promise<string | null> {
    const policy = this.env.docker.pullPolicy;
    const have = pulled ? [] : policy === 'always' ? null : await this.client.imageDigests(ref);
    if (have === null) {
      if (policy === 'never') return `image ${ref} is not on this host and the environment's pullPolicy is never`;
      const out = fs.createWriteStream(log, { flags: 'a', mode: 0o600 });
      const progress = new PullProgress(ref);
      const line = (s: string): void => void out.write(`${s}\n`);
      const pullLine = (s: string): void => {
        line(s);
        hooks.progress?.(progress.add(s));
      };
      line(`pulling image ${ref}`);
      hooks.progress?.(progress.summary());
      const started = Date.now();
      const timer = setInterval(() => hooks.heartbeat({ step: 'algorithm', state: 'pulling', image: ref }), this.opts.heartbeatMs ?? 1000);
      const bound = this.pullBound();
      try {
        await this.client.pull(ref, this.auth(ref), pullLine, AbortSignal.any([hooks.signal, bound.signal]));
        line(`pulled image ${ref} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        hooks.progress?.(`pulled image ${ref} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } catch (err) {
        if (hooks.signal.aborted) throw stepWaitAborted(hooks.signal);
        const message = bound.signal.aborted ? bound.message : err instanceof DockerApiError ? err.message : (err as Error).message;
        if (!bound.signal.aborted && err instanceof DockerApiError && err.status === 0) throw err;
        line(`could not pull image ${ref}: ${message}`);
        hooks.progress?.(`could not pull image ${ref}: ${message}`);
        this.log.warn({ jobId, image: ref, err: message }, 'image pull failed');
        return `could not pull image ${ref}: ${message}`;
      } finally {
        clearInterval(timer);
        bound.clear();
        await new Promise<void>((resolve) => out.end(resolve));
      }
    }
    if (digest) {
      const digests = (await this.client.imageDigests(ref)) ?? [];
      if (!hasDigest(digests, digest)) return `image ${ref} does not have the manifest digest ${digest} (container.checksum)`;
    }
    return null;
  }

  /** Our configure or publish image: pulled when the engine lacks it (e.g. Podman beside a Docker that built them). */
  private async ensureStepImage(jobId: string, ref: string, hooks: StepHooks): Promise<string | null> {
    if ((await this.client.imageDigests(ref)) !== null) return null;
    const bound = this.pullBound();
    try {
      await this.client.pull(ref, this.auth(ref), () => undefined, AbortSignal.any([hooks.signal, bound.signal]));
      this.log.info({ jobId, image: ref }, 'pulled a step image');
      return null;
    } catch (err) {
      if (hooks.signal.aborted) throw stepWaitAborted(hooks.signal);
      if (bound.signal.aborted) return `could not pull image ${ref}: ${bound.message}`;
      if (err instanceof DockerApiError && err.status === 0) throw err;
      return `could not pull image ${ref}: ${(err as Error).message}`;
    } finally {
      bound.clear();
    }
  }

  /** A pull's own bound: the environment's pullTimeout (a timer of ours, cleared when the pull ends). */
  private pullBound(): { signal: AbortSignal; message: string; clear: () => void } {
    const seconds = this.env.docker.pullTimeout;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), seconds * 1000);
    return { signal: ctl.signal, message: `not pulled within ${seconds} s (the environment's pullTimeout)`, clear: () => clearTimeout(timer) };
  }

  private auth(ref: string): RegistryAuth | undefined {
    const first = ref.split('/')[0] ?? '';
    const host = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'docker.io';
    const cred = this.opts.registryAuth?.[host];
    return cred ? { ...cred, serveraddress: host } : undefined;
  }

  /** Follows the container's log into the step's log file and waits for it to end, heartbeating and enforcing the algorithm's deadline. */
  private async follow(req: StepRequest, name: string, job: JobLayout, hooks: StepHooks): Promise<Ended> {
    if (hooks.signal.aborted) throw stepWaitAborted(hooks.signal);
    const file = logFile(job, req.step);
    // from the container's first byte: a re-attached follower rewrites what an earlier one wrote
    const start = req.step === 'algorithm' ? Number(fs.readFileSync(job.algorithmLogStart, 'utf8')) || 0 : 0;
    if (fs.existsSync(file)) fs.truncateSync(file, Math.min(start, fileSize(file)));
    // a step's log is a result too: it fits the output budget on its own
    const log = openStepLog(file, Math.min(MAX_STEP_LOG_BYTES, maxOutputBytes(this.env)));
    let received = 0;
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        try {
          log.append(chunk);
          done();
        } catch (err) {
          done(err as Error);
        }
      },
    });
    const stopFollowing = new AbortController();
    const logs = this.client.logs(name, out, { follow: true, signal: stopFollowing.signal }).catch((err: unknown) => {
      this.log.warn({ jobId: req.jobId, step: req.step, err: (err as Error).message }, 'could not follow the step log');
    });
    const beat = (): void => hooks.heartbeat({ step: req.step, container: name });
    const timer = setInterval(beat, this.opts.heartbeatMs ?? 1000);
    beat();
    let deadline: NodeJS.Timeout | undefined;
    let sizeCheck: NodeJS.Timeout | undefined;
    try {
      if (req.step === 'algorithm') {
        // what it leaves where it may write, against the output budget (as the process backend's runner does)
        sizeCheck = setInterval(() => {
          if (!this.overBudget(job)) return;
          fs.writeFileSync(job.outputLimitMarker, '');
          clearInterval(sizeCheck);
          this.client.kill(name).catch((err: unknown) => this.log.warn({ jobId: req.jobId, err: (err as Error).message }, 'could not kill the algorithm'));
        }, SIZE_CHECK_MS);
        const state = await this.client.inspect(name);
        const left = (state?.startedAt ?? Date.now()) + this.env.maxJobDuration * 1000 - Date.now();
        deadline = setTimeout(
          () => {
            fs.writeFileSync(job.deadlineMarker, '');
            this.client.kill(name).catch((err: unknown) => this.log.warn({ jobId: req.jobId, err: (err as Error).message }, 'could not kill the algorithm'));
          },
          Math.max(0, left),
        );
      }
      try {
        await this.client.wait(name, hooks.signal);
      } catch (err) {
        if (hooks.signal.aborted) throw stepWaitAborted(hooks.signal);
        throw err;
      }
      // The log stream ends with the container, but a busy engine may take a while to deliver a big log's
      // last bytes: wait while they still come, and give up on a stream that stays silent (or at the bound).
      await untilQuiet(logs, () => received, LOG_QUIET_MS, LOG_DRAIN_MAX_MS);
    } finally {
      clearInterval(timer);
      clearInterval(sizeCheck);
      clearTimeout(deadline);
      stopFollowing.abort();
      await new Promise<void>((resolve) => out.end(resolve));
      log.close();
    }
    const state = await this.client.inspect(name);
    if (!state) return { exitCode: null, oomKilled: false, reason: fs.existsSync(job.stopMarker) ? 'stopped' : 'signal:SIGKILL' };
    return this.outcome(req.step, state, job);
  }

  private async outcome(step: StepName, state: ContainerState, job: JobLayout): Promise<Ended> {
    if (state.error && state.exitCode !== 0 && !state.oomKilled) return { exitCode: null, oomKilled: false, reason: `start-failed: ${state.error}` };
    // Runtimes that ignore SIGXFSZ (python, node) get EFBIG at the budget + 1 byte instead: the final usage tells.
    const cutOff = step === 'algorithm' && (fs.existsSync(job.outputLimitMarker) || state.exitCode === SIGXFSZ_EXIT || this.overBudget(job));
    if (state.exitCode === 0 && !cutOff) return { exitCode: 0, oomKilled: false, reason: '' };
    if (step !== 'publish' && fs.existsSync(job.stopMarker)) return { exitCode: state.exitCode, oomKilled: false, reason: 'stopped' };
    if (step === 'algorithm' && fs.existsSync(job.deadlineMarker)) return { exitCode: state.exitCode, oomKilled: false, reason: 'deadline' };
    if (cutOff) {
      fs.writeFileSync(job.outputLimitMarker, '');
      return { exitCode: state.exitCode, oomKilled: false, reason: 'output-limit' };
    }
    // publish-step stopped at the budget and published nothing
    if (step === 'publish' && state.exitCode === PUBLISH_OVER_LIMIT_EXIT) return { exitCode: state.exitCode, oomKilled: false, reason: 'output-limit' };
    if (state.oomKilled) return { exitCode: state.exitCode, oomKilled: true, reason: 'oom' };
    // Podman 4.3 reports a memory-limit kill as 137 without OOMKilled; nothing else of ours sends SIGKILL here
    if (state.exitCode === SIGKILL_EXIT && (await this.isPodman())) return { exitCode: state.exitCode, oomKilled: true, reason: 'oom' };
    return { exitCode: state.exitCode, oomKilled: false, reason: '' };
  }

  /** Whether the algorithm's writable dirs hold more than the output budget (src/compute/files.ts diskUsage: blocks, hard links once, names counted). */
  private overBudget(job: JobLayout): boolean {
    const bytes = maxOutputBytes(this.env);
    const files = maxOutputFiles(this.env);
    const used = diskUsage([job.outputs, job.dataLogs], { bytes, files });
    return used.bytes > bytes || used.files > files;
  }

  /**
   * The job's egress-only network (src/compute/process/network.ts: never the host, other jobs or the
   * deny list), as the NetworkMode of its algorithm. Podman joins the named namespace (`ns:<path>`);
   * Docker Engine cannot, so a holder container with no network of its own is started, the job's link
   * is moved into its namespace, and the algorithm joins it (`container:<holder>`).
   */
  private async jobNetwork(ctx: StepContext, networks: JobNetworks): Promise<string> {
    if (await this.isPodman()) return `ns:${(await networks.setup(ctx.jobId)).netnsPath}`;
    const holder = networkHolderName(ctx.jobId);
    await this.client.create(networkHolderContainer(ctx));
    await this.client.start(holder);
    const state = await this.client.inspect(holder);
    if (!state?.running || !state.pid) throw new DockerApiError(0, `the network holder ${holder} of the job is not running`);
    await networks.setup(ctx.jobId, { attachPid: state.pid });
    return `container:${holder}`;
  }

  /** Removes the job's network (and its holder container on Docker Engine); idempotent. */
  private async dropNetwork(jobId: string): Promise<void> {
    await this.opts.networks?.teardown(jobId);
    await this.client.remove(networkHolderName(jobId));
  }

  /**
   * Podman (4.3) drops its configured default ulimits (containers.conf `default_ulimits`) from a container
   * that names any ulimit, and then sets limits a host without CAP_SYS_RESOURCE cannot grant: the step
   * would not start. So a step with the fsize limit also gets Podman's defaults, those it names itself
   * left as they are. The defaults are learnt once per backend from a probe container created (never
   * started) without ulimits from the configuration image, which every job has; a failed probe is tried
   * again at the next step.
   */
  private async podmanUlimits(own: Ulimit[], image: string): Promise<Ulimit[]> {
    this.podmanDefaults ??= this.probeUlimits(image).catch((err: unknown) => {
      this.podmanDefaults = undefined;
      throw err;
    });
    const defaults = await this.podmanDefaults;
    return defaults.filter((d) => !own.some((u) => u.Name === d.Name));
  }

  private async probeUlimits(image: string): Promise<Ulimit[]> {
    const name = `c2d-ulimits-probe-${process.pid}-${Date.now().toString(36)}`;
    try {
      if (!(await this.client.create({ name, Image: image, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } })))
        throw new DockerApiError(409, `the probe container ${name} exists already`);
      return await this.client.ulimits(name);
    } finally {
      await this.client.remove(name);
    }
  }

  private async isPodman(): Promise<boolean> {
    this.engine ??= this.client.engine().catch(() => ({ podman: false }));
    return (await this.engine).podman;
  }

  async stopJob(jobId: string): Promise<void> {
    const job = this.job(jobId);
    fs.mkdirSync(job.root, { recursive: true, mode: 0o711 });
    fs.writeFileSync(job.stopMarker, '');
    await Promise.all(STEPS.map((s) => this.client.kill(containerName(jobId, s))));
    // until the engine has seen them exit (a waiting runStep then reports 'stopped')
    const until = Date.now() + 10_000;
    for (const s of STEPS) {
      for (;;) {
        const st = await this.client.inspect(containerName(jobId, s));
        if (!st?.running || Date.now() > until) break;
        await sleep(50);
      }
    }
    this.log.info({ jobId }, 'job stopped');
  }

  listPublished(jobId: string): Promise<PublishedFile[]> {
    const job = this.job(jobId);
    const out: PublishedFile[] = [];
    const report = publishReportSchema.safeParse(readJson(reportFile(job, 'publish')));
    for (const { filename } of report.success ? report.data.files : []) {
      if (!plainName(filename)) continue;
      const file = path.join(job.publish, filename);
      const st = regularFile(file);
      if (st) out.push({ filename, type: 'output', size: st.size, open: () => fs.createReadStream(file) });
    }
    for (const l of STEP_LOGS) {
      const file = logFile(job, l.step);
      const st = regularFile(file);
      if (st) out.push({ filename: l.filename, type: l.type, size: st.size, open: () => fs.createReadStream(file) });
    }
    return Promise.resolve(out);
  }

  /** The step's log file; with follow, keeps reading it while the step's container runs. */
  openLog(jobId: string, step: StepName, opts: { follow: boolean; signal?: AbortSignal }): Readable | null {
    const file = logFile(this.job(jobId), step);
    if (!fs.existsSync(file)) return null;
    if (!opts.follow) return fs.createReadStream(file);
    return Readable.from(this.tail(file, containerName(jobId, step), opts.signal));
  }

  private async *tail(file: string, name: string, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
    let offset = 0;
    for (;;) {
      const state = await this.client.inspect(name);
      // running, or still to start (not created yet, e.g. while its network is set up, or created): more will come,
      // until the job's files are gone (cleanup) or the caller lets go
      const more = state ? state.running || !state.started : fs.existsSync(file);
      const size = fileSize(file);
      if (size > offset) {
        for await (const chunk of fs.createReadStream(file, { start: offset, end: size - 1 }) as AsyncIterable<Buffer>) yield chunk;
        offset = size;
      }
      if (!more || signal?.aborted) return;
      await sleep(250);
    }
  }

  /**
   * The job's workspace for publisher plugins: the same files on this host as the process backend's
   * (inputs, outputs, `<logs>/algorithm.log`), so its reader (no links followed) serves both; it has no step dirs.
   */
  workspace(jobId: string): JobWorkspace {
    const job = this.job(jobId);
    return processWorkspace({ ...job, steps: path.join(job.root, 'steps') });
  }

  async cleanup(jobId: string): Promise<void> {
    const job = this.job(jobId);
    if (fs.existsSync(job.root)) fs.writeFileSync(job.stopMarker, '');
    await Promise.all(STEPS.map((s) => this.client.remove(containerName(jobId, s))));
    await this.dropNetwork(jobId);
    fs.rmSync(job.root, { recursive: true, force: true });
    this.log.info({ jobId }, 'job cleaned up');
  }
}
