import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledFailure, Context } from '@temporalio/activity';
import { FileFetchError } from '../assets/checksums';
import type { AuthorizedJob, FileDecryptor, RemoteFileSource } from '../assets/authorize';
import { type JobOrderDeps, verifyJobOrders } from '../chain/job-orders';
import { OrderNotMinedError } from '../chain/orders';
import type { EscrowPayments } from '../chain/escrow';
import type { ComputeBackend, ConfigureSpec, StepHooks, StepOutcome, StepRequest } from '../compute/backend';
import { type Environment, environmentResources, jobMaxDuration, jobResourceAmounts, sizedForJob } from '../domain/environment';
import { AccessDeniedError, C2DError, UnavailableError, ValidationError } from '../domain/errors';
import type { FileObject } from '../domain/ddo';
import { type JobInput, jobIdOfWorkflow, RAW_ALGORITHM_DID } from '../domain/job';
import type { ResourceAmount } from '../domain/resources';
import type { Logger } from '../domain/logger';
import type { FetchPolicy } from '../net/guarded-fetch';
import { planPlugins, type PluginRegistry } from '../plugins';
import { type LiveLogStore, shipLiveLog } from '../storage/live-logs';
import type { ResultStore } from '../storage/store';
import { mapFailures } from './failures';
import { algorithmResult, configureResult, publishFailure } from './outcomes';
import { createPaymentActivities } from './payment';
import { progressToWorkflow } from './progress';
import type { AcquireSlotInput, AlgorithmStepInput, JobPlan, JobRef, Placement, PublishResult, PublishStepInput, SlotRef, StepResult } from './types';

export type * from './types';
export type { LockPaymentInput, LockResult, SettlePaymentInput, SettleResult } from './payment';
export type { FailureDetails } from './failures';

export interface ActivityDeps {
  environments: Environment[];
  backendFor(environmentId: string): ComputeBackend;
  results: ResultStore;
  /** authorizeJob bound to the resolver, the decryptor and the job environment's checkContainer */
  authorize: (input: JobInput) => Promise<AuthorizedJob>;
  /**
   * Decrypts the files of the services `authorize` returned. The configuration step re-authorizes
   * and decrypts at run time, so decrypted locations live only in the activity's memory and the
   * backend's per-step secret, never in workflow history.
   */
  decryptor: FileDecryptor;
  /** public algorithms another provider holds: the configuration step gets a signed download through that provider */
  remoteFiles?: RemoteFileSource;
  logger: Logger;
  /** how often a running step heartbeats; default 1000 ms (the workflow's heartbeatTimeout is 10 s) */
  heartbeatMs?: number;
  /** checks datatoken orders on chain; absent without a chain (catalog assets only: nothing to verify) */
  orders?: JobOrderDeps;
  /** the plugins this worker runs (their defaults shape each job's plugin plan); plugins served elsewhere are planned from the settings alone */
  plugins?: PluginRegistry;
  /** C2D_ALLOWED_PRIVATE_HOSTS, handed to the configuration step's guarded fetcher; default: public addresses only */
  fetchPolicy?: FetchPolicy;
  /**
   * This worker's own task queue (config.temporal.hostQueue), which it also polls: the steps of a job on a
   * process or docker environment run there, where the job's workspace is. Unset: every step on the shared queue.
   */
  hostQueue?: string;
  /** results in S3 (several hosts): the algorithm step ships its live log there, for every API */
  liveLogs?: LiveLogStore;
  /** C2D v2 paid jobs: the provider's side of the Escrow contract on `chainId` (absent: paid v2 jobs fail, saying so) */
  escrow?: EscrowPayments;
  chainId?: number;
}

/**
 * Ships the algorithm's log into the live-log store while the step runs here (the log is on this host),
 * so an API on any host follows it. The log appears once the step has started; when the step ends its
 * stream ends and the end marker is written. `stop` gives up waiting after a grace period.
 */
