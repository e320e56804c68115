import express, { type Request, type RequestHandler } from 'express';
import { rateLimit, type Options as RateLimitOptions } from 'express-rate-limit';
import type { Logger } from '../domain/logger';
import { MethodNotAllowedError } from './errors';
import type { RateLimits } from './deps';
import { BODY_LIMIT } from './route';

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

/** Unsigned routes whose every request costs real work: a DDO lookup (chain, Aquarius), a fetch, ECIES, a fee signature. */
export const EXPENSIVE_UNSIGNED_ROUTES: readonly string[] = ['encrypt', 'initializeCompute', 'fileinfo', 'fileinfoGet', 'aquariusDdo'];

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** The consumer a signed request names (query or JSON body); undefined when it names none a budget could be kept for. */
function consumerOf(req: Request): string | undefined {
  const from = (source: unknown): unknown => {
    if (typeof source !== 'object' || source === null) return undefined;
    const s = source as Record<string, unknown>;
    return s.consumerAddress ?? s.decrypterAddress ?? s.userAddress;
  };
  const address = from(req.query) ?? from(req.body);
  return typeof address === 'string' && ADDRESS.test(address) ? address.toLowerCase() : undefined;
}

/**
 * The rate limits of the API (express-rate-limit, in-process memory: each API replica counts its own),
 * one budget per IP shared by all limited routes and one per consumer address shared by the signed
 * routes. Returns, per route, the handlers to put in front of it. Per IP first, before the body is
 * read; then, on signed routes, per consumer address, counting only requests whose signature passed
 * (a stranger naming someone else's address cannot spend their budget). A refusal is 429 with
 * Retry-After and a message naming the budget and its setting.
 */
export function rateLimiters(limits: RateLimits | undefined): (route: { auth: string; name: string; body: string }) => RequestHandler[] {
  if (!limits) return () => [];
  const windowMs = limits.windowSeconds * 1000;
  const refuse =
    (what: string, limit: number, setting: string): RateLimitOptions['handler'] =>
    (_req, res) => {
      res.status(429).json({
        error: `Too many requests ${what}: at most ${limit} every ${limits.windowSeconds} s (${setting}); retry after ${String(res.getHeader('Retry-After') ?? limits.windowSeconds)} s`,
      });
    };
  const perIp =
    limits.perIp > 0
      ? rateLimit({
          windowMs,
          limit: limits.perIp,
          legacyHeaders: false,
          standardHeaders: 'draft-7',
          handler: refuse('from this IP address', limits.perIp, 'C2D_RATE_LIMIT_PER_IP'),
        })
      : undefined;
  const perAddress =
    limits.perAddress > 0
      ? rateLimit({
          windowMs,
          limit: limits.perAddress,
          legacyHeaders: false,
          standardHeaders: 'draft-7',
          skip: (req) => consumerOf(req) === undefined,
          keyGenerator: (req) => consumerOf(req)!,
          // a request refused for its signature or nonce (401) is given back to the address's budget
          skipFailedRequests: true,
          requestWasSuccessful: (_req, res) => res.statusCode !== 401,
          handler: refuse('for this consumer address', limits.perAddress, 'C2D_RATE_LIMIT_PER_ADDRESS'),
        })
      : undefined;
  const readJson = express.json({ limit: BODY_LIMIT });
  return (route) => {
    const signed = route.auth === 'signature';
    if (!signed && !EXPENSIVE_UNSIGNED_ROUTES.includes(route.name)) return [];
    const handlers: RequestHandler[] = perIp ? [perIp] : [];
    if (signed && perAddress) {
      // the address is in the body for POST/PUT: read it here (the route's own parser then finds it read)
      if (route.body === 'json') handlers.push(readJson);
      handlers.push(perAddress);
    }
    return handlers;
  };
}
