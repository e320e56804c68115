import { createHash } from 'node:crypto';
import { type BaseWallet, getBytes, keccak256, toUtf8Bytes } from 'ethers';
import type { Ddo, DdoService, FileObject } from '../domain/ddo';
import type { RemoteFileSource } from './authorize';
import { type FetchPolicy, guardedRequest, STRICT_POLICY } from '../net/guarded-fetch';
import { DEFAULT_FETCH_LIMITS, type FetchLimits, FileFetchError, openFileStream } from './checksums';

const DOWNLOAD_PATH = '/api/services/download';
const NONCE_PATH = '/api/services/nonce';
/** attempts per file when the other provider refuses our nonce (another job of ours signed a later one first) */
const NONCE_ATTEMPTS = 4;

/**
 * Public (`access`) algorithms held by another provider, fetched through its `download` endpoint as a
 * consumer would: signed (documentId + nonce) with this provider's key, whose address is the
 * `consumerAddress` of our environments, the address consumers order the algorithm for. Nonces are
 * millisecond timestamps (above what the other provider stored, and above our last one), so the jobs
 * of several workers signing for the same provider rarely collide; a refused nonce is retried with a
 * fresh one. Signed URLs are secrets: they only go to the configuration step's secret spec.
 */
export class RemoteProviderFiles implements RemoteFileSource {
  private lastNonce = 0;

  constructor(
    private readonly wallet: BaseWallet,
    private readonly limits: FetchLimits = DEFAULT_FETCH_LIMITS,
    /** the service endpoint comes from a DDO: it is fetched through the guard like any file */
    private readonly policy: FetchPolicy = STRICT_POLICY,
  ) {}

  async signedFile(ddo: Ddo, service: DdoService, transferTxId: string | undefined, fileIndex: number): Promise<FileObject> {
    const base = baseUrl(service);
    const nonce = await this.nextNonce(base);
    const signature = await this.wallet.signMessage(getBytes(keccak256(toUtf8Bytes(ddo.id + nonce))));
    const url = new URL(base + DOWNLOAD_PATH);
    url.searchParams.set('documentId', ddo.id);
    url.searchParams.set('serviceId', service.id);
    if (transferTxId) url.searchParams.set('transferTxId', transferTxId);
    url.searchParams.set('fileIndex', String(fileIndex));
    url.searchParams.set('consumerAddress', this.wallet.address);
    url.searchParams.set('nonce', nonce);
    url.searchParams.set('signature', signature);
    return { type: 'url', url: url.toString(), method: 'GET' };
  }

  async filesChecksum(ddo: Ddo, service: DdoService, transferTxId: string | undefined): Promise<string> {
    let out = '';
    let count = 1;
    for (let index = 0; index < count; index++) {
      const hash = createHash('sha256');
      const { fileCount } = await this.read(ddo, service, transferTxId, index, this.limits.maxBytes, (chunk) => hash.update(chunk));
      out += hash.digest('hex');
      count = fileCount;
    }
    return out;
  }

  async fetchFile(ddo: Ddo, service: DdoService, transferTxId: string | undefined, fileIndex: number, maxBytes: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    await this.read(ddo, service, transferTxId, fileIndex, Math.min(maxBytes, this.limits.maxBytes), (chunk) => chunks.push(chunk));
    return Buffer.concat(chunks);
  }

  /** Reads one file through the remote provider's download, with a fresh nonce per attempt (a refused nonce is retried). */
  private async read(
    ddo: Ddo,
    service: DdoService,
    transferTxId: string | undefined,
    index: number,
    maxBytes: number,
    onChunk: (chunk: Buffer) => void,
  ): Promise<{ fileCount: number }> {
    for (let attempt = 1; ; attempt++) {
      const file = await this.signedFile(ddo, service, transferTxId, index);
      try {
        const opened = await openFileStream(file, { timeoutMs: this.limits.timeoutMs, policy: this.policy });
        const fileCount = Number(opened.stream.headers['x-file-count'] ?? '1');
        let size = 0;
        for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
          size += chunk.byteLength;
          if (size > maxBytes) {
            opened.stream.destroy();
            throw new FileFetchError('file exceeds the size limit', false);
          }
          onChunk(chunk);
        }
        return { fileCount: Number.isSafeInteger(fileCount) && fileCount > 0 ? fileCount : 1 };
      } catch (err) {
        if (err instanceof FileFetchError && err.reason === 'HTTP 401' && attempt < NONCE_ATTEMPTS) continue;
        throw err;
      }
    }
  }

  /** Above the other provider's stored nonce for us and above our own last one; a millisecond timestamp when that is higher. */
  private async nextNonce(base: string): Promise<string> {
    let stored = 0;
    try {
      const res = await guardedRequest(`${base}${NONCE_PATH}?userAddress=${this.wallet.address}`, {
        policy: this.policy,
        signal: AbortSignal.timeout(this.limits.timeoutMs),
      });
      let text = '';
      for await (const chunk of res as AsyncIterable<Buffer>) {
        text += chunk.toString('utf8');
        if (text.length > 4096) break;
      }
      res.destroy();
      if (res.statusCode === 200) {
        const n = Number((JSON.parse(text) as { nonce?: unknown }).nonce);
        if (Number.isFinite(n)) stored = Math.floor(n);
      }
    } catch {
      // the download itself reports an unreachable (or refused) provider; a timestamp nonce is still likely right
    }
    const nonce = Math.max(Date.now(), stored + 1, this.lastNonce + 1);
    this.lastNonce = nonce;
    return String(nonce);
  }
}

function baseUrl(service: DdoService): string {
  const endpoint = service.serviceEndpoint;
  if (!endpoint) throw new FileFetchError('the service names no serviceEndpoint', false);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new FileFetchError('the service endpoint is not a URL', false);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FileFetchError('the service endpoint is not http(s)', false);
  return url.toString().replace(/\/+$/, '');
}