function shipWhileRunning(store: LiveLogStore, backend: ComputeBackend, jobId: string, log: Logger): { finish: () => Promise<void> } {
  const ac = new AbortController();
  const done = (async () => {
    let stream: Readable | null = null;
    while (!stream && !ac.signal.aborted) {
      stream = backend.openLog(jobId, 'algorithm', { follow: true, signal: ac.signal });
      if (!stream) await sleep(200, undefined, { signal: ac.signal }).catch(() => undefined);
    }
    // the step ended before its log was looked at: what it wrote, once
    stream ??= backend.openLog(jobId, 'algorithm', { follow: false });
    if (stream) await shipLiveLog(store, jobId, stream, { rest: () => backend.openLog(jobId, 'algorithm', { follow: false }) });
  })().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'live log shipping failed'));
  return {
    async finish() {
      const settled = await Promise.race([done.then(() => true), sleep(LIVE_LOG_GRACE_MS, false)]);
      if (!settled) {
        ac.abort();
        await done;
      }
    },
  };
}

/** how long the step's live log may take to end once the step has (the stored log is published anyway) */
const LIVE_LOG_GRACE_MS = 10_000;

/** Backends that keep a job's workspace on the worker's host: its steps must all run on that host. */
/** The job's resource amounts and the environment's totals for its capacity workflow; a request it cannot serve fails the job. */
function jobResources(env: Environment, input: JobInput): { resources: ResourceAmount[]; resourceTotals: Record<string, number>; maxFreeJobs?: number } {
  const amounts = jobResourceAmounts(env, input.resources, input.free === true);
  if (typeof amounts === 'string') throw new C2DError('validation', 'bad_resources', amounts);
  return {
    resources: amounts,
    resourceTotals: Object.fromEntries(environmentResources(env).map((r) => [r.id, r.total])),
    ...(input.free && env.free ? { maxFreeJobs: env.free.maxJobs } : {}),
  };
}

const hostBound = (env: Environment): boolean => env.backend === 'process' || env.backend === 'docker';

/** Must match the names in src/workflows (activities may not import workflow code). */
const SLOTS_WORKFLOW_TYPE = 'environmentSlots';
const ACQUIRE_SIGNAL = 'acquire';
const RELEASE_SIGNAL = 'release';

/**
 * Gives a job's slot back to its environment's capacity workflow: a signal, idempotent, so a retried step
 * sends it again harmlessly. False when Temporal did not take it within a few seconds: the workflow then
 * gives the slot back itself.
 */
async function giveSlotBack(slot: SlotRef, log: Logger): Promise<boolean> {
  const { client } = Context.current();
  try {
    await client.connection.withDeadline(Date.now() + 5000, () => client.workflow.getHandle(slot.slotsWorkflowId).signal(RELEASE_SIGNAL, slot.workflowId));
    return true;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not give the slot back from the algorithm step; the workflow does');
    return false;
  }
}

/** Past this size a remote algorithm is fetched by the configuration step itself rather than handed over as code. */
const REMOTE_CODE_MAX_BYTES = 8 * 1024 ** 2;

/**
 * A public algorithm another provider holds: its (single) file is fetched here, through that provider's
 * `download`, where a refused nonce can be retried, and must be the file the trust entry pinned (the
 * bytes that run are the bytes that were checked). Text goes to the step as code; anything else (or a
 * large file) as a download signed now, carrying the checksum of what was fetched here, so the step
 * refuses different bytes.
 */
