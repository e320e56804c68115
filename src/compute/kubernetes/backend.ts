import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { KubernetesEnvironment } from '../../domain/environment';
import { C2DError } from '../../domain/errors';
import { regularFile } from '../files';
import type { ContainerSpec } from '../../domain/job';
import type { Logger } from '../../domain/logger';
import type { ComputeBackend, PublishedFile, StepHooks, StepName, StepOutcome, StepRequest } from '../backend';
import { MAX_STEP_LOG_BYTES, PUBLISH_OVER_LIMIT_EXIT, STEP_LOGS, STEPS, stepWaitAborted } from '../steps';
import { KubeApiError, type KubeClient, type KubeObject, type V1Pod } from './client';
import { containerStarted, podState } from './pod-state';
import {
  algorithmNetworkPolicy,
  algorithmPod,
  configurePod,
  configureSecret,
  dataVolumeClaim,
  type JobContext,
  jobNames,
  LABELS,
  needsNetworkPolicy,
  ownerConfigMap,
  publishBudget,
  publishPod,
  resolveAlgorithmImage,
  stopMarker,
} from './specs';
import { waitForPods, WatchAborted } from './watch';

export interface KubernetesBackendOptions {
  /** the environment this backend runs (each kubernetes environment has its own backend; they share the client) */
  environment: KubernetesEnvironment;
  client: KubeClient;
  /**
   * The worker's mount of the results volume (the environment's `resultsClaim`): publishing pods
   * write a job's outputs to `<jobId>/outputs` there, and the worker keeps the step logs in `<jobId>/logs`.
   */
  resultsDir: string;
  logger: Logger;
  /** how often a waiting step heartbeats; default 1000 ms */
  heartbeatMs?: number;
  /** how long stopJob waits for the pods to be gone; default 30 s */
  stopTimeoutMs?: number;
}

const STOP_GRACE_SECONDS = 1;

type Ended = Omit<StepOutcome, 'reattached'>;

/**
 * Runs each step of a job as a pod in the environment's namespace (see specs.ts for the objects and
 * their settings). Names come from the job id, creates that find the object count as success, so a
 * retried activity re-attaches to the pod an earlier attempt created; pod phases are watched, not polled.
 */
export class KubernetesBackend implements ComputeBackend {
  readonly kind = 'kubernetes';
  private readonly env: KubernetesEnvironment;
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly namespace: string;
  /** uid of each job's owner ConfigMap, once known (a restarted worker reads it again) */
  private readonly owners = new Map<string, string>();

  constructor(private readonly opts: KubernetesBackendOptions) {
    this.env = opts.environment;
    this.client = opts.client;
    this.log = opts.logger;
    this.namespace = opts.environment.kubernetes.namespace;
  }

  checkContainer(container: ContainerSpec): string | null {
    if (resolveAlgorithmImage(this.env.kubernetes, container)) return null;
    const known = Object.keys(this.env.kubernetes.algorithmImages);
    if (this.env.kubernetes.allowAnyImage) return `image "${container.image}" is not a valid image reference`;
    return `unknown image "${container.image}"; this environment runs: ${known.join(', ') || 'no algorithm images'}`;
  }

