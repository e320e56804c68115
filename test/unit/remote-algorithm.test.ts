import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Wallet } from 'ethers';
import { remoteAlgorithm } from '../../src/activities';
import type { AuthorizedJob } from '../../src/assets/authorize';
import { DEFAULT_FETCH_LIMITS } from '../../src/assets/checksums';
import { RemoteProviderFiles } from '../../src/assets/remote';
import { recoverSigner } from '../../src/api/auth';
import type { Ddo, DdoService } from '../../src/domain/ddo';

const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');
const DID = `did:op:${'c'.repeat(64)}`;

/** Stands for provider A: a nonce endpoint and a download that checks the signature and can refuse nonces. */
async function providerA(files: Buffer[], opts: { refuseFirst?: number } = {}) {
  let stored = 0;
  let refusals = opts.refuseFirst ?? 0;
  const downloads: { fileIndex: number; nonce: string; ok: boolean }[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/api/services/nonce') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ nonce: stored }));
    if (url.pathname !== '/api/services/download') return void res.writeHead(404).end();
    const q = Object.fromEntries(url.searchParams);
    const nonce = q.nonce!;
    const signer = recoverSigner(q.documentId! + nonce, q.signature!);
    const fileIndex = Number(q.fileIndex);
    const fresh = Number(nonce) > stored && refusals-- <= 0;
    const ok = signer?.toLowerCase() === q.consumerAddress!.toLowerCase() && fresh && q.transferTxId === '0xorder';
    downloads.push({ fileIndex, nonce, ok });
    if (!ok) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"Invalid nonce"}');
    stored = Number(nonce);
    res.writeHead(200, { 'x-file-count': String(files.length) }).end(files[fileIndex]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ddo = { id: DID } as Ddo;
  const service = { id: 'access', type: 'access', serviceEndpoint: `${base}/` } as DdoService;
  return { downloads, ddo, service, host: new URL(base).host, close: () => server.close() };
}

describe('fetching a public algorithm through the provider that holds it', () => {
  const wallet = new Wallet(Wallet.createRandom().privateKey);
  /** provider A is on loopback: allowed explicitly, as an operator would (C2D_ALLOWED_PRIVATE_HOSTS) */
  const remoteOf = (a: { host: string }): RemoteProviderFiles => new RemoteProviderFiles(wallet, DEFAULT_FETCH_LIMITS, { allowedPrivateHosts: [a.host] });

  it("when the service's serviceEndpoint is on loopback and not allowed, then nothing is fetched: the refusal names the rule, not the URL", async () => {
    const a = await providerA([Buffer.from('code')]);
    try {
      const err = await new RemoteProviderFiles(wallet).fetchFile(a.ddo, a.service, '0xorder', 0, 1024).catch((e: unknown) => e);
      expect(err).toMatchObject({
        name: 'FileFetchError',
        reason: 'refused: loopback address (allow it in C2D_ALLOWED_PRIVATE_HOSTS)',
        refused: true,
        transient: false,
      });
      expect(a.downloads).toEqual([]);
    } finally {
      a.close();
    }
  });

  it('when the service has two files, then filesChecksum fetches each (signed documentId + nonce, increasing nonces) and concatenates their hashes', async () => {
    const a = await providerA([Buffer.from('one'), Buffer.from('two')]);
    try {
      const got = await remoteOf(a).filesChecksum(a.ddo, a.service, '0xorder');
      expect(got).toBe(sha('one') + sha('two'));
      expect(a.downloads.map((d) => [d.fileIndex, d.ok])).toEqual([
        [0, true],
        [1, true],
      ]);
      expect(Number(a.downloads[1]!.nonce)).toBeGreaterThan(Number(a.downloads[0]!.nonce));
      expect(Number(a.downloads[0]!.nonce)).toBeGreaterThan(Date.now() - 60_000); // a millisecond timestamp
    } finally {
      a.close();
    }
  });

  it('when the provider refuses a nonce (another download of ours came first), then the download is retried with a fresh one', async () => {
    const a = await providerA([Buffer.from('code')], { refuseFirst: 2 });
    try {
      expect((await remoteOf(a).fetchFile(a.ddo, a.service, '0xorder', 0, 1024)).toString()).toBe('code');
      expect(a.downloads.map((d) => d.ok)).toEqual([false, false, true]);
    } finally {
      a.close();
    }
  });

  it('when the provider keeps refusing, then the refusal is reported as HTTP 401, never with the URL', async () => {
    const a = await providerA([Buffer.from('code')], { refuseFirst: 100 });
    try {
      const err = await remoteOf(a)
        .fetchFile(a.ddo, a.service, '0xorder', 0, 1024)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'FileFetchError', reason: 'HTTP 401' });
      expect(String((err as Error).message)).not.toContain('127.0.0.1');
    } finally {
      a.close();
    }
  });

  describe('what the configuration step gets', () => {
    const algorithmOf = (a: Awaited<ReturnType<typeof providerA>>, filesChecksum?: string) =>
      ({
        kind: 'published',
        did: DID,
        ddo: a.ddo,
        service: a.service,
        serviceIndex: 0,
        container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: 'sha256:0' },
        remote: true,
        ...(filesChecksum ? { filesChecksum } : {}),
      }) as Extract<AuthorizedJob['algorithm'], { kind: 'published' }>;

    it('when the file is the text that was checked, then it is handed over as code (no signed URL to go stale)', async () => {
      const a = await providerA([Buffer.from("console.log('ok')")]);
      try {
        expect(await remoteAlgorithm(remoteOf(a), algorithmOf(a, sha("console.log('ok')")), '0xorder')).toEqual({
          rawcode: "console.log('ok')",
        });
      } finally {
        a.close();
      }
    });

    it('when the provider now hands out another file than the one just checked, then algorithm_file_checksum_mismatch', async () => {
      const a = await providerA([Buffer.from('swapped after the check')]);
      try {
        const err = await remoteAlgorithm(remoteOf(a), algorithmOf(a, sha('what was checked')), '0xorder').catch((e: unknown) => e);
        expect(err).toMatchObject({ resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' });
      } finally {
        a.close();
      }
    });

    it('when the file is binary, then it goes as a download signed now, carrying the checksum of what was fetched', async () => {
      const binary = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x81]);
      const a = await providerA([binary]);
      try {
        const got = await remoteAlgorithm(remoteOf(a), algorithmOf(a), '0xorder');
        expect(got).toEqual({ files: [{ type: 'url', method: 'GET', url: expect.stringContaining('/api/services/download?'), checksum: sha(binary) }] });
      } finally {
        a.close();
      }
    });
  });
});
