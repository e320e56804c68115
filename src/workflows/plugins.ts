import { ActivityFailure, ApplicationFailure, isCancellation, proxyActivities, TimeoutFailure } from '@temporalio/workflow';
import type { JobInput, JobView } from '../domain/job';
import { PLUGIN_REFUSED, type PluginCall, type PluginStep } from '../plugins/types';
import { pluginCall } from './activity-options';

type PluginActivities = Record<string, (call: PluginCall) => Promise<void>>;

/** What the consumer reads when a plugin ends the job: the plugin's refusal (its own words, meant for them) or a generic line. */
function pluginFailureReason(p: PluginStep, err: unknown): string {
  const who = `plugin ${p.name} (${p.stage})`;
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === PLUGIN_REFUSED)
    return `${who}: ${err.cause.message.slice(0, 500)}`;
  if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) return `${who} timed out`;
  return `${who} failed`;
}

/** A plugin's input: ids and the job as it reads now. */
function pluginInput(input: JobInput, v: JobView, p: PluginStep): PluginCall {
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
}

/**
 * Runs the given plugins in order, each as an activity with its own options and a UI summary; the first
 * failure stops the stage and is returned as the reason the job ends (null: all ran). A cancellation passes through.
 */
export async function runPlugins(due: PluginStep[], input: JobInput, view: () => JobView, hostQueue?: string): Promise<string | null> {
  for (const p of due) {
    const call = proxyActivities<PluginActivities>({ ...pluginCall(p, hostQueue), summary: `Publisher plugin ${p.name} (${p.stage})` })[p.activity] as (
      c: PluginCall,
    ) => Promise<void>;
    try {
      await call(pluginInput(input, view(), p));
    } catch (err) {
      if (isCancellation(err)) throw err;
      return pluginFailureReason(p, err);
    }
  }
  return null;
}
