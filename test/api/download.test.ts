import type { AddressInfo } from 'node:net';
import { ethers as ethers5 } from 'ethers-v5';
import request from 'supertest';
import type * as OceanLib from '../../node_modules/@oceanprotocol/lib/dist/src/index';
import { buildCatalogDdo, writeCatalogDdo } from '../../tools/catalog/publish';
import { serveFiles } from '../../tools/local-stack';
import { nodeContainer, publishCatalogAsset, signRequest } from '../helpers/api';
import { type ApiHarness, apiHarness, expectNoSecretLeaked, randomWallet } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- the lib's package entry has no types of its own
const { ProviderInstance, downloadFile } = require('@oceanprotocol/lib') as typeof OceanLib;

const DOWNLOAD = '/api/services/download';
const ALGORITHM_CODE = 'console.log("public algorithm");\n';
const SECOND_FILE = 'helper file\n';

describe('API: download (access services only)', () => {
  let h: ApiHarness;
  let files: Awaited<ReturnType<typeof serveFiles>>;
  let publicDid: string;

  beforeEach(async () => {
    h = await apiHarness();
    files = await serveFiles({ 'algo-7d1e.js': ALGORITHM_CODE, 'helper-7d1e.txt': SECOND_FILE });
    h.allow(files.host);
    publicDid = await publishCatalogAsset(h.catalogDir, h.provider, {
      type: 'algorithm',
      serviceId: 'access',
      serviceType: 'access',
      urls: [files.url('algo-7d1e.js'), files.url('helper-7d1e.txt')],
      allow: [h.consumer.address],
      deny: [h.other.address],
      container: nodeContainer,
    });
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    const said = h.bodies.join('\n') + JSON.stringify(h.logger.entries);
    expect(said).not.toContain(files.url(''));
    expect(said).not.toContain('algo-7d1e');
    files.close();
    h.cleanup();
  });

  /** What Ocean's client (getDownloadUrl) sends: documentId + nonce signed by the consumer. */
  const query = async (wallet = h.consumer, over: Record<string, string> = {}) => {
    const nonce = over.nonce ?? (await h.nextNonce(wallet));
    const documentId = over.documentId ?? publicDid;
    return {
      documentId,
      serviceId: 'access',
      fileIndex: '0',
      consumerAddress: wallet.address,
      nonce,
      signature: await signRequest(wallet, [documentId], nonce),
      ...over,
    };
  };

  it('when the root document is read, then it names the download endpoint, and HEAD on it is refused', async () => {
    const root = await request(h.app).get('/').expect(200);
    expect(root.body.serviceEndpoints.download).toEqual(['GET', DOWNLOAD]);
    await request(h.app).head(DOWNLOAD).expect(405);
  });

  it('when an allowed consumer signs documentId + nonce for an access service, then each file streams through the provider, named by index, never by location', async () => {
    const first = await request(h.app)
      .get(DOWNLOAD)
      .query(await query())
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      })
      .expect(200);
    expect((first.body as Buffer).toString()).toBe(ALGORITHM_CODE);
    expect(first.headers['content-disposition']).toBe('attachment;filename=file0');
    expect(first.headers['x-file-count']).toBe('2');
    const second = await request(h.app)
      .get(DOWNLOAD)
      .query(await query(h.consumer, { fileIndex: '1' }))
      .buffer(true)
      .parse((res, cb) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => cb(null, text));
      })
      .expect(200);
    expect(second.body).toBe(SECOND_FILE);
    expect(files.hits).toEqual(['algo-7d1e.js', 'helper-7d1e.txt']);
  });

  it("when Ocean's client (3.3.0) builds the download URL and downloads it, then it gets the file and its name as Ocean's downloadFile reads it", async () => {
    const server = h.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      // the client asks its signer for the chain id before signing: a provider that knows it and is never called
      const signer = new ethers5.Wallet(
        h.consumer.privateKey,
        new ethers5.providers.StaticJsonRpcProvider('http://127.0.0.1:9', { chainId: 8996, name: 'test' }),
      );
      const url = await ProviderInstance.getDownloadUrl(publicDid, 'access', 1, '', base, signer);
      const got = await downloadFile(url, 1);
      expect(Buffer.from(got.data).toString()).toBe(SECOND_FILE);
      expect(got.filename).toBe('file1');
    } finally {
      server.close();
    }
  });

  it('when the parameters come in a JSON body, then they are read from there', async () => {
    const res = await request(h.app)
      .get(DOWNLOAD)
      .send(await query())
      .expect(200);
    expect(res.headers['x-file-count']).toBe('2');
  });

  type Case = [name: string, make: () => Promise<Record<string, string>>, status: number, body: unknown];
  const refusals: Case[] = [
    [
      "the signature is not the consumer's",
      async () => ({ ...(await query()), signature: await signRequest(randomWallet(), [publicDid], '999') }),
      401,
      { error: expect.stringMatching(/signature/i) },
    ],
    [
      'the signature covers another document',
      async () => {
        const q = await query();
        return { ...q, signature: await signRequest(h.consumer, [h.datasetDid], q.nonce) };
      },
      401,
      { error: expect.stringMatching(/signature/i) },
    ],
    ['the DID is unknown', async () => query(h.consumer, { documentId: `did:op:${'ab'.repeat(32)}` }), 404, { error: expect.stringContaining('not found') }],
    [
      'the service id is not in the DDO',
      async () => query(h.consumer, { serviceId: 'nope' }),
      404,
      { error: expect.stringContaining('service nope not found') },
    ],
    [
      'the service is a compute service (a dataset)',
      async () => query(h.consumer, { documentId: h.datasetDid, serviceId: 'compute' }),
      400,
      { error: { download: 'compute_service_not_downloadable' } },
    ],
    [
      'the service is a private (compute) algorithm',
      async () => query(h.consumer, { documentId: h.algorithmDid, serviceId: 'compute' }),
      400,
      { error: { download: 'compute_service_not_downloadable' } },
    ],
    ['the consumer is in the deny-list', async () => query(h.other), 400, { error: { download: 'consumer_not_allowed' } }],
    ['the consumer is not in the allow-list', async () => query(randomWallet()), 400, { error: { download: 'consumer_not_allowed' } }],
    ['the file index is past the last file', async () => query(h.consumer, { fileIndex: '2' }), 404, { error: expect.stringContaining('has 2 file(s)') }],
  ];
  it.each(refusals)('when %s, then the download is refused with a clear 4xx and the file server is never asked', async (_name, make, status, body) => {
    const res = await request(h.app)
      .get(DOWNLOAD)
      .query(await make())
      .expect(status);
    expect(res.body).toEqual(body);
    expect(files.hits).toEqual([]);
  });

  it('when a nonce is used a second time, then the second download is refused (401) and only the first reached the file server', async () => {
    const q = await query();
    await request(h.app).get(DOWNLOAD).query(q).expect(200);
    const again = await request(h.app).get(DOWNLOAD).query(q).expect(401);
    expect(again.body.error).toMatch(/nonce/i);
    expect(files.hits).toHaveLength(1);
  });

  it('when the asset is not consumable (state 1), then 400 asset_not_consumable', async () => {
    const did = await publishCatalogAsset(h.catalogDir, h.provider, {
      type: 'algorithm',
      serviceId: 'access',
      serviceType: 'access',
      urls: [files.url('algo-7d1e.js')],
      allow: [h.consumer.address],
      container: nodeContainer,
      state: 1,
    });
    const res = await request(h.app)
      .get(DOWNLOAD)
      .query(await query(h.consumer, { documentId: did }))
      .expect(400);
    expect(res.body).toEqual({ error: { download: 'asset_not_consumable' } });
  });

  it('when an on-chain asset (with a datatoken) is asked for without an order, then 400 order_not_found', async () => {
    const ddo = buildCatalogDdo(h.provider.signingKey.publicKey, {
      type: 'algorithm',
      serviceId: 'access',
      serviceType: 'access',
      urls: [files.url('algo-7d1e.js')],
      allow: [h.consumer.address],
      container: nodeContainer,
    });
    ddo.services[0]!.datatokenAddress = '0x' + '12'.repeat(20);
    await writeCatalogDdo(h.catalogDir, ddo);
    const res = await request(h.app)
      .get(DOWNLOAD)
      .query(await query(h.consumer, { documentId: ddo.id }))
      .expect(400);
    expect(res.body).toEqual({ error: { download: 'order_not_found' } });
    expect(files.hits).toEqual([]);
  });

  it('when the file server answers 404, then 503 saying so, without its location', async () => {
    const did = await publishCatalogAsset(h.catalogDir, h.provider, {
      type: 'algorithm',
      serviceId: 'access',
      serviceType: 'access',
      urls: [files.url('gone-7d1e.js')],
      allow: [h.consumer.address],
      container: nodeContainer,
    });
    const res = await request(h.app)
      .get(DOWNLOAD)
      .query(await query(h.consumer, { documentId: did }))
      .expect(503);
    expect(res.body.error).toContain('HTTP 404');
  });
});
