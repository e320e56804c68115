/**
 * Workflow interceptor (bundled into the workflow sandbox, so deterministic: no I/O, no Node built-ins)
 * reporting job starts and ends to the worker's metrics through a sink. Sinks are not called during
 * replay, so a job replayed by another worker after a crash is not counted twice.
 */
import { proxySinks, type Sinks, workflowInfo, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export interface JobMetricsSinks extends Sinks {
  c2dJobs: {
    started(environment: string): void;
    /** status: the job's final status code, or `workflow_failed` when the workflow itself failed */
    finished(environment: string, status: string): void;
  };
}

const { c2dJobs } = proxySinks<JobMetricsSinks>();

const environmentOf = (args: readonly unknown[]): string => {
  const input = args[0] as { environmentId?: unknown } | undefined;
  return typeof input?.environmentId === 'string' ? input.environmentId : 'unknown';
};

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        if (workflowInfo().workflowType !== 'computeJob') return next(input);
        const environment = environmentOf(input.args);
        c2dJobs.started(environment);
        try {
          const view = (await next(input)) as { status?: unknown } | undefined;
          c2dJobs.finished(environment, typeof view?.status === 'number' ? String(view.status) : 'unknown');
          return view;
        } catch (err) {
          c2dJobs.finished(environment, 'workflow_failed');
          throw err;
        }
      },
    },
  ],
});