export async function remoteAlgorithm(
  remote: RemoteFileSource,
  a: Extract<AuthorizedJob['algorithm'], { kind: 'published' }>,
  transferTxId: string | undefined,
): Promise<{ rawcode: string } | { files: FileObject[] }> {
  let content: Buffer | null;
  try {
    content = await remote.fetchFile(a.ddo, a.service, transferTxId, 0, REMOTE_CODE_MAX_BYTES);
  } catch (err) {
    if (!(err instanceof FileFetchError)) throw err;
    if (err.reason !== 'file exceeds the size limit') {
      const message = `algorithm: the provider holding this public algorithm did not hand out its file (${err.reason})`;
      if (err.transient) throw new UnavailableError('algorithm_file_unavailable', message, { cause: err });
      throw new AccessDeniedError('algorithm', 'algorithm_file_unavailable', message);
    }
    content = null;
  }
  const pinned = a.filesChecksum?.slice(0, 64).toLowerCase();
  if (content === null) return { files: [{ ...(await remote.signedFile(a.ddo, a.service, transferTxId, 0)), ...(pinned ? { checksum: pinned } : {}) }] };
  const hash = createHash('sha256').update(content).digest('hex');
  if (pinned && hash !== pinned)
    throw new AccessDeniedError('algorithm', 'algorithm_file_checksum_mismatch', 'algorithm: its provider handed out another file than the one just checked');
  let text: string | null = null;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(content);
  } catch {
    text = null;
  }
  if (text !== null && text.length > 0) return { rawcode: text };
  return { files: [{ ...(await remote.signedFile(a.ddo, a.service, transferTxId, 0)), checksum: hash }] };
}

