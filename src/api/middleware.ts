import type { RequestHandler } from 'express';
import type { Logger } from '../domain/logger';
import { MethodNotAllowedError } from './errors';

/** Ocean's client 3.3.0 joins `providerUri + path` naively, so `//api/...` must route like `/api/...`. */
export const collapseLeadingSlashes: RequestHandler = (req, _res, next) => {
  if (req.url.startsWith('//')) req.url = req.url.replace(/^\/{2,}/, '/');
  next();
};

/** CORS for browser dApps: any origin, and preflights answered here. */
export const cors: RequestHandler = (req, res, next) => {
  res.set('Access-Control-Allow-Origin', '*');
  if (req.method !== 'OPTIONS') return next();
  res.set({
    'Access-Control-Allow-Methods': 'GET,POST,PUT,DELETE,OPTIONS',
    'Access-Control-Allow-Headers': req.get('Access-Control-Request-Headers') ?? 'Content-Type',
    'Access-Control-Max-Age': '600',
  });
  res.status(204).end();
};

/** Ocean answers HEAD on signed routes with 405 (a HEAD would otherwise run the GET handler, signature and all). */
export function refuseHead(paths: readonly string[]): RequestHandler {
  const set = new Set(paths);
  return (req, _res, next) => {
    if (req.method === 'HEAD' && set.has(req.path)) throw new MethodNotAllowedError();
    next();
  };
}

/** One line per request: a constant message with route, status and duration; never a body, a signature or a query. */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const jobId = typeof res.locals.jobId === 'string' ? res.locals.jobId : undefined;
      logger.info(
        {
          route: req.path,
          method: req.method,
          status: res.statusCode,
          durationMs: Number(process.hrtime.bigint() - started) / 1e6,
          ...(jobId ? { jobId } : {}),
        },
        'request handled',
      );
    });
    next();
  };
}
