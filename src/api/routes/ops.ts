import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { C2DError } from '../../domain/errors';
import { docsPage } from '../docs-page';
import { apiMetrics } from '../metrics';
import { openApiDocument } from '../openapi';
import { textSchema } from '../responses';
import { route } from '../route';

/** For operators and API users: the OpenAPI document and its page, Prometheus metrics, liveness and readiness. */

/** how long /readyz waits for the orchestrator before calling it unreachable */
const READY_TIMEOUT_MS = 3000;

async function pingWithin(ping: () => Promise<void>, ms: number): Promise<void> {
  const timer = new AbortController();
  try {
    await Promise.race([ping(), delay(ms, undefined, { signal: timer.signal }).then(() => Promise.reject(new Error('timed out')))]);
  } finally {
    timer.abort();
  }
}

export const openapi = route({
  name: 'openapi',
  method: 'get',
  path: '/api/openapi.json',
  summary: 'This document',
  tags: ['ops'],
  auth: 'none',
  responses: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } },
  handler: (deps, routes) => {
    const document = JSON.stringify(openApiDocument(routes, deps.version));
    return ({ res }) => void res.type('application/json').send(document);
  },
});

export const docs = route({
  name: 'docs',
  method: 'get',
  path: '/api/docs',
  summary: 'An interactive page over this document',
  tags: ['ops'],
  auth: 'none',
  responses: { 200: { description: 'HTML', type: 'text/html', schema: textSchema } },
  handler:
    () =>
    ({ res }) => {
      res.set('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
      res.type('text/html').send(docsPage);
    },
});

export const metrics = route({
  name: 'metrics',
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics',
  tags: ['ops'],
  auth: 'none',
  responses: { 200: { description: 'Prometheus text format', type: 'text/plain', schema: textSchema } },
  handler: (deps) => {
    const { registry } = apiMetrics(deps);
    return async ({ res }) => {
      const body = await registry.metrics();
      res.type(registry.contentType).send(body);
    };
  },
});

export const healthz = route({
  name: 'healthz',
  method: 'get',
  path: '/healthz',
  summary: 'The process is up',
  tags: ['ops'],
  auth: 'none',
  responses: { 200: { description: 'Up', schema: z.object({ status: z.literal('ok') }) } },
  handler:
    () =>
    ({ json }) =>
      json(200, { status: 'ok' }),
});

const checksSchema = z.record(z.string(), z.enum(['ok', 'unreachable', 'not checked']));

/** Ready when what a request needs answers: Temporal always, the chain node when one is configured. */
export const readyz = route({
  name: 'readyz',
  method: 'get',
  path: '/readyz',
  summary: 'The orchestrator is reachable',
  tags: ['ops'],
  auth: 'none',
  responses: {
    200: { description: 'Ready', schema: z.object({ status: z.literal('ready'), checks: checksSchema }) },
    503: { description: 'Not ready, with the reason', schema: z.object({ error: z.string(), checks: checksSchema }) },
  },
  handler:
    (deps) =>
    async ({ json }) => {
      const pings: [name: 'temporal' | 'chain', ping: (() => Promise<void>) | undefined][] = [
        ['temporal', deps.jobs.ping?.bind(deps.jobs)],
        ['chain', deps.chainPing],
      ];
      const checks: z.infer<typeof checksSchema> = {};
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
            deps.logger.warn(
              { check: name, error: err instanceof Error ? err.name : typeof err, code: err instanceof C2DError ? err.code : undefined },
              'not ready: a dependency is unreachable',
            );
          }
        }),
      );
      if (down.length === 0) return json(200, { status: 'ready', checks });
      const what = down
        .sort()
        .map((d) => (d === 'temporal' ? 'Temporal' : 'the chain node'))
        .join(' and ');
      json(503, { error: `${what.charAt(0).toUpperCase()}${what.slice(1)} ${down.length > 1 ? 'are' : 'is'} unreachable`, checks });
    },
});

export const opsRoutes = [openapi, docs, metrics, healthz, readyz];
