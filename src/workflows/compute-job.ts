import {
  CancellationScope,
  isCancellation,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { JobInput, JobView } from '../domain/job';
import { finalStatuses, JobStatus, type JobStatusCode, StopReq, type StopReqCode } from '../domain/status';
import type { PluginStage, PluginStep } from '../plugins/types';
import { chainCall } from './activity-options';
import { imagePullProgressSignal, statusQuery, stopUpdate } from './definitions';
import { describeFailure, endWith, failed, type Failure, JobFailed, provisioningFailure, stopped } from './job-failure';
import { initialJobState, jobView, liveView } from './job-view';
import { runPlugins } from './plugins';
import { C2DStatus } from './search-attributes';
import { paymentSaga } from './payment';
import { environmentSlot } from './slot';
import { placeJob, workspaceSteps } from './workspace-steps';

// Each activity carries a one-line summary the Temporal Web UI shows beside its name (ids only, like everything in history).
// Authorization resolves assets (on chain too): while a source is down the job waits in status 1; a refusal fails at once.
const { authorizeJob } = proxyActivities<Activities>({ ...chainCall, summary: 'Check the assets, the publisher rules and the algorithm' });
const { verifyOrders } = proxyActivities<Activities>({ ...chainCall, summary: 'Verify the datatoken orders on chain' });
/** A placement made this recently (when the job asked for its slot) still names a live worker host. */
const FRESH_PLACEMENT_MS = 2000;

/**
 * One compute job: authorize and verify orders (side by side) → wait for a slot of the environment → configure → run the
 * algorithm → [plugins] → publish → clean up. Status lives in workflow state (query `status`), in the
 * C2DStatus search attribute and, for what else a running job's view shows, in the memo `live`: status
 * polls of a running job read those from describe, without a round trip through a worker. The input and everything this workflow records are ids only; activities
 * fetch secrets. A stop (update `stop`, a cancel request, or the deadline) cancels the run; what follows
 * it runs in any case.
 */
export async function computeJob(input: JobInput): Promise<JobView> {
  const state = initialJobState();
  const view = (): JobView => jobView(input, state);
  const ref = { jobId: input.jobId, environmentId: input.environmentId };
  const slot = environmentSlot(input.environmentId);
  const job = new CancellationScope();
  /** how far the run got: whether there are steps to stop and publish, and outputs for afterAlgorithm plugins */
  let reached: 'authorization' | 'steps' | 'algorithm' = 'authorization';
  /** a stop only counts while the algorithm may still run */
  let stoppable = true;
  let plugins: PluginStep[] = [];
  /** the worker host holding the job's workspace, once configured (process, docker); unset: any worker */
  let hostQueue: string | undefined;
  let steps = workspaceSteps(undefined);
  /** C2D v2 paid jobs: the Escrow lock at the start, the claim at the end */
  const payment = paymentSaga(input, state);

  /** what a running job's view holds beyond its status and its input: the memo `live`, read by status polls without a query */
  let liveMemo = JSON.stringify(liveView(state));
  const syncLive = (): void => {
    const live = liveView(state);
    const key = JSON.stringify(live);
    if (key === liveMemo) return;
    liveMemo = key;
    upsertMemo({ live });
  };
  const setStatus = (status: JobStatusCode): void => {
    if (state.status === status) return;
    state.status = status;
    upsertSearchAttributes([{ key: C2DStatus, value: status }]);
    // once it may hold results (settling, final) its view is read from its state (query, then its result), not the memo
    if (status !== JobStatus.Settling && !finalStatuses.includes(status)) syncLive();
  };
  const stop = (why: StopReqCode): void => {
    if (!stoppable || state.stopreq !== StopReq.None) return;
    state.stopreq = why;
    syncLive();
    job.cancel();
  };
  const pluginsAt = (stage: PluginStage): Promise<string | null> => {
    const due = plugins.filter((p) => p.stage === stage);
    if (due.length > 0 && stage === 'afterAlgorithm') setStatus(JobStatus.FilteringResults);
    return runPlugins(due, input, view, hostQueue);
  };

  setHandler(statusQuery, view);
  setHandler(imagePullProgressSignal, (line) => {
    if (state.pulling) setCurrentDetails(line);
  });
  setHandler(stopUpdate, () => {
    stop(StopReq.ByOwner);
    return view();
  });

  /** Up to the algorithm's end; a failure is thrown as JobFailed. */
  async function provisionAndRun(): Promise<void> {
    // Side by side (both only read; one round trip less): a refused authorization fails the job at once,
    // whatever the orders say (an order check still running is dropped with the finished workflow).
    const orders = verifyOrders(input);
    orders.catch(() => undefined); // its failure is handled below, once authorized
    const plan = await authorizeJob(input).catch(endWith(provisioningFailure));
    const { agreementId } = await orders.catch(endWith(provisioningFailure));
    if (agreementId) {
      state.agreementId = agreementId;
      upsertMemo({ agreementId });
    }
    plugins = plan.plugins ?? [];
    const refused = await pluginsAt('beforeProvision');
    if (refused) throw new JobFailed(failed(JobStatus.DataProvisioningFailed, refused));

    const limits = plan.environment;
    const queueWait = input.queueMaxWaitTime !== undefined ? { maxWaitMs: input.queueMaxWaitTime * 1000 } : {};
    const granted = await slot.acquire(limits, { ...queueWait, ...(input.free ? { free: true } : {}) });
    if (!granted)
      throw new JobFailed(
        failed(
          JobStatus.QueueExpired,
          `waited ${input.queueMaxWaitTime} s (queueMaxWaitTime) for environment ${input.environmentId} to have room, and it had none`,
        ),
      );
    // a paid job's price is locked once it has capacity: however long it queued, the lock lasts the job
    await payment
      .lock()
      .catch(endWith((err) => failed(JobStatus.DataProvisioningFailed, `could not lock the payment in the Escrow contract: ${describeFailure(err).message}`)));
    const startDeadline = (): CancellationScope => {
      const scope = new CancellationScope();
      scope
        .run(() => sleep(limits.maxJobDuration * 1000))
        .then(
          () => stop(StopReq.Deadline),
          () => undefined,
        );
      return scope;
    };
    let deadline = startDeadline();
    try {
      setStatus(JobStatus.ConfiguringVolumes);
      reached = 'steps';
      // Placed by the worker that asked for the slot, unless the job queued long enough for that host to have gone.
      const placement = granted.waitedMs <= FRESH_PLACEMENT_MS ? granted.placement : await placeJob(ref).catch(endWith(provisioningFailure));
      hostQueue = placement.hostQueue ?? undefined;
      steps = workspaceSteps(hostQueue);
      const configured = await steps.configureStep(input).catch(endWith(provisioningFailure));
      if (!configured.ok) throw new JobFailed({ status: configured.failStatus ?? JobStatus.DataProvisioningFailed, details: configured.terminationDetails });
      if (limits.imagePullSeconds !== undefined) {
        // The algorithm's image (docker): its pull has its own bound and does not count toward maxJobDuration,
        // which starts again, whole, when the algorithm starts (as the backend's own deadline does).
        deadline.cancel();
        state.pulling = true;
        syncLive();
        const prepared = await steps
          .prepareAlgorithm(limits.imagePullSeconds)({ ...ref, plan })
          .catch(endWith((err) => failed(JobStatus.AlgorithmProvisioningFailed, `could not prepare the algorithm's image: ${describeFailure(err).message}`)))
          .catch((err: unknown) => {
            if (err instanceof JobFailed) state.pullFailed = true; // not a stop
            throw err;
          })
          .finally(() => {
            state.pulling = false;
            syncLive();
          });
        if (!prepared.ok) {
          state.pullFailed = true;
          throw new JobFailed({ status: prepared.failStatus ?? JobStatus.AlgorithmProvisioningFailed, details: prepared.terminationDetails });
        }
        deadline = startDeadline();
      }
      setStatus(JobStatus.ProvisioningSuccess);

      setStatus(JobStatus.RunningAlgorithm);
      reached = 'algorithm';
      payment.algorithmStarted();
      // the step gives the slot back as soon as the algorithm has ended: the next job starts while this one publishes
      const handedOver = slot.handOver();
      const ran = await steps
        .algorithmStep(limits.maxJobDuration)({ ...ref, plan, ...(handedOver ? { slot: handedOver } : {}) })
        .catch(endWith((err) => failed(JobStatus.AlgorithmFailed, `algorithm step failed: ${describeFailure(err).message}`)))
        .finally(() => payment.algorithmEnded());
      stoppable = false;
      if (ran.slotReleased) slot.givenBack();
      if (!ran.ok && ran.deadline) state.stopreq = StopReq.Deadline;
      if (!ran.ok) throw new JobFailed({ status: ran.failStatus ?? JobStatus.AlgorithmFailed, details: ran.terminationDetails });
      state.terminationDetails = ran.terminationDetails;
    } finally {
      deadline.cancel();
    }
  }

  /** Plugins act on the outputs before publishing collects them, also after a stop; a refusal withholds every output. */
  async function publish(): Promise<Failure | null> {
    const refused = (reached === 'algorithm' ? await pluginsAt('afterAlgorithm') : null) ?? (await pluginsAt('beforePublish'));
    const withheld = refused ? failed(JobStatus.ResultsUploadFailed, refused) : null;
    setStatus(JobStatus.PublishingResults);
    try {
      const published = await steps.publishStep({ ...ref, owner: input.owner, ...(refused ? { withholdOutputs: true } : {}) });
      state.results = published.results;
      state.expireTimestamp = published.expireTimestamp;
      if (withheld || published.ok) return withheld;
      return published.terminationDetails
        ? { status: JobStatus.ResultsUploadFailed, details: published.terminationDetails }
        : failed(JobStatus.ResultsUploadFailed, 'could not publish results');
    } catch (err) {
      return withheld ?? failed(JobStatus.ResultsUploadFailed, `could not publish results: ${describeFailure(err).message}`);
    }
  }

  let failure: Failure | null = null;
  try {
    try {
      await job.run(provisionAndRun);
    } catch (err) {
      if (err instanceof JobFailed) failure = err.failure;
      else if (!isCancellation(err)) throw err;
      // cancelled by a stop, the deadline, or a cancel request on the workflow itself (treated as the owner's stop)
      else if (state.stopreq === StopReq.None) state.stopreq = StopReq.ByOwner;
    }
    stoppable = false;
    // The rest must happen even after a stop: kill what runs, keep the logs (the slot goes back meanwhile, unless the algorithm step gave it back), then say how it ended.
    await CancellationScope.nonCancellable(async () => {
      const stepsRan = reached !== 'authorization';
      if (state.stopreq !== StopReq.None && stepsRan) await steps.stopSteps(ref);
      const [, publishFailure] = await Promise.all([slot.release(), stepsRan ? publish() : null]);
      failure ??= publishFailure;
      if (payment.locked()) {
        setStatus(JobStatus.Settling);
        await payment.settle(failure?.status ?? JobStatus.JobFinished);
      }
      if (failure) state.terminationDetails = failure.details;
      else if (state.stopreq !== StopReq.None) state.terminationDetails = stopped(state.stopreq);
      // nothing more will be published
      if (state.results === '') state.results = [];
      state.dateFinishedMs = Date.now();
      setStatus(failure?.status ?? JobStatus.JobFinished);
    });
  } finally {
    await CancellationScope.nonCancellable(async () => {
      await slot.release();
      await steps.cleanupJob(ref);
    });
  }
  // The job has ended (status final, workspace gone): notifications and the like. A failure here changes nothing for the consumer.
  await CancellationScope.nonCancellable(async () => {
    const notRun = await pluginsAt('afterPublish');
    if (notRun) log.warn('an afterPublish plugin failed', { jobId: input.jobId, reason: notRun });
  });
  return view();
}
