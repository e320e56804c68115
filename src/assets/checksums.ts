import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { FileObject } from '../domain/ddo';
import type { ContainerSpec } from '../domain/job';

/** How much one file fetch may take; the defaults keep a hostile file server from holding the API. */
export interface FetchLimits {
  maxBytes: number;
  timeoutMs: number;
}

export const DEFAULT_FETCH_LIMITS: FetchLimits = { maxBytes: 256 * 1024 ** 2, timeoutMs: 30_000 };

const MAX_REDIRECTS = 5;

/**
 * A file that could not be fetched. `reason` is safe to show a consumer: it never holds the URL, a
 * header or a host name. `transient` says whether trying again later may help (5xx, 429, network).
 */
export class FileFetchError extends Error {
  constructor(
    readonly reason: string,
    readonly transient: boolean,
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
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FileFetchError('invalid URL', false);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FileFetchError('unsupported URL scheme (only http and https)', false);
  return url;
}

/**
 * Opens a file with node:http(s) (not fetch: its errors and redirects are harder to keep URL-free),
 * following redirects. Resolves with a 2xx response; everything else is a FileFetchError. The caller
 * must consume or destroy the response. `deadline` bounds the whole exchange including the body.
 */
function open(url: URL, file: FileObject, method: string, deadline: AbortSignal, redirects = 0): Promise<http.IncomingMessage> {
  const send = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers: file.headers ?? {}, signal: deadline }, (res) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status >= 300 && status < 400 && location) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) return reject(new FileFetchError('too many redirects', false));
        let next: URL;
        try {
          next = parseUrl(new URL(location, url).toString());
        } catch (err) {
          return reject(err instanceof FileFetchError ? err : new FileFetchError('invalid redirect', false));
        }
        return resolve(open(next, file, method, deadline, redirects + 1));
      }
      if (status < 200 || status >= 300) {
        res.resume();
        return reject(new FileFetchError(`HTTP ${status}`, status >= 500 || status === 429));
      }
      resolve(res);
    });
    req.on('error', (err) => reject(deadline.aborted ? new FileFetchError('timed out', true) : new FileFetchError(networkReason(err), true)));
    req.end();
  });
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
export function sha256OfFile(file: FileObject, limits: FetchLimits = DEFAULT_FETCH_LIMITS): Promise<string> {
  return withDeadline(limits, async (signal) => {
    const res = await open(parseUrl(file.url), file, file.method || 'GET', signal);
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
export async function openFileStream(file: FileObject, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<OpenedFile> {
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  opts.signal?.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(abort, opts.timeoutMs);
  try {
    const res = await open(parseUrl(file.url), file, file.method || 'GET', controller.signal);
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
export function probeFile(file: FileObject, limits: FetchLimits = DEFAULT_FETCH_LIMITS): Promise<FileProbe> {
  return withDeadline(limits, async (signal) => {
    const url = parseUrl(file.url);
    let head: FileProbe | null = null;
    try {
      const res = await open(url, file, 'HEAD', signal);
      res.destroy();
      head = probeOf(res);
      if (head.contentLength !== null) return head;
    } catch (err) {
      if (!(err instanceof FileFetchError) || !/^HTTP (405|501)$/.test(err.reason)) throw err;
    }
    const res = await open(url, file, 'GET', signal);
    res.destroy();
    const got = probeOf(res);
    return { contentLength: got.contentLength, contentType: got.contentType ?? head?.contentType ?? null };
  });
}
