import { setTimeout as delay } from 'node:timers/promises';
import { getBytes, keccak256, toUtf8Bytes, type Wallet } from 'ethers';
import type { EnvironmentView } from '../api/routes/info';
import type { JobView } from '../domain/job';
import { finalStatuses } from '../domain/status';

/** An HTTP error from the provider, with its status and body (Ocean's error shapes). */
export class ProviderHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    route: string,
  ) {
    super(`${route} answered ${status}: ${body}`);
    this.name = 'ProviderHttpError';
  }
}

export interface StartJobRequest {
  environment: string;
  dataset: { documentId: string; serviceId: string; transferTxId?: string; userdata?: Record<string, unknown> };
  algorithm:
    | { documentId: string; serviceId: string; transferTxId?: string; algocustomdata?: Record<string, unknown> }
    | { meta: { rawcode?: string; url?: string; container: { entrypoint: string; image: string; tag: string; checksum: string } } };
  additionalDatasets?: StartJobRequest['dataset'][];
}

/** An environment as `computeEnvironments` shows it (the API's schema; its `consumerAddress` is the environment's own wallet: consumers order datatokens for it). */
export type { EnvironmentView };

/**
 * A consumer of the Provider API, speaking the wire contract as Ocean's client does: nonce before each
 * signed call, keccak256 of the message signed as 32 bytes (EIP-191). Used by the demo, benchmarks and tests.
 */
export class ProviderClient {
  constructor(
    readonly baseUrl: string,
    readonly wallet: Wallet,
  ) {}

  get address(): string {
    return this.wallet.address;
  }

  async request(method: string, route: string, body?: unknown): Promise<Response> {
    return fetch(`${this.baseUrl}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  private async json<T>(res: Response, route: string): Promise<T> {
    if (!res.ok) throw new ProviderHttpError(res.status, await res.text(), route);
    return (await res.json()) as T;
  }

  /** Signs `parts.join('') + nonce` with the next nonce. */
  async sign(...parts: string[]): Promise<{ nonce: string; signature: string }> {
    const route = `/api/services/nonce?userAddress=${this.address}`;
    const { nonce } = await this.json<{ nonce: string | number | null }>(await this.request('GET', route), route);
    const next = String(Number(nonce ?? 0) + 1);
    const signature = await this.wallet.signMessage(getBytes(keccak256(toUtf8Bytes(parts.join('') + next))));
    return { nonce: next, signature };
  }

  async environments(): Promise<EnvironmentView[]> {
    const route = '/api/services/computeEnvironments';
    return Object.values(await this.json<Record<string, EnvironmentView[]>>(await this.request('GET', route), route)).flat();
  }

  /**
   * Encrypts file locations for this provider (what a publisher puts in a DDO's `services[].files`),
   * bound to the asset they belong to: the provider decrypts them for that asset and service only.
   */
  async encryptFiles(
    files: { url: string; method?: string }[],
    chainId: number,
    binding: { did: string; serviceId: string } | { nftAddress: string; datatokenAddress: string },
  ): Promise<string> {
    const route = `/api/services/encrypt?chainId=${chainId}`;
    const res = await fetch(`${this.baseUrl}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: JSON.stringify({ ...binding, files: files.map((f) => ({ type: 'url', method: 'GET', ...f })) }),
    });
    if (res.status !== 201) throw new ProviderHttpError(res.status, await res.text(), route);
    return res.text();
  }

  async startJob(req: StartJobRequest): Promise<JobView> {
    const auth = await this.sign(this.address, req.dataset.documentId);
    const route = '/api/services/compute';
    const [job] = await this.json<JobView[]>(await this.request('POST', route, { consumerAddress: this.address, ...auth, ...req }), route);
    if (!job) throw new Error('the provider answered an empty job list');
    return job;
  }

  async job(jobId: string): Promise<JobView | undefined> {
    const route = `/api/services/compute?consumerAddress=${this.address}&jobId=${jobId}`;
    const [job] = await this.json<JobView[]>(await this.request('GET', route), route);
    return job;
  }

  async stopJob(jobId: string): Promise<JobView | undefined> {
    const auth = await this.sign(this.address, jobId, '');
    const route = '/api/services/compute';
    const [job] = await this.json<JobView[]>(await this.request('PUT', route, { consumerAddress: this.address, jobId, ...auth }), route);
    return job;
  }

  async deleteJob(jobId: string): Promise<void> {
    const auth = await this.sign(this.address, jobId, '');
    const route = '/api/services/compute';
    const res = await this.request('DELETE', `${route}?consumerAddress=${this.address}&jobId=${jobId}&signature=${auth.signature}&nonce=${auth.nonce}`);
    if (!res.ok) throw new ProviderHttpError(res.status, await res.text(), route);
  }

  /** The response of computeResult for the result at `index` (the caller reads the body). */
  async result(jobId: string, index: number, headers: Record<string, string> = {}): Promise<Response> {
    const { nonce, signature } = await this.sign(this.address, jobId, String(index));
    return fetch(
      `${this.baseUrl}/api/services/computeResult?consumerAddress=${this.address}&jobId=${jobId}&index=${index}&nonce=${nonce}&signature=${signature}`,
      { headers },
    );
  }

  /** The algorithm's log: live while it runs, then the stored one. */
  async logs(jobId: string): Promise<Response> {
    const { nonce, signature } = await this.sign(this.address, jobId);
    return fetch(`${this.baseUrl}/api/services/computeLogs?consumerAddress=${this.address}&jobId=${jobId}&nonce=${nonce}&signature=${signature}`);
  }

  /** Follows the job until a final status, calling onChange for each status seen. */
  async waitForJob(jobId: string, opts: { timeoutMs?: number; intervalMs?: number; onChange?: (job: JobView) => void } = {}): Promise<JobView> {
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    let last = -1;
    for (;;) {
      const job = await this.job(jobId);
      if (!job) throw new Error(`job ${jobId} is not visible to ${this.address}`);
      if (job.status !== last) {
        last = job.status;
        opts.onChange?.(job);
      }
      if (isFinal(job)) return job;
      if (Date.now() > deadline) throw new Error(`job ${jobId} still in status ${job.status} after ${opts.timeoutMs ?? 120_000} ms`);
      await delay(opts.intervalMs ?? 100);
    }
  }
}

export const isFinal = (job: Pick<JobView, 'status'>): boolean => finalStatuses.includes(job.status);
