import crypto from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import express, { type ErrorRequestHandler, type NextFunction, type Request, type Response, Router } from 'express';
import { z } from 'zod';
import type { Logger } from '../../domain/logger';

/** What the codec endpoint needs; `codec` and `token` both set, or the endpoint refuses every request. */
export interface CodecEndpointSettings {
  /** the Temporal namespace our payloads live in; a request naming another (X-Namespace) is refused */
  namespace: string;
  /** browser origins allowed to call (the Temporal Web UI's) */
  uiOrigins: string[];
  codec?: PayloadCodec;
  /** the bearer token a caller must present */
  token?: string;
}

/** Payloads in proto JSON form, as the Web UI and the CLI send them: metadata values and data in base64. */
const jsonPayload = z.object({
  metadata: z.record(z.string(), z.base64()).nullish(),
  data: z.base64().nullish(),
});
const body = z.object({ payloads: z.array(jsonPayload).max(10_000) });
type JsonPayload = z.infer<typeof jsonPayload>;

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s, 'utf8').digest();

/**
 * Temporal's remote codec protocol (POST /codec/decode, /codec/encode with {payloads:[...]}) for the Web
 * UI and `temporal --codec-endpoint`. Mounted before the API's open CORS and its request log: this
 * endpoint answers only the configured UI origins, only with the token, and its path may carry the token
 * (`/codec/<token>/decode`, for a UI that cannot send headers), which must never reach a log line.
 */
export function codecRoutes(settings: CodecEndpointSettings | undefined, logger: Logger): Router {
  const router = Router();
  const origins = new Set(settings?.uiOrigins ?? []);
  const expected = settings?.token ? digest(settings.token) : undefined;
  const enabled = Boolean(settings?.codec && expected);

  const refuse = (res: Response, status: number, error: string): void => {
    res.status(status).json({ error });
  };

  /** CORS for the UI only: no `*`, no answer at all for another origin. Requests without Origin (CLI, scripts) pass to the token check. */
  const cors = (req: Request, res: Response, next: NextFunction): void => {
    res.vary('Origin');
    const origin = req.get('Origin');
    if (origin !== undefined && !origins.has(origin)) {
      refuse(res, 403, `origin ${origin} may not call the codec endpoint; add it to C2D_CODEC_UI_ORIGINS`);
      return;
    }
    if (origin) res.set({ 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true' });
    if (req.method === 'OPTIONS') {
      res.set({
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, X-Namespace, Authorization, Authorization-Extras',
        'Access-Control-Max-Age': '600',
      });
      res.status(204).end();
      return;
    }
    next();
  };

  const authorize = (req: Request, res: Response, next: NextFunction): void => {
    if (!enabled || !expected) {
      refuse(res, 403, 'the codec endpoint is disabled: set C2D_PAYLOAD_KEYS and C2D_CODEC_TOKEN on the API');
      return;
    }
    const header = /^Bearer (.+)$/i.exec(req.get('Authorization') ?? '')?.[1];
    const presented = typeof req.params.token === 'string' ? req.params.token : header;
    if (!presented || !crypto.timingSafeEqual(digest(presented), expected)) {
      res.set('WWW-Authenticate', 'Bearer realm="c2d-codec"');
      refuse(res, 401, 'the codec endpoint needs the token of C2D_CODEC_TOKEN: send Authorization: Bearer <token>');
      return;
    }
    const namespace = req.get('X-Namespace');
    if (namespace !== undefined && namespace !== settings?.namespace) {
      refuse(res, 403, `this codec serves namespace ${settings?.namespace ?? ''}, not ${namespace}`);
      return;
    }
    next();
  };

  const handle =
    (op: 'encode' | 'decode') =>
    async (req: Request, res: Response): Promise<void> => {
      const parsed = body.safeParse(req.body);
      if (!parsed.success) {
        refuse(res, 400, `the body must be {"payloads":[{"metadata":{"<key>":"<base64>"},"data":"<base64>"}]}: ${z.prettifyError(parsed.error)}`);
        return;
      }
      const codec = settings?.codec;
      if (!codec) return refuse(res, 403, 'the codec endpoint is disabled');
      try {
        const out = await codec[op](parsed.data.payloads.map(fromJson));
        logger.info({ route: `/codec/${op}`, payloads: out.length }, 'codec request handled');
        res.json({ payloads: out.map(toJson) });
      } catch (err) {
        // the message names key ids, never payload contents
        logger.warn({ route: `/codec/${op}`, error: err instanceof Error ? err.name : typeof err }, 'codec request failed');
        refuse(res, 422, err instanceof Error ? err.message : 'the payloads could not be processed');
      }
    };

  for (const op of ['decode', 'encode'] as const) {
    const paths = [`/codec/${op}`, `/codec/:token/${op}`];
    router.options(paths, cors);
    router.post(paths, cors, authorize, express.json({ limit: '8mb' }), handle(op));
    router.all(paths, cors, (_req, res) => refuse(res, 405, 'the codec endpoint takes POST'));
  }
  // Anything else under /codec (`/codec/<token>`, a typo after the token) is answered here too: past this
  // router the request log and the 404 handler would write the path, token and all, into a log line.
  router.all(['/codec', '/codec/*rest'], (_req, res) => refuse(res, 404, 'the codec endpoint is POST /codec/decode and /codec/encode'));
  // body parse errors and the like: answered here, so the app's error log never sees a path with a token in it
  const errors: ErrorRequestHandler = (err: unknown, _req, res, next) => {
    if (res.headersSent) return next(err);
    const status = typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 500;
    refuse(
      res,
      status >= 400 && status < 500 ? status : 500,
      status === 413 ? 'too many payloads in one request (8 MB at most)' : status < 500 ? 'the body must be JSON' : 'the codec failed',
    );
  };
  router.use(errors);
  return router;
}
