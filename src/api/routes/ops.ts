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

  // Ready when what a request needs answers: Temporal always, the chain node when one is configured.
  router.get('/readyz', async (_req, res) => {
    const pings: [name: 'temporal' | 'chain', ping: (() => Promise<void>) | undefined][] = [
      ['temporal', deps.jobs.ping?.bind(deps.jobs)],
      ['chain', deps.chainPing],
    ];
    const checks: Record<string, string> = {};
    const down: string[] = [];
    await Promise.all(
      pings.map(async ([name, ping]) => {
        if (!ping) {
          if (name === 'temporal') checks[name] = 'not checked';
          return;
        }
        try {
          await pingWithin(ping, READY_TIMEOUT_MS);
          checks[name] = 'ok';
        } catch (err) {
          checks[name] = 'unreachable';
          down.push(name);
          deps.logger.warn({ check: name, error: err instanceof Error ? err.name : typeof err, code: err instanceof C2DError ? err.code : undefined }, 'not ready: a dependency is unreachable');
        }
      }),
    );
    if (down.length === 0) {
      res.json({ status: 'ready', checks });
      return;
    }
    const what = down.sort().map((d) => (d === 'temporal' ? 'Temporal' : 'the chain node')).join(' and ');
    res.status(503).json({ error: `${what.charAt(0).toUpperCase()}${what.slice(1)} ${down.length > 1 ? 'are' : 'is'} unreachable`, checks });
  });

  return router;
}
