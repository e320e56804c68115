import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertMemo,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, FailureDetails, JobPlan } from '../activities';
import type { JobInput, JobView, TerminationDetails } from '../domain/job';
import { JobStatus, type JobStatusCode, StopReq, type StopReqCode } from '../domain/status';
import { PLUGIN_REFUSED, type PluginCall, type PluginStage, type PluginStep } from '../plugins/types';
import { chainCall, longStep, pluginCall, quick, step, urgent, waiting } from './activity-options';
import { environmentWorkflowId, legacyEnvironmentWorkflowId, releaseSignal, slotGrantedSignal, statusQuery, stopUpdate } from './definitions';
import { initialJobState, jobView } from './job-view';
import { C2DStatus } from './search-attributes';

// Each activity carries a one-line summary the Temporal Web UI shows beside its name (ids only, like everything in history).
const { cleanupJob } = proxyActivities<Activities>({ ...quick, summary: "Remove the job's workspace, secrets and limits" });
// Authorization resolves assets (on chain too): while a source is down the job waits in status 1; a refusal fails at once.
const { authorizeJob } = proxyActivities<Activities>({ ...chainCall, summary: 'Check the assets, the publisher rules and the algorithm' });
const { stopSteps } = proxyActivities<Activities>({ ...urgent, summary: "Kill the job's running steps" });
const { acquireSlot } = proxyActivities<Activities>({ ...waiting, summary: "Ask the environment's capacity workflow for a slot" });
// One quick call to Temporal itself: as a local activity it costs no task dispatch and no extra workflow task.
const local = proxyLocalActivities<Activities>({ ...waiting, summary: "Ask the environment's capacity workflow for a slot" });
const { configureStep } = proxyActivities<Activities>({ ...step, summary: 'Fetch the inputs into the job volume (sandboxed)' });
const { publishStep } = proxyActivities<Activities>({ ...step, summary: 'Store the outputs and logs for the consumer' });
const { verifyOrders } = proxyActivities<Activities>({ ...chainCall, summary: 'Verify the datatoken orders on chain' });

/** A slot is held at most maxJobDuration plus this, so a job that vanished without releasing cannot block others forever. */
const LEASE_MARGIN_MS = 5 * 60_000;

const stopReason: Record<StopReqCode, string> = { 0: '', 1: 'stopped by owner', 2: 'exceeded maxJobDuration' };

interface Failure {
  status: JobStatusCode;
  details: TerminationDetails;
}

/** Message and Ocean resource of an activity failure (our activities put them in the failure's details). */
function describeFailure(err: unknown): { message: string; resource?: string } {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
    const details = err.cause.details?.[0] as FailureDetails | undefined;
    return { message: err.cause.message, ...(details?.resource ? { resource: details.resource } : {}) };
  }
  if (err instanceof ActivityFailure && err.cause) return { message: err.cause.message };
  return { message: err instanceof Error ? err.message : String(err) };
}

const failed = (status: JobStatusCode, reason: string): Failure => ({ status, details: { exitCode: null, oomKilled: false, reason } });

/** What the consumer reads when a plugin ends the job: the plugin's refusal (its own words, meant for them) or a generic line. */
function pluginFailureReason(p: PluginStep, err: unknown): string {
  const who = `plugin ${p.name} (${p.stage})`;
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === PLUGIN_REFUSED) return `${who}: ${err.cause.message.slice(0, 500)}`;
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) return `${who} timed out`;
  return `${who} failed`;
}

type PluginActivities = Record<string, (call: PluginCall) => Promise<void>>;

/** Authorization or configuration could not provide the inputs: 32 when the algorithm is to blame, else 31. */
function provisioningFailure(err: unknown): Failure {
  const { message, resource } = describeFailure(err);
  return resource?.startsWith('algorithm') ? failed(JobStatus.AlgorithmProvisioningFailed, message) : failed(JobStatus.DataProvisioningFailed, message);
}

/**
 * One compute job: authorize → wait for a slot of the environment → configure → run the algorithm →
 * publish → clean up. Status lives in workflow state (query `status`) and in the C2DStatus search
 * attribute. The input and everything this workflow records are ids only; activities fetch secrets.
 */
