import crypto from 'node:crypto';
import fs from 'node:fs';
import { z } from 'zod';
import { guardedRequest, RefusedRequestError, STRICT_POLICY } from '../net/guarded-fetch';
import { definePlugin, PluginRefusal } from './plugin';
import type { PluginCall } from './types';

export const webhookOptions = z
  .object({
    /** where the notification is POSTed */
    url: z.url({ protocol: /^https?$/ }),
    /** HMAC-SHA256 key (at least 16 characters) */
    secret: z.string().min(16, 'at least 16 characters').optional(),
    /** a file holding the key instead (read on every call, so it can be rotated) */
    secretFile: z.string().min(1).optional(),
  })
  .refine((o) => (o.secret === undefined) !== (o.secretFile === undefined), 'set exactly one of secret and secretFile');
export type WebhookOptions = z.infer<typeof webhookOptions>;

/** Header carrying `sha256=<hex HMAC-SHA256 of the raw body>`. */
export const SIGNATURE_HEADER = 'x-c2d-signature';

/** The notification: what the job object says, ids only. */
export function webhookBody(call: PluginCall, sentAt: number): string {
  return JSON.stringify({
    event: 'job.finished',
    jobId: call.jobId,
    owner: call.owner,
    environment: call.environmentId,
    status: call.status,
    statusText: call.statusText,
    stopreq: call.stopreq,
    algoDID: call.algorithmDid,
    inputDID: call.datasetDids,
    dateCreated: call.dateCreated,
    dateFinished: call.dateFinished,
    results: call.results,
    sentAt,
  });
}

export const signBody = (body: string, secret: string): string => `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;

function secretOf(o: WebhookOptions): string {
  if (o.secret) return o.secret;
  let secret = '';
  try {
    secret = fs.readFileSync(o.secretFile ?? '', 'utf8').trim();
  } catch {
    // said below, without the path
  }
  if (secret.length < 16) throw new Error('the webhook secretFile cannot be read or holds fewer than 16 characters');
  return secret;
}

/**
 * Built-in plugin 2: a signed HTTP callback when the job has finished (afterPublish, final status).
 * Temporal retries it with backoff for up to a day (a receiver that is down gets it later); a redirect or a 4xx
 * other than 408/429 means the receiver refuses it, and retrying stops.
 */
export const webhook = definePlugin<WebhookOptions>({
  name: 'webhook',
  defaultStage: 'afterPublish',
  options: webhookOptions,
  policy: { timeoutSeconds: 30, maxAttempts: 0, retryIntervalMs: 1000, maxRetryIntervalSeconds: 600, scheduleToCloseSeconds: 24 * 3600 },
  async run({ options, call, signal, timeoutSeconds, fetchPolicy }) {
    const body = webhookBody(call, Math.floor(Date.now() / 1000));
    let res;
    try {
      // through the SSRF guard like every fetch: a receiver on a private network must be allowed (C2D_ALLOWED_PRIVATE_HOSTS)
      res = await guardedRequest(options.url, {
        policy: fetchPolicy ?? STRICT_POLICY,
        method: 'POST',
        methods: ['POST'],
        ownHeaders: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          [SIGNATURE_HEADER]: signBody(body, secretOf(options)),
          'x-c2d-event': 'job.finished',
          'x-c2d-delivery': `${call.jobId}-${call.index}`,
        },
        body,
        maxRedirects: 0,
        signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, timeoutSeconds - 1) * 1000)]),
      });
    } catch (err) {
      if (err instanceof RefusedRequestError) throw new PluginRefusal(`the webhook URL is ${err.message}`);
      throw new Error(`the webhook receiver cannot be reached (${(err as { code?: string }).code ?? 'error'})`);
    }
    res.resume();
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return;
    if (status >= 300 && status < 400) throw new PluginRefusal(`the webhook receiver redirected the notification (HTTP ${status}); configure the final URL`);
    if (status >= 400 && status < 500 && status !== 408 && status !== 429)
      throw new PluginRefusal(`the webhook receiver refused the notification (HTTP ${status})`);
    throw new Error(`the webhook receiver answered HTTP ${status}`);
  },
});