export function createActivities(deps: ActivityDeps) {
  const heartbeatMs = deps.heartbeatMs ?? 1000;

  const environment = (id: string): Environment => {
    const env = deps.environments.find((e) => e.id === id);
    if (!env) throw new ValidationError({ environment: ['Compute environment does not exist'] }, 'Compute environment does not exist');
    return env;
  };

  /** The job's workspace on this worker's host when its backend keeps it there (process, docker), else any worker's (kubernetes). */
  const placeHere = (environmentId: string): Placement => ({
    hostQueue: deps.hostQueue && hostBound(environment(environmentId)) ? deps.hostQueue : null,
  });

  /** Runs a step with a steady heartbeat; a cancelled activity stops waiting (the workflow kills the step through stopSteps). */
  async function runStep(backend: ComputeBackend, req: StepRequest): Promise<StepOutcome> {
    return withStepHooks((hooks) => backend.runStep(req, hooks));
  }

  async function withStepHooks(run: (hooks: StepHooks) => Promise<StepOutcome>): Promise<StepOutcome> {
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(), heartbeatMs);
    try {
      const outcome = await run({ heartbeat: (details) => ctx.heartbeat(details), signal: ctx.cancellationSignal });
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      return outcome;
    } catch (err) {
      if (ctx.cancellationSignal.aborted && !(err instanceof CancelledFailure)) throw ctx.cancellationSignal.reason;
      throw err;
    } finally {
      clearInterval(timer);
    }
  }

  async function buildConfigureSpec(input: JobInput, env: Environment): Promise<ConfigureSpec> {
    const auth = await deps.authorize(input);
    const datasets = await Promise.all(
      auth.datasets.map(async (d, i) => ({
        did: d.did,
        ddo: d.ddo,
        files: (await deps.decryptor.decryptServiceFiles(d.ddo, d.service, i === 0 ? 'dataset' : `datasets[${i}]`)).files,
      })),
    );
    let algorithm: ConfigureSpec['algorithm'];
    if (auth.algorithm.kind === 'published') {
      const a = auth.algorithm;
      const transferTxId = input.algorithm.kind === 'published' ? input.algorithm.transferTxId : undefined;
      algorithm =
        a.remote && deps.remoteFiles
          ? { did: a.did, ddo: a.ddo, ...(await remoteAlgorithm(deps.remoteFiles, a, transferTxId)) }
          : { did: a.did, ddo: a.ddo, files: (await deps.decryptor.decryptServiceFiles(a.ddo, a.service, 'algorithm')).files };
    } else {
      const raw = input.algorithm.kind === 'raw' ? input.algorithm : undefined;
      algorithm = {
        did: null,
        ddo: null,
        ...(raw?.rawcode !== undefined ? { rawcode: raw.rawcode } : {}),
        ...(raw?.url ? { files: [{ type: 'url' as const, url: raw.url, method: 'GET' }] } : {}),
      };
    }
    const algoCustomData = input.algorithm.algocustomdata;
    const userdata: Record<string, Record<string, unknown>> = {};
    for (const d of input.datasets) if (d.userdata) userdata[d.did] = d.userdata;
    if (input.algorithm.kind === 'published' && input.algorithm.userdata) userdata.algorithm = input.algorithm.userdata;
    return {
      datasets,
      algorithm,
      ...(algoCustomData ? { algoCustomData } : {}),
      ...(Object.keys(userdata).length > 0 ? { userdata } : {}),
      maxInputBytes: Math.floor(env.diskGB * 1024 ** 3),
      ...(deps.fetchPolicy && deps.fetchPolicy.allowedPrivateHosts.length > 0 ? { allowedPrivateHosts: [...deps.fetchPolicy.allowedPrivateHosts] } : {}),
    };
  }

  return {
    ...createPaymentActivities(deps),
    /** Re-checks the job's assets and rules (they may have changed since the API accepted it); returns ids and limits only. */
    async authorizeJob(input: JobInput): Promise<JobPlan> {
      return mapFailures(async () => {
        const env = environment(input.environmentId);
        const auth = await deps.authorize(input);
        const datasetDids = auth.datasets.map((d) => d.did);
        const plugins = planPlugins(env, datasetDids, deps.plugins);
        return {
          algorithmDid: auth.algorithm.kind === 'published' ? auth.algorithm.did : RAW_ALGORITHM_DID,
          datasetDids,
          container: auth.algorithm.container,
          allowNetwork: auth.allowNetwork,
          environment: {
            maxJobs: env.maxJobs,
            maxJobDuration: jobMaxDuration(env, input),
            storageExpiry: env.storageExpiry,
            ...jobResources(env, input),
            ...(env.backend === 'docker' && deps.backendFor(env.id).prepareAlgorithm ? { imagePullSeconds: env.docker.pullTimeout } : {}),
          },
          ...(plugins.length > 0 ? { plugins } : {}),
        };
      });
    },

    /**
     * Verifies the datatoken orders of the job's on-chain assets (wire contract §4). A refused order is
     * permanent (its Ocean code, no algorithm runs); an unreachable chain is retried while the job waits.
     * A transaction not mined yet is looked for once per attempt: the retry policy (chainCall) does the
     * waiting, and once the verifier's receiptWaitMs has passed since the activity was scheduled the
     * order is refused (order_not_mined, or order_not_found for a transaction the chain does not know).
     */
    async verifyOrders(input: JobInput): Promise<{ agreementId: string | null }> {
      return mapFailures(async () => {
        const env = environment(input.environmentId);
        const orders = deps.orders;
        if (!orders) return { agreementId: null };
        // a C2D v2 paid job pays its compute through the Escrow: its orders grant access and carry no fee for it
        const req = {
          input,
          environment: input.payment ? { ...env, priceMin: 0 } : env,
          durationSeconds: input.maxJobDuration ?? env.maxJobDuration,
          now: Math.floor(Date.now() / 1000),
          receipts: 'once' as const,
        };
        const result = await verifyJobOrders(orders, req).catch((err: unknown) => {
          if (err instanceof OrderNotMinedError && Date.now() - Context.current().info.scheduledTimestampMs >= orders.verifier.receiptWaitMs) throw err.refusal;
          throw err;
        });
        if (result.agreementId) deps.logger.info({ jobId: input.jobId, agreementId: result.agreementId }, 'orders verified');
        return result;
      });
    },

    /**
     * Queues the job at its environment's capacity workflow (signalWithStart: started on first use), and
     * places it on this worker's host as placeJob does: a job granted at once keeps that placement, so its
     * workspace needs no second call (a local activity costs the workflow task a round trip). Its steps
     * bound to this host, its configuration may start here ahead of its turn (prepareConfigure), while
     * it waits for the grant; the configure step takes it if it comes soon enough.
     */
    async acquireSlot(input: AcquireSlotInput): Promise<Placement> {
      return mapFailures(async () => {
        const ctx = Context.current();
        const placement = placeHere(input.environmentId);
        // once the signal below is on its way (its sandbox's set-up is not the grant's to wait for); the
        // first attempt only: a retried one would find what the first started, or its job's workspace
        if (placement.hostQueue !== null && ctx.info.attempt === 1) {
          const env = environment(input.environmentId);
          const backend = deps.backendFor(env.id);
          const req = { jobId: jobIdOfWorkflow(input.workflowId), environment: env, allowedPrivateHosts: [...(deps.fetchPolicy?.allowedPrivateHosts ?? [])] };
          if (backend.prepareConfigure) setImmediate(() => backend.prepareConfigure?.(req));
        }
        await ctx.client.workflow.signalWithStart(SLOTS_WORKFLOW_TYPE, {
          workflowId: input.slotsWorkflowId,
          taskQueue: ctx.info.taskQueue,
          args: [input.environmentId],
          signal: ACQUIRE_SIGNAL,
          signalArgs: [
            {
              workflowId: input.workflowId,
              maxJobs: input.maxJobs,
              leaseMs: input.leaseMs,
              ...(input.resources ? { resources: input.resources, totals: input.totals } : {}),
              ...(input.free ? { free: true, maxFreeJobs: input.maxFreeJobs } : {}),
            },
          ],
        });
        return placement;
      });
    },

    /** Places the job on this worker's host when its backend keeps the workspace there (a local activity: the worker running the workflow). */
    placeJob(input: JobRef): Promise<Placement> {
      return mapFailures(() => Promise.resolve(placeHere(input.environmentId)));
    },

    /** Fetches inputs and the algorithm into the job's volume; decrypts file locations here, at run time. */
    async configureStep(input: JobInput): Promise<StepResult> {
      return mapFailures(async () => {
        const log = deps.logger.child({ jobId: input.jobId, step: 'configure' });
        const env = environment(input.environmentId);
        const configure = await buildConfigureSpec(input, env);
        log.info({}, 'step started');
        const outcome = await runStep(deps.backendFor(env.id), { jobId: input.jobId, environment: env, step: 'configure', configure });
        const result = configureResult(outcome);
        log.info({ exitCode: outcome.exitCode, reason: outcome.reason, reattached: outcome.reattached, ok: result.ok }, 'step ended');
        return result;
      });
    },

    /**
     * Makes the algorithm's image ready (docker: pulls it, within the environment's pullTimeout), so the
     * algorithm's deadline starts when it starts. A pull that fails ends the job 32, naming the image.
     */
    async prepareAlgorithm(input: AlgorithmStepInput): Promise<StepResult> {
      return mapFailures(async () => {
        const log = deps.logger.child({ jobId: input.jobId, step: 'algorithm' });
        const env = environment(input.environmentId);
        const backend = deps.backendFor(env.id);
        const ready: StepResult = { ok: true, terminationDetails: { exitCode: null, oomKilled: false, reason: '' } };
        const prepare = backend.prepareAlgorithm?.bind(backend);
        if (!prepare) return ready;
        const toWorkflow = progressToWorkflow(log);
        let outcome: StepOutcome;
        try {
          outcome = await withStepHooks((hooks) =>
            prepare({ jobId: input.jobId, environment: env, container: input.plan.container }, { ...hooks, progress: toWorkflow.progress }),
          );
        } finally {
          await toWorkflow.flush();
        }
        log.info({ reason: outcome.reason }, 'algorithm image prepared');
        return outcome.reason === '' ? ready : algorithmResult(outcome);
      });
    },

    /** Runs the algorithm; after a worker crash the retry re-attaches to the running step (the backend's guarantee). */
    async algorithmStep(input: AlgorithmStepInput): Promise<StepResult> {
      return mapFailures(async () => {
        const log = deps.logger.child({ jobId: input.jobId, step: 'algorithm' });
        const env = environment(input.environmentId);
        const { plan } = input;
        const algorithmEnv: Record<string, string> = {
          DIDS: JSON.stringify(plan.datasetDids),
          TRANSFORMATION_DID: plan.algorithmDid,
          VOLUME: '/data',
          INPUTS: '/data/inputs',
          OUTPUTS: '/data/outputs',
          LOGS: '/data/logs',
          ALGO: '/data/transformations/algorithm',
        };
        log.info({ attempt: Context.current().info.attempt }, 'step started');
        const backend = deps.backendFor(env.id);
        const shipping = deps.liveLogs && hostBound(env) ? shipWhileRunning(deps.liveLogs, backend, input.jobId, log) : null;
        let outcome: StepOutcome;
        try {
          outcome = await runStep(backend, {
            jobId: input.jobId,
            environment: sizedForJob(env, plan.environment),
            step: 'algorithm',
            algorithm: { container: plan.container, env: algorithmEnv, allowNetwork: plan.allowNetwork },
          });
        } finally {
          await shipping?.finish();
        }
        log.info({ exitCode: outcome.exitCode, reason: outcome.reason, oomKilled: outcome.oomKilled, reattached: outcome.reattached }, 'step ended');
        const result = algorithmResult(outcome);
        return input.slot && (await giveSlotBack(input.slot, log)) ? { ...result, slotReleased: true } : result;
      });
    },

    /** Collects outputs and logs and stores them for the consumer until the environment's storageExpiry. */
    async publishStep(input: PublishStepInput): Promise<PublishResult> {
      return mapFailures(async () => {
        const log = deps.logger.child({ jobId: input.jobId, step: 'publish' });
        const env = environment(input.environmentId);
        const backend = deps.backendFor(env.id);
        // withheld outputs are not even listed, so their names stay out of publish.log too
        const withhold = input.withholdOutputs ? { withholdOutputs: true } : {};
        const outcome = await runStep(backend, { jobId: input.jobId, environment: env, step: 'publish', ...withhold });
        const ok = outcome.exitCode === 0 && outcome.reason === '';
        const files = (await backend.listPublished(input.jobId)).filter((f) => (ok && !input.withholdOutputs) || f.type !== 'output');
        const expiresAtMs = Date.now() + env.storageExpiry * 1000;
        const results = await deps.results.save(
          input.jobId,
          input.owner,
          files.map((f) => ({ filename: f.filename, type: f.type, open: () => f.open() })),
          expiresAtMs,
        );
        const expireTimestamp = Math.floor(expiresAtMs / 1000);
        if (!ok) {
          log.warn({ exitCode: outcome.exitCode, reason: outcome.reason }, 'publish step failed');
          return { ok, results, expireTimestamp, terminationDetails: publishFailure(outcome) };
        }
        log.info({ files: results.length, reattached: outcome.reattached, reason: outcome.reason }, 'results stored');
        return { ok, results, expireTimestamp };
      });
    },

    /** Kills every running step of the job at once (a stop or the deadline); does not wait for heartbeats. */
    async stopSteps(input: JobRef): Promise<void> {
      return mapFailures(async () => {
        await deps.backendFor(environment(input.environmentId).id).stopJob(input.jobId);
        deps.logger.info({ jobId: input.jobId }, 'steps stopped');
      });
    },

    /** Removes the job's workspace, secrets and limits. Idempotent. */
    async cleanupJob(input: JobRef): Promise<void> {
      return mapFailures(async () => {
        await deps.backendFor(environment(input.environmentId).id).cleanup(input.jobId);
        await deps.liveLogs?.remove(input.jobId);
        deps.logger.debug({ jobId: input.jobId }, 'job cleaned up');
      });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
