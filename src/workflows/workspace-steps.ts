import { type ActivityOptions, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { longStep, onHost, quick, step, urgent } from './activity-options';

// Which worker host keeps the job's workspace: the one running this workflow task, asked in-process (no round trip).
export const { placeJob } = proxyLocalActivities<Activities>({ ...quick, summary: 'Choose the worker host that keeps the job workspace' });

/** What acts on the job's workspace, on the worker host that configured it when the workspace lives there (`hostQueue`). */
export function workspaceSteps(hostQueue: string | undefined) {
  const on = (options: ActivityOptions, summary: string) => proxyActivities<Activities>({ ...onHost(options, hostQueue), summary });
  return {
    configureStep: on(step, 'Fetch the inputs into the job volume (sandboxed)').configureStep,
    // its own bound (the environment's pullTimeout) plus a margin; a retry after a worker crash pulls on where the engine got to
    prepareAlgorithm: (pullSeconds: number) =>
      on({ ...step, startToCloseTimeout: `${pullSeconds + 60}s` }, "Pull the algorithm's image (not counted in maxJobDuration)").prepareAlgorithm,
    algorithmStep: (maxJobDuration: number) =>
      on(longStep(maxJobDuration), 'Run the algorithm (sandboxed, no network unless every dataset allows it)').algorithmStep,
    publishStep: on(step, 'Store the outputs and logs for the consumer').publishStep,
    stopSteps: on(urgent, "Kill the job's running steps").stopSteps,
    cleanupJob: on(quick, "Remove the job's workspace, secrets and limits").cleanupJob,
  };
}
