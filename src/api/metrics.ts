import type { Request, RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import type { AppDeps } from './deps';
import { requestParams } from './params';
import { COMPUTE_PATH } from './routes/compute';

/** Prometheus metrics of one API instance: a registry of its own, so apps in one process (tests) don't share counters. */
export interface ApiMetrics {
  registry: Registry;
  /** times every request by route template, method and status; counts jobs started */
  middleware: RequestHandler;
}

/** Express 5 keeps the matched route on the request; unmatched requests share one label so raw URLs never become labels. */
const routeOf = (req: Request): string => {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  return typeof route === 'string' ? `${req.baseUrl}${route}` : 'unmatched';
};

const startedEnvironment = z.object({ environment: z.string() });

function createApiMetrics(deps: Pick<AppDeps, 'environments' | 'jobs' | 'logger'>): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const known = new Set(deps.environments.map((e) => e.id));

  const latency = new Histogram({
    name: 'c2d_api_request_duration_seconds',
    help: 'API request latency by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const started = new Counter({
    name: 'c2d_jobs_started_total',
    help: 'Jobs accepted by computeStart, by environment',
    labelNames: ['environment'] as const,
    registers: [registry],
  });
  for (const id of known) started.inc({ environment: id }, 0);
  // Read from the orchestrator on scrape; an unreachable orchestrator leaves the series out instead of failing the scrape.
  const orchestratorGauge = (name: string, help: string, read: (environmentId: string) => Promise<number>): void => {
    new Gauge({
      name,
      help,
      labelNames: ['environment'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        await Promise.all(
          deps.environments.map(async (env) => {
            try {
              this.set({ environment: env.id }, await read(env.id));
            } catch (err) {
              deps.logger.warn({ metric: name, environment: env.id, error: err instanceof Error ? err.name : typeof err }, 'metrics: orchestrator unavailable');
            }
          }),
        );
      },
    });
  };
  orchestratorGauge('c2d_environment_current_jobs', 'Algorithm steps holding a slot of the environment', (id) => deps.jobs.currentJobs(id));
  const queued = deps.jobs.queuedJobs?.bind(deps.jobs);
  if (queued) orchestratorGauge('c2d_environment_queued_jobs', 'Jobs waiting in status 1 for a slot of the environment', queued);
  const maxJobs = new Gauge({
    name: 'c2d_environment_max_jobs',
    help: 'Slots of the environment',
    labelNames: ['environment'] as const,
    registers: [registry],
  });
  for (const env of deps.environments) maxJobs.set({ environment: env.id }, env.maxJobs);

  const startPath = COMPUTE_PATH;
  const middleware: RequestHandler = (req, res, next) => {
    const end = latency.startTimer();
    res.on('finish', () => {
      const route = routeOf(req);
      end({ route, method: req.method, status: String(res.statusCode) });
      if (req.method !== 'POST' || route !== startPath || res.statusCode !== 200) return;
      // The start route owns its parsing; here the request already succeeded, so its environment is a known one.
      const parsed = startedEnvironment.safeParse(requestParams(req));
      if (parsed.success && known.has(parsed.data.environment)) started.inc({ environment: parsed.data.environment });
    });
    next();
  };
  return { registry, middleware };
}

const perApp = new WeakMap<object, ApiMetrics>();

/** The metrics of the app built from `deps`: the middleware (mounted early) and `/metrics` share them. */
export function apiMetrics(deps: Pick<AppDeps, 'environments' | 'jobs' | 'logger'>): ApiMetrics {
  let metrics = perApp.get(deps);
  if (!metrics) {
    metrics = createApiMetrics(deps);
    perApp.set(deps, metrics);
  }
  return metrics;
}
