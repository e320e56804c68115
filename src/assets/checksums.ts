import { createHash } from 'node:crypto';
import type http from 'node:http';
import type { FileObject } from '../domain/ddo';
import type { ContainerSpec } from '../domain/job';
import { type FetchPolicy, guardedRequest, parseHttpUrl, RefusedRequestError, STRICT_POLICY } from '../net/guarded-fetch';

/** How much one file fetch may take; the defaults keep a hostile file server from holding the API. */
export interface FetchLimits {
  maxBytes: number;
  timeoutMs: number;
}

export const DEFAULT_FETCH_LIMITS: FetchLimits = { maxBytes: 256 * 1024 ** 2, timeoutMs: 30_000 };

/**
 * A file that could not be fetched. `reason` is safe to show a consumer: it never holds the URL, a
 * header or a host name. `transient` says whether trying again later may help (5xx, 429, network).
 */
export class FileFetchError extends Error {
  constructor(
    readonly reason: string,
    readonly transient: boolean,
    /** the guarded fetcher refused the URL (an address that is not public, a redirect rule, a method or header) */
    readonly refused = false,
  ) {
    super(reason);
    this.name = 'FileFetchError';
  }
}

export const sha256Hex = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** Ocean's `containerSectionChecksum`: sha256 hex of `entrypoint + container.checksum`. */
export const containerSectionChecksum = (container: Pick<ContainerSpec, 'entrypoint' | 'checksum'>): string =>
  sha256Hex(container.entrypoint + container.checksum);

/** Error codes only: Node's messages can name the host and port. */
function networkReason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return `connection failed (${typeof code === 'string' ? code : 'error'})`;
}

function parseUrl(raw: string): URL {
  try {
    return parseHttpUrl(raw);
  } catch (err) {
    throw fetchError(err);
  }
}

/** A guard refusal as a FileFetchError (permanent; its reason names the rule, never the URL). */
function fetchError(err: unknown): unknown {
  return err instanceof RefusedRequestError ? new FileFetchError(err.message, false, true) : err;
}

/**
 * Opens a file through the guarded fetcher (src/net/guarded-fetch.ts: public addresses only unless
 * the operator allowed one, every redirect checked, GET/HEAD and a few headers only). Resolves with a
 * 2xx response; everything else is a FileFetchError. The caller must consume or destroy the response.
 * `deadline` bounds the whole exchange including the body.
 */
async function open(url: URL, file: FileObject, method: string, deadline: AbortSignal, policy: FetchPolicy): Promise<http.IncomingMessage> {
  let res: http.IncomingMessage;
  try {
    res = await guardedRequest(url, { policy, method, headers: file.headers ?? {}, signal: deadline });
  } catch (err) {
    if (err instanceof RefusedRequestError) throw fetchError(err);
    throw deadline.aborted ? new FileFetchError('timed out', true) : new FileFetchError(networkReason(err), true);
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    res.resume();
    throw new FileFetchError(`HTTP ${status}`, status >= 500 || status === 429);
  }
  return res;
}

async function withDeadline<T>(limits: FetchLimits, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), limits.timeoutMs);
  try {
    return await run(controller.signal);
  } catch (err) {
    if (err instanceof FileFetchError) throw err;
    throw controller.signal.aborted ? new FileFetchError('timed out', true) : new FileFetchError(networkReason(err), true);
  } finally {
    clearTimeout(timer);
  }
}

/** sha256 hex of a file's content, downloaded over http(s) within `limits`. */
export function sha256OfFile(file: FileObject, limits: FetchLimits = DEFAULT_FETCH_LIMITS, policy: FetchPolicy = STRICT_POLICY): Promise<string> {
  return withDeadline(limits, async (signal) => {
    const res = await open(parseUrl(file.url), file, file.method || 'GET', signal, policy);
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > limits.maxBytes) {
        res.destroy();
        throw new FileFetchError('file exceeds the size limit', false);
      }
      hash.update(chunk);
    }
    return hash.digest('hex');
  });
}

export interface OpenedFile {
  stream: http.IncomingMessage;
  contentLength: number | null;
  contentType: string | null;
}

/**
 * Opens a file for streaming it on (the `download` route): `timeoutMs` bounds the wait for the
 * response's headers only, so a large body may take as long as it needs. `signal` aborts the transfer
 * (the client left). Failures are FileFetchErrors, whose reasons never hold the URL.
 */
export async function openFileStream(file: FileObject, opts: { timeoutMs: number; signal?: AbortSignal; policy?: FetchPolicy }): Promise<OpenedFile> {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  opts.signal?.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(abort, opts.timeoutMs);
  try {
    const res = await open(parseUrl(file.url), file, file.method || 'GET', controller.signal, opts.policy ?? STRICT_POLICY);
    return { stream: res, ...probeOf(res) };
  } catch (err) {
    opts.signal?.removeEventListener('abort', abort);
    if (err instanceof FileFetchError) throw err;
    throw controller.signal.aborted ? new FileFetchError('timed out', true) : new FileFetchError(networkReason(err), true);
  } finally {
    clearTimeout(timer);
  }
}

/** Ocean's `filesChecksum`: the sha256 hex of each file's content, concatenated in order. */
export async function filesChecksum(files: FileObject[], hashFile: (file: FileObject) => Promise<string> = (f) => sha256OfFile(f)): Promise<string> {
  let out = '';
  for (const file of files) out += await hashFile(file);
  return out;
}

export interface FileProbe {
  contentLength: number | null;
  contentType: string | null;
}

const probeOf = (res: http.IncomingMessage): FileProbe => {
  const raw = res.headers['content-length'];
  const length = Number(raw);
  return { contentLength: raw !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : null, contentType: res.headers['content-type'] ?? null };
};

/**
 * What a file server says about a file without downloading it: HEAD, then GET (only its headers are
 * read) where HEAD is refused or states no length, as some servers do.
 */
export function probeFile(file: FileObject, limits: FetchLimits = DEFAULT_FETCH_LIMITS, policy: FetchPolicy = STRICT_POLICY): Promise<FileProbe> {
  return withDeadline(limits, async (signal) => {
    const url = parseUrl(file.url);
    let head: FileProbe | null = null;
    try {
      const res = await open(url, file, 'HEAD', signal, policy);
      res.destroy();
      head = probeOf(res);
      if (head.contentLength !== null) return head;
    } catch (err) {
      if (!(err instanceof FileFetchError) || !/^HTTP (405|501)$/.test(err.reason)) throw err;
    }
    const res = await open(url, file, 'GET', signal, policy);
    res.destroy();
    const got = probeOf(res);
    return { contentLength: got.contentLength, contentType: got.contentType ?? head?.contentType ?? null };
  });
}