export async function computeJob(input: JobInput): Promise<JobView> {
  const state = initialJobState();
  const view = (): JobView => jobView(input, state);
  const self = workflowInfo().workflowId;
  const ref = { jobId: input.jobId, environmentId: input.environmentId };
  // jobs started before capacity was kept per task queue replay with the shared id
  const slotsWorkflowId = patched('slots-per-task-queue') ? environmentWorkflowId(input.environmentId, workflowInfo().taskQueue) : legacyEnvironmentWorkflowId(input.environmentId);
  const runScope = new CancellationScope();
  let stoppable = true;
  let granted = false;
  let slot: 'none' | 'requested' | 'released' = 'none';
  let stepsStarted = false;
  let algorithmStarted = false;
  let failure: Failure | null = null;
  /** publisher plugins, decided at authorization */
  let plugins: PluginStep[] = [];

  const setStatus = (status: JobStatusCode): void => {
    if (state.status === status) return;
    state.status = status;
    upsertSearchAttributes([{ key: C2DStatus, value: status }]);
  };

  const requestStop = (why: StopReqCode): void => {
    if (!stoppable || state.stopreq !== StopReq.None) return;
    state.stopreq = why;
    runScope.cancel();
  };

  const signalRelease = async (): Promise<void> => {
    try {
      await getExternalWorkflowHandle(slotsWorkflowId).signal(releaseSignal, self);
    } catch {
      // the capacity workflow is gone, and the slot with it
    }
  };

  const releaseSlot = async (): Promise<void> => {
    if (slot !== 'requested') return;
    slot = 'released';
    await signalRelease();
  };

  const pluginInput = (p: PluginStep): PluginCall => {
    const v = view();
    return {
      jobId: input.jobId,
      environmentId: input.environmentId,
      owner: input.owner,
      plugin: p.name,
      index: p.index,
      stage: p.stage,
      datasetDids: v.inputDID,
      algorithmDid: v.algoDID,
      status: v.status,
      statusText: v.statusText,
      stopreq: v.stopreq,
      dateCreated: v.dateCreated,
      dateFinished: v.dateFinished,
      results: v.results === '' ? 0 : v.results.length,
    };
  };

  /** Runs the stage's plugins in order; the first failure stops the stage and is returned as the reason the job ends. */
  async function runPlugins(stage: PluginStage): Promise<string | null> {
    const due = plugins.filter((p) => p.stage === stage);
    if (due.length > 0 && stage === 'afterAlgorithm') setStatus(JobStatus.FilteringResults);
    for (const p of due) {
      const call = proxyActivities<PluginActivities>({ ...pluginCall(p), summary: `Publisher plugin ${p.name} (${p.stage})` })[p.activity] as (c: PluginCall) => Promise<void>;
      try {
        await call(pluginInput(p));
      } catch (err) {
        if (isCancellation(err)) throw err;
        return pluginFailureReason(p, err);
      }
    }
    return null;
  }

  setHandler(statusQuery, view);
  setHandler(stopUpdate, () => {
    requestStop(StopReq.ByOwner);
    return view();
  });
  setHandler(slotGrantedSignal, () => {
    granted = true;
    // a grant that crossed our release (a stop while waiting) goes straight back
    if (slot === 'released') void CancellationScope.nonCancellable(signalRelease);
  });

  async function run(): Promise<void> {
    let plan: JobPlan;
    try {
      plan = await authorizeJob(input);
    } catch (err) {
      if (isCancellation(err)) throw err;
      failure = provisioningFailure(err);
      return;
    }
    // jobs started before order verification existed replay without it
    if (patched('verify-orders')) {
      try {
        const verified = await verifyOrders(input);
        // jobs verified before the agreement was kept show the main dataset's transferTxId
        if (verified.agreementId && patched('keep-agreement-id')) {
          state.agreementId = verified.agreementId;
          upsertMemo({ agreementId: verified.agreementId });
        }
      } catch (err) {
        if (isCancellation(err)) throw err;
        failure = provisioningFailure(err);
        return;
      }
    }
    // jobs started before plugins existed replay without them
    if (plan.plugins && patched('plugins')) plugins = plan.plugins;
    const refused = await runPlugins('beforeProvision');
    if (refused) {
      failure = failed(JobStatus.DataProvisioningFailed, refused);
      return;
    }
    const limits = plan.environment;

    slot = 'requested';
    const acquire = { environmentId: input.environmentId, slotsWorkflowId, workflowId: self, maxJobs: limits.maxJobs, leaseMs: limits.maxJobDuration * 1000 + LEASE_MARGIN_MS };
    // jobs started before it was a local activity replay with the regular one
    await (patched('local-acquire-slot') ? local.acquireSlot(acquire) : acquireSlot(acquire));
    await condition(() => granted);

    const deadline = new CancellationScope();
    deadline.run(() => sleep(limits.maxJobDuration * 1000)).then(
      () => requestStop(StopReq.Deadline),
      () => undefined,
    );

    setStatus(JobStatus.ConfiguringVolumes);
    stepsStarted = true;
    try {
      const configured = await configureStep(input);
      if (!configured.ok) {
        failure = { status: configured.failStatus ?? JobStatus.DataProvisioningFailed, details: configured.terminationDetails };
        return;
      }
    } catch (err) {
      if (isCancellation(err)) throw err;
      failure = provisioningFailure(err);
      return;
    }
    setStatus(JobStatus.ProvisioningSuccess);

    setStatus(JobStatus.RunningAlgorithm);
    const { algorithmStep } = proxyActivities<Activities>({ ...longStep(limits.maxJobDuration), summary: 'Run the algorithm (sandboxed, no network unless every dataset allows it)' });
    algorithmStarted = true;
    try {
      const ran = await algorithmStep({ ...ref, plan });
      stoppable = false;
      if (ran.ok) state.terminationDetails = ran.terminationDetails;
      else {
        failure = { status: ran.failStatus ?? JobStatus.AlgorithmFailed, details: ran.terminationDetails };
        if (ran.deadline) state.stopreq = StopReq.Deadline;
      }
    } catch (err) {
      if (isCancellation(err)) throw err;
      failure = failed(JobStatus.AlgorithmFailed, `algorithm step failed: ${describeFailure(err).message}`);
    } finally {
      deadline.cancel();
    }
  }

  async function publish(): Promise<void> {
    // Plugins act on the outputs before publishing collects them, also after a stop; a refusal withholds every output.
    let refused = algorithmStarted ? await runPlugins('afterAlgorithm') : null;
    refused ??= await runPlugins('beforePublish');
    if (refused) failure ??= failed(JobStatus.ResultsUploadFailed, refused);
    setStatus(JobStatus.PublishingResults);
    try {
      const published = await publishStep({ ...ref, owner: input.owner, ...(refused ? { withholdOutputs: true } : {}) });
      state.results = published.results;
      state.expireTimestamp = published.expireTimestamp;
      if (!published.ok) {
        failure ??= published.terminationDetails
          ? { status: JobStatus.ResultsUploadFailed, details: published.terminationDetails }
          : failed(JobStatus.ResultsUploadFailed, 'could not publish results');
      }
    } catch (err) {
      failure ??= failed(JobStatus.ResultsUploadFailed, `could not publish results: ${describeFailure(err).message}`);
    }
  }

  function finish(): void {
    if (failure) state.terminationDetails = failure.details;
    else if (state.stopreq !== StopReq.None) state.terminationDetails = { exitCode: null, oomKilled: false, reason: stopReason[state.stopreq] };
    // nothing more will be published
    if (state.results === '') state.results = [];
    state.dateFinishedMs = Date.now();
    setStatus(failure?.status ?? JobStatus.JobFinished);
  }

  try {
    try {
      await runScope.run(run);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      // cancelled by a stop, the deadline, or a cancel request on the workflow itself (treated as the owner's stop)
      if (state.stopreq === StopReq.None) state.stopreq = StopReq.ByOwner;
    }
    stoppable = false;
    // The rest must happen even after a stop: kill what runs, keep the logs, then say how it ended.
    await CancellationScope.nonCancellable(async () => {
      if (state.stopreq !== StopReq.None && stepsStarted) await stopSteps(ref);
      // the slot goes back while publishing runs (jobs started before that replay it in sequence)
      if (patched('release-during-publish')) await Promise.all([releaseSlot(), stepsStarted ? publish() : undefined]);
      else {
        await releaseSlot();
        if (stepsStarted) await publish();
      }
      finish();
    });
  } finally {
    await CancellationScope.nonCancellable(async () => {
      await releaseSlot();
      await cleanupJob(ref);
    });
  }
  // The job has ended (status final, workspace gone): notifications and the like. A failure here changes nothing for the consumer.
  await CancellationScope.nonCancellable(async () => {
    const notRun = await runPlugins('afterPublish');
    if (notRun) log.warn('an afterPublish plugin failed', { jobId: input.jobId, reason: notRun });
  });
  return view();
}
