import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { containerSectionChecksum, DEFAULT_FETCH_LIMITS, FileFetchError, filesChecksum, probeFile, sha256Hex, sha256OfFile } from '../../src/assets/checksums';
import type { FetchPolicy } from '../../src/net/guarded-fetch';
import type { FileObject } from '../../src/domain/ddo';

/** A real file server on loopback: plain files, a redirect, a slow one, an error, one refusing HEAD. */
describe('file checksums and probes over http', () => {
  let server: http.Server;
  let base: string;
  const seenHeaders: http.IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seenHeaders.push(req.headers);
      const url = req.url ?? '';
      if (url === '/a.txt') return void res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' }).end('alpha');
      if (url === '/b.bin') return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(Buffer.alloc(1000, 7));
      if (url === '/moved') return void res.writeHead(302, { location: '/a.txt' }).end();
      if (url === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
      if (url === '/ftp') return void res.writeHead(302, { location: 'ftp://elsewhere/x' }).end();
      if (url === '/broken') return void res.writeHead(503).end();
      if (url === '/slow') return void res.writeHead(200).write('x'); // never ends
      if (url === '/nohead') {
        if (req.method === 'HEAD') return void res.writeHead(405).end();
        return void res.writeHead(200, { 'content-type': 'text/csv', 'content-length': '3' }).end('a,b');
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  /** this server is on loopback: allowed explicitly, as an operator would (C2D_ALLOWED_PRIVATE_HOSTS) */
  const allowed = (): FetchPolicy => ({ allowedPrivateHosts: [new URL(base).host] });
  const hash = (f: FileObject, limits = DEFAULT_FETCH_LIMITS): Promise<string> => sha256OfFile(f, limits, allowed());

  const file = (name: string, extra: Partial<FileObject> = {}): FileObject => ({ type: 'url', url: `${base}/${name}`, method: 'GET', ...extra });

  const failure = async (p: Promise<unknown>): Promise<FileFetchError> => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FileFetchError);
    const f = err as FileFetchError;
    expect(f.message).not.toContain('127.0.0.1');
    expect(f.message).not.toContain(base);
    return f;
  };

  it('when files are hashed, then filesChecksum is the concatenated sha256 of each content', async () => {
    const sum = await filesChecksum([file('a.txt'), file('b.bin')], (f) => hash(f));
    expect(sum).toBe(sha256Hex('alpha') + sha256Hex(Buffer.alloc(1000, 7)));
  });

  it('when a file redirects, then its content after the redirect is hashed and its headers are sent', async () => {
    expect(await hash(file('moved', { headers: { 'x-api-key': 'secret' } }))).toBe(sha256Hex('alpha'));
    expect(seenHeaders.at(-1)?.['x-api-key']).toBe('secret');
  });

  it('when the container section is hashed, then it is sha256 of entrypoint + checksum', () => {
    expect(containerSectionChecksum({ entrypoint: 'node $ALGO', checksum: 'sha256:ab' })).toBe(sha256Hex('node $ALGOsha256:ab'));
  });

  it.each([
    ['a missing file', 'nope', 'HTTP 404', false],
    ['a failing server', 'broken', 'HTTP 503', true],
    ['a redirect loop', 'loop', 'too many redirects', false],
    ['a redirect to another scheme', 'ftp', 'unsupported URL scheme (only http and https)', false],
  ])('when %s is hashed, then the error says why without the URL', async (_name, name, reason, transient) => {
    const err = await failure(hash(file(name)));
    expect(err.reason).toBe(reason);
    expect(err.transient).toBe(transient);
  });

  it('when a file is bigger than the cap, then hashing stops with a size error', async () => {
    const err = await failure(hash(file('b.bin'), { maxBytes: 100, timeoutMs: 5_000 }));
    expect(err.reason).toBe('file exceeds the size limit');
  });

  it('when a file never finishes, then hashing gives up at the timeout', async () => {
    const t = Date.now();
    const err = await failure(hash(file('slow'), { maxBytes: 1e6, timeoutMs: 300 }));
    expect(err.reason).toBe('timed out');
    expect(Date.now() - t).toBeLessThan(3_000);
  });

  it('when nothing listens, then the error is a transient connection failure', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    const err = await failure(
      sha256OfFile({ type: 'url', url: `http://127.0.0.1:${port}/x`, method: 'GET' }, DEFAULT_FETCH_LIMITS, { allowedPrivateHosts: [`127.0.0.1:${port}`] }),
    );
    expect(err.reason).toBe('connection failed (ECONNREFUSED)');
    expect(err.transient).toBe(true);
  });

  it('when a file is probed, then length and type come from HEAD, or from GET where HEAD is refused', async () => {
    expect(await probeFile(file('a.txt'), DEFAULT_FETCH_LIMITS, allowed())).toEqual({ contentLength: 5, contentType: 'text/plain' });
    expect(await probeFile(file('nohead'), DEFAULT_FETCH_LIMITS, allowed())).toEqual({ contentLength: 3, contentType: 'text/csv' });
    expect((await failure(probeFile(file('nope'), DEFAULT_FETCH_LIMITS, allowed()))).reason).toBe('HTTP 404');
  });

  it.each([
    ['hashed', (f: FileObject) => sha256OfFile(f)],
    ['probed', (f: FileObject) => probeFile(f)],
  ])('when a file on loopback is %s without being allowed, then the guard refuses it and the server sees nothing', async (_how, fetchIt) => {
    const before = seenHeaders.length;
    const err = await failure(fetchIt(file('a.txt')));
    expect(err.reason).toBe('refused: loopback address (allow it in C2D_ALLOWED_PRIVATE_HOSTS)');
    expect(err).toMatchObject({ transient: false, refused: true });
    expect(seenHeaders.length).toBe(before);
  });

  it('when a file sets a header outside the allow-list, then it is refused before anything is sent', async () => {
    const before = seenHeaders.length;
    const err = await failure(hash(file('a.txt', { headers: { Host: 'metadata.internal' } })));
    expect(err.reason).toMatch(/^refused: header "host" is not allowed/);
    expect(seenHeaders.length).toBe(before);
  });
});