  async runStep(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    try {
      return await this.startAndWait(req, hooks);
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /** An answer of the API server as our error: a refused object is permanent (retrying sends the same one), anything else may pass. */
  private mapError(err: unknown): unknown {
    if (!(err instanceof KubeApiError)) return err;
    if ([400, 413, 422].includes(err.status))
      return new C2DError('validation', 'kubernetes_rejected', `the cluster refused the step: ${err.message}`, undefined, { cause: err });
    return new C2DError('unavailable', 'kubernetes_unavailable', `Kubernetes API: ${err.message}`, undefined, { cause: err });
  }

  private async startAndWait(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    if (req.environment.id !== this.env.id)
      throw new C2DError('internal', 'bad_step_request', `environment ${req.environment.id} sent to the backend of ${this.env.id}`);
    const names = jobNames(req.jobId);
    const ctx = await this.jobContext(req.jobId);
    const podName = names.pod(req.step);
    let pod: KubeObject & { kind: 'Pod' };
    if (req.step === 'configure') {
      pod = configurePod(ctx);
      await this.client.create(dataVolumeClaim(ctx));
      if (await this.stopped(req.jobId)) return this.endStopped(req);
      await this.client.create(configureSecret(ctx, req.configure));
    } else if (req.step === 'algorithm') {
      const spec = req.algorithm;
      const image = resolveAlgorithmImage(this.env.kubernetes, spec.container);
      if (!image) throw new C2DError('validation', 'unknown_image', this.checkContainer(spec.container) ?? 'unknown image');
      pod = algorithmPod(ctx, spec, image);
      if (await this.stopped(req.jobId)) return this.endStopped(req);
      // before the pod, so the algorithm never runs a moment without it
      if (needsNetworkPolicy(this.env, spec)) await this.client.create(algorithmNetworkPolicy(ctx));
    } else {
      // Publishing runs even after a stop: it collects what the algorithm wrote (none of the consumer's code runs).
      pod = publishPod(ctx, publishBudget(this.env, req.withholdOutputs === true));
      this.prepareResultsDir(req.jobId);
    }

    const { created } = await this.client.create(pod);
    if (created) this.log.info({ jobId: req.jobId, step: req.step, pod: podName }, 'step pod created');
    else this.log.info({ jobId: req.jobId, step: req.step, pod: podName }, 're-attaching to step pod');
    // A stop that came between our check and the create must not leave a consumer step running.
    if (created && req.step !== 'publish' && (await this.stopped(req.jobId))) {
      await this.client.remove('Pod', this.namespace, podName, { gracePeriodSeconds: 0 });
      return this.endStopped(req);
    }

    const seen = await this.waitForEnd(req, podName, hooks);
    // publish-step stopped at the environment's budget and copied nothing: said by its exit code
    const ended = req.step === 'publish' && seen.exitCode === PUBLISH_OVER_LIMIT_EXIT && seen.reason === '' ? { ...seen, reason: 'output-limit' } : seen;
    if (ended.reason.startsWith('image-pull:') || ended.reason.startsWith('start-failed:')) {
      // the kubelet would keep retrying: nothing of this step may start later
      await this.client.remove('Pod', this.namespace, podName, { gracePeriodSeconds: 0 });
    }
    if (req.step === 'configure') await this.client.remove('Secret', this.namespace, names.secret);
    await this.saveLog(req.jobId, req.step);
    this.log.info({ jobId: req.jobId, step: req.step, exitCode: ended.exitCode, reason: ended.reason, oomKilled: ended.oomKilled }, 'step pod ended');
    return { ...ended, reattached: !created };
  }

  /** The job's owner object (created on first use) and what the builders need. */
  private async jobContext(jobId: string): Promise<JobContext> {
    const names = jobNames(jobId);
    let uid = this.owners.get(jobId);
    if (!uid) {
      const owner = ownerConfigMap(jobId, this.env);
      const made = await this.client.create(owner);
      uid = (made.object ?? (await this.client.read('ConfigMap', this.namespace, names.owner)))?.metadata?.uid;
      if (!uid) throw new C2DError('unavailable', 'kubernetes_unavailable', `the API server returned the job's ConfigMap ${names.owner} without a uid`);
      this.owners.set(jobId, uid);
    }
    return { jobId, environment: this.env, owner: { name: names.owner, uid } };
  }

  private async stopped(jobId: string): Promise<boolean> {
    return (await this.client.read('ConfigMap', this.namespace, jobNames(jobId).stopMarker)) !== null;
  }

  private async endStopped(req: StepRequest): Promise<StepOutcome> {
    if (req.step === 'configure') await this.client.remove('Secret', this.namespace, jobNames(req.jobId).secret);
    this.log.info({ jobId: req.jobId, step: req.step }, 'job was stopped: step not started');
    return { exitCode: null, oomKilled: false, reason: 'stopped', reattached: false };
  }

  /** Watches the step's pod until it ends (or is deleted), heartbeating meanwhile. */
  private async waitForEnd(req: StepRequest, podName: string, hooks: StepHooks): Promise<Ended> {
    if (hooks.signal.aborted) throw stepWaitAborted(hooks.signal);
    let last: { state: string; detail?: string } = { state: 'pending' };
    const beat = (): void => hooks.heartbeat({ step: req.step, pod: podName, ...last });
    const timer = setInterval(beat, this.opts.heartbeatMs ?? 1000);
    beat();
    try {
      const seen = await waitForPods<{ pod: V1Pod | null; ended?: Ended }>(
        this.client,
        this.namespace,
        { fieldSelector: `metadata.name=${podName}` },
        (pods) => {
          const pod = pods.get(podName);
          if (!pod) return { pod: null };
          const state = podState(pod, req.step);
          if (state.kind === 'ended') return { pod, ended: state.outcome };
          last = state.kind === 'pending' ? { state: 'pending', detail: state.detail } : { state: 'running' };
          if (pod.metadata?.deletionTimestamp) last = { state: 'deleting' };
          return undefined;
        },
        hooks.signal,
      );
      if (seen.ended) return seen.ended;
      // The pod is gone before it ended: stopped by us, or deleted by someone else.
      return (await this.stopped(req.jobId))
        ? { exitCode: null, oomKilled: false, reason: 'stopped' }
        : { exitCode: null, oomKilled: false, reason: 'signal:SIGKILL' };
    } catch (err) {
      if (err instanceof WatchAborted) throw stepWaitAborted(hooks.signal);
      throw this.unavailable(err);
    } finally {
      clearInterval(timer);
    }
  }

  private unavailable(err: unknown): Error {
    if (err instanceof C2DError) return err;
    return new C2DError('unavailable', 'kubernetes_unavailable', `Kubernetes API: ${(err as Error).message}`, undefined, { cause: err });
  }

  private jobResultsDir(jobId: string): string {
    jobNames(jobId); // validates the id before it becomes a path
    return path.join(this.opts.resultsDir, jobId);
  }

  /** The publishing pod writes to `<jobId>/outputs` on the results volume as the step uid: the worker creates it open to that uid. */
  private prepareResultsDir(jobId: string): void {
    const outputs = path.join(this.jobResultsDir(jobId), 'outputs');
    fs.mkdirSync(outputs, { recursive: true });
    fs.chmodSync(outputs, 0o777);
  }

  private logFile(jobId: string, step: StepName): string {
    return path.join(this.jobResultsDir(jobId), 'logs', `${step}.log`);
  }

  /** Keeps the step's log beside its outputs (pods go with cleanup, logs must outlive them). Best effort: a log missing is no failure. */
  private async saveLog(jobId: string, step: StepName): Promise<void> {
    try {
      const text = await this.client.podLog(this.namespace, jobNames(jobId).pod(step), step, { limitBytes: MAX_STEP_LOG_BYTES });
      if (text === null) return;
      const file = this.logFile(jobId, step);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
      fs.renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.log.warn({ jobId, step, err: (err as Error).message }, 'could not read the step log');
    }
  }

  async stopJob(jobId: string): Promise<void> {
    const names = jobNames(jobId);
    const ctx = await this.jobContext(jobId);
    await this.client.create(stopMarker(ctx));
    const { items } = await this.client.listPods(this.namespace, { labelSelector: `${LABELS.job}=${jobId}` });
    await Promise.all(
      items.map(async (pod) => {
        const step = STEPS.find((s) => pod.metadata?.name === names.pod(s));
        if (step && containerStarted(pod, step)) await this.saveLog(jobId, step);
      }),
    );
    await Promise.all(STEPS.map((s) => this.client.remove('Pod', this.namespace, names.pod(s), { gracePeriodSeconds: STOP_GRACE_SECONDS })));
    await this.waitPodsGone(jobId);
    this.log.info({ jobId }, 'job stopped');
  }

  /** Until no pod of the job is left (the kubelet has killed their containers), or the stop timeout. */
  private async waitPodsGone(jobId: string): Promise<void> {
    const timeout = AbortSignal.timeout(this.opts.stopTimeoutMs ?? 30_000);
    try {
      await waitForPods(this.client, this.namespace, { labelSelector: `${LABELS.job}=${jobId}` }, (pods) => (pods.size === 0 ? true : undefined), timeout);
    } catch (err) {
      if (!(err instanceof WatchAborted)) throw this.unavailable(err);
      this.log.warn({ jobId }, 'pods of the stopped job are still terminating');
    }
  }

  async listPublished(jobId: string): Promise<PublishedFile[]> {
    const out: PublishedFile[] = [];
    const outputs = path.join(this.jobResultsDir(jobId), 'outputs');
    let names: string[] = [];
    try {
      names = fs.readdirSync(outputs).sort();
    } catch {
      names = [];
    }
    for (const filename of names) {
      const file = path.join(outputs, filename);
      const st = regularFile(file);
      if (st) out.push({ filename, type: 'output', size: st.size, open: () => fs.createReadStream(file) });
    }
    for (const l of STEP_LOGS) {
      const file = this.logFile(jobId, l.step);
      if (!fs.existsSync(file)) await this.saveLog(jobId, l.step);
      const st = regularFile(file);
      if (st) out.push({ filename: l.filename, type: l.type, size: st.size, open: () => fs.createReadStream(file) });
    }
    return out;
  }

  /**
   * The step's log: the stored copy once the step has ended, else from the pod log API (follow:
   * waits for the container to start, then streams until it ends). Empty when the step never ran.
   */
  openLog(jobId: string, step: StepName, opts: { follow: boolean; signal?: AbortSignal }): Readable | null {
    const file = this.logFile(jobId, step);
    if (fs.existsSync(file)) return fs.createReadStream(file);
    return Readable.from(this.streamLog(jobId, step, file, opts));
  }

  private async *streamLog(jobId: string, step: StepName, file: string, opts: { follow: boolean; signal?: AbortSignal }): AsyncGenerator<Buffer> {
    const podName = jobNames(jobId).pod(step);
    const signal = opts.signal ?? new AbortController().signal;
    if (opts.follow) {
      let pod: V1Pod | null;
      try {
        pod = await waitForPods<V1Pod | null>(
          this.client,
          this.namespace,
          { fieldSelector: `metadata.name=${podName}` },
          (pods) => {
            const p = pods.get(podName);
            if (!p) return null;
            return containerStarted(p, step) || podState(p, step).kind === 'ended' ? p : undefined;
          },
          signal,
        );
      } catch (err) {
        if (err instanceof WatchAborted) return;
        throw err;
      }
      if (pod && containerStarted(pod, step)) {
        const live = await this.client.followPodLog(this.namespace, podName, step, signal);
        if (live) {
          for await (const chunk of live as AsyncIterable<Buffer>) yield chunk;
          return;
        }
      }
    }
    if (fs.existsSync(file)) {
      for await (const chunk of fs.createReadStream(file) as AsyncIterable<Buffer>) yield chunk;
      return;
    }
    const text = await this.client.podLog(this.namespace, podName, step, { limitBytes: MAX_STEP_LOG_BYTES });
    if (text) yield Buffer.from(text);
  }

  /** Removes the job from the cluster: the Secret at once, everything else through its owner (the garbage collector follows ownerReferences). */
  async cleanup(jobId: string): Promise<void> {
    const names = jobNames(jobId);
    await this.client.remove('Secret', this.namespace, names.secret);
    await this.client.remove('ConfigMap', this.namespace, names.owner, { propagationPolicy: 'Background' });
    this.owners.delete(jobId);
    fs.rmSync(this.jobResultsDir(jobId), { recursive: true, force: true });
    this.log.info({ jobId }, 'job cleaned up');
  }
}
