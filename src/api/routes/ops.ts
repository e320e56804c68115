import { Router } from 'express';
import { C2DError } from '../../domain/errors';
import type { AppDeps } from '../deps';
import { apiMetrics } from '../metrics';
import { docsPage, openApiDocument } from '../openapi';

/** how long /readyz waits for the orchestrator before calling it unreachable */
const READY_TIMEOUT_MS = 3000;

async function pingWithin(ping: () => Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
  });
  try {
    await Promise.race([ping(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** For operators and API users: the OpenAPI document and its page, Prometheus metrics, liveness and readiness. */
export function opsRoutes(deps: AppDeps): Router {
  const router = Router();
  const metrics = apiMetrics(deps);
  const document = JSON.stringify(openApiDocument(deps.version));

  router.get('/api/openapi.json', (_req, res) => {
    res.type('application/json').send(document);
  });

  router.get('/api/docs', (_req, res) => {
    res.set('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
    res.type('text/html').send(docsPage);
  });

  router.get('/metrics', async (_req, res) => {
    const body = await metrics.registry.metrics();
    res.type(metrics.registry.contentType).send(body);
  });

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const ping = deps.jobs.ping?.bind(deps.jobs);
    if (!ping) {
      res.json({ status: 'ready', checks: { temporal: 'not checked' } });
      return;
    }
    try {
      await pingWithin(ping, READY_TIMEOUT_MS);
      res.json({ status: 'ready', checks: { temporal: 'ok' } });
    } catch (err) {
      deps.logger.warn({ error: err instanceof Error ? err.name : typeof err, code: err instanceof C2DError ? err.code : undefined }, 'not ready: Temporal unreachable');
      res.status(503).json({ error: 'Temporal is unreachable', checks: { temporal: 'unreachable' } });
    }
  });

  return router;
}
