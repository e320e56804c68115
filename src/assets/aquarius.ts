import { type Ddo, ddoSchema } from '../domain/ddo';
import { UnavailableError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { AssetResolver } from './resolver';

export interface AquariusResolverOptions {
  /** base URL: Ocean's Aquarius, or another provider of ours (it serves the same path) */
  url: string;
  logger: Logger;
  /** per lookup; a slower answer counts as an outage (default 10 s) */
  timeoutMs?: number;
}

/** Aquarius' path for one DDO (`GET <url>/api/aquarius/assets/ddo/<did>`). */
const DDO_PATH = '/api/aquarius/assets/ddo/';

/**
 * DDOs from an Aquarius-compatible metadata cache, for operators who run Ocean's (the last resolver of
 * the chain). 404 means the cache does not know the asset (null: unknown asset). A timeout, a refused
 * connection, 408, 429 or a 5xx is an outage: UnavailableError, so a job waits and retries instead of
 * failing for good. What comes back is checked like a catalog file; a DDO that is not valid, or that
 * names another DID, counts as unknown.
 */
export class AquariusResolver implements AssetResolver {
  private readonly base: string;

  constructor(private readonly opts: AquariusResolverOptions) {
    this.base = opts.url.replace(/\/+$/, '');
  }

  async resolve(did: string): Promise<Ddo | null> {
    if (!/^did:op:[0-9a-zA-Z]+$/.test(did)) return null;
    let response: Response;
    try {
      response = await fetch(`${this.base}${DDO_PATH}${encodeURIComponent(did)}`, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      this.opts.logger.warn({ did, error: (err as Error).name }, 'aquarius unreachable');
      throw new UnavailableError('aquarius_unavailable', 'the Aquarius metadata cache cannot be reached', { cause: err });
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    if (response.status === 408 || response.status === 429 || response.status >= 500) {
      await response.body?.cancel();
      this.opts.logger.warn({ did, status: response.status }, 'aquarius failing');
      throw new UnavailableError('aquarius_unavailable', `the Aquarius metadata cache answered ${response.status}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      this.opts.logger.warn({ did, status: response.status }, 'aquarius refused the lookup; asset treated as unknown');
      return null;
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch (err) {
      // a proxy's error page, or a connection cut mid-body: try again later
      throw new UnavailableError('aquarius_unavailable', 'the Aquarius metadata cache answered something that is not JSON', { cause: err });
    }
    const parsed = ddoSchema.safeParse(json);
    if (!parsed.success || parsed.data.id.toLowerCase() !== did.toLowerCase()) {
      this.opts.logger.warn(
        { did, fields: parsed.success ? ['id'] : parsed.error.issues.map((i) => i.path.join('.')) },
        'aquarius DDO skipped: not a valid DDO for this DID',
      );
      return null;
    }
    return parsed.data;
  }
}
