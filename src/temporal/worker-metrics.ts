import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { JobMetricsSinks } from './worker-metrics-workflow';

/**
 * Prometheus metrics of one worker, fed without touching workflow or activity code: a workflow
 * interceptor (through a sink) counts jobs started and finished, an activity interceptor times every
 * activity (one activity per stage) and counts order verification failures by their code.
 */
export interface WorkerMetrics {
  registry: Registry;
  /** for Worker.create({ interceptors: { activity } }) */
  activityInterceptor: ActivityInterceptorsFactory;
  /** for Worker.create({ interceptors: { workflowModules } }) */
  workflowModules: string[];
  /** for Worker.create({ sinks }) */
  sinks: InjectedSinks<JobMetricsSinks>;
}

/** the activity that checks datatoken orders on chain */
const VERIFY_ORDERS = 'verifyOrders';

export function createWorkerMetrics(): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const started = new Counter({
    name: 'c2d_worker_jobs_started_total',
    help: 'Jobs whose workflow started on this worker, by environment',
    labelNames: ['environment'] as const,
    registers: [registry],
  });
  const finished = new Counter({
    name: 'c2d_worker_jobs_finished_total',
    help: 'Jobs whose workflow finished on this worker, by environment and final status code (70 finished; 31, 32, 40-ish failures; see the status table)',
    labelNames: ['environment', 'status'] as const,
    registers: [registry],
  });
  const stage = new Histogram({
    name: 'c2d_worker_stage_duration_seconds',
    help: 'Duration of each activity attempt (one activity per job stage: authorizeJob, verifyOrders, configureStep, algorithmStep, publishStep, cleanupJob, ...) by outcome',
    labelNames: ['stage', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });
  const orderFailures = new Counter({
    name: 'c2d_worker_order_verification_failures_total',
    help: 'Failed order verification attempts by error code (Ocean codes for refused orders; retryable chain errors included)',
    labelNames: ['code'] as const,
    registers: [registry],
  });

  const activityInterceptor: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      async execute(input, next) {
        const activityType = ctx.info.activityType;
        const end = stage.startTimer({ stage: activityType });
        try {
          const result = await next(input);
          end({ outcome: 'ok' });
          return result;
        } catch (err) {
          end({ outcome: err instanceof CancelledFailure ? 'cancelled' : 'failed' });
          if (activityType === VERIFY_ORDERS && !(err instanceof CancelledFailure)) {
            orderFailures.inc({ code: err instanceof ApplicationFailure && err.type ? err.type : 'unknown' });
          }
          throw err;
        }
      },
    },
  });

  const sinks: InjectedSinks<JobMetricsSinks> = {
    c2dJobs: {
      started: { fn: (_info, environment) => started.inc({ environment }), callDuringReplay: false },
      finished: { fn: (_info, environment, status) => finished.inc({ environment, status }), callDuringReplay: false },
    },
  };

  return { registry, activityInterceptor, workflowModules: [require.resolve('./worker-metrics-workflow')], sinks };
}

/** Serves GET /metrics of the registry; resolves with the server once it listens. */
export async function serveWorkerMetrics(registry: Registry, host: string, port: number): Promise<http.Server & { port: number }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Not found: the worker serves GET /metrics only' }));
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) =>
        res
          .writeHead(500, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: `metrics failed: ${err instanceof Error ? err.name : 'error'}` })),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}
