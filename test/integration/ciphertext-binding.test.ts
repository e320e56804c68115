import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ProviderClient } from '../../src/client/provider-client';
import { main as cli } from '../../src/entrypoints/cli';
import { writeContractsFile } from '../../tools/chain/deploy';
import { setDdoOnChain } from '../../tools/chain/publish';
import { publishToCatalog } from '../../tools/catalog/catalog-publisher';
import { encryptFiles, writeCatalogDdo, buildCatalogDdo } from '../../tools/catalog/publish';
import { publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { nodeRaw, waitFor } from './helpers';

const SECRET = 'name,salary\nalice,100\n';

/** An Aquarius that serves whatever DDOs the test (the outsider) puts in it. */
async function fakeAquarius() {
  const ddos = new Map<string, unknown>();
  const server = http.createServer((req, res) => {
    const did = decodeURIComponent((req.url ?? '').replace('/api/aquarius/assets/ddo/', ''));
    const ddo = ddos.get(did);
    if (!ddo) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(ddo));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = (): void => {
    server.closeAllConnections();
    server.close();
  };
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ddos, close };
}

const randomDid = (): string => `did:op:${randomBytes(32).toString('hex')}`;

/**
 * Issue 11 item 1, end to end: a catalog dataset's `files` (readable by anyone from our Aquarius
 * endpoint) pasted into a DDO an outsider controls — served by an Aquarius, or set on chain — are not
 * decrypted for it: the download and the job are refused and the data server sees no request.
 */
describe('ciphertext bound to its asset: a catalog dataset pasted into a foreign DDO', () => {
  let chain: TestChain;
  let stack: Stack;
  let aquarius: Awaited<ReturnType<typeof fakeAquarius>>;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let contractsDir: string;
  let owner: ProviderClient;
  let outsider: ProviderClient;
  let dataset: string;
  let stolen: string;

  const download = async (client: ProviderClient, did: string, serviceId = 'access'): Promise<Response> => {
    const { nonce, signature } = await client.sign(did);
    const q = new URLSearchParams({ documentId: did, serviceId, fileIndex: '0', consumerAddress: client.address, nonce, signature });
    return client.request('GET', `/api/services/download?${q.toString()}`);
  };

  beforeAll(async () => {
    chain = await startChain();
    contractsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-bind-'));
    const contractsFile = path.join(contractsDir, 'address.json');
    writeContractsFile(contractsFile, chain.contracts);
    data = await serveFiles({ 'salaries.csv': SECRET });
    aquarius = await fakeAquarius();
    stack = await startStack({
      environments: [{ id: 'env', maxJobs: 1, ramGB: 0.5 }],
      env: { C2D_CHAIN_RPC_URL: chain.rpcUrl, C2D_CONTRACTS_FILE: contractsFile, C2D_CHAIN_ID: String(chain.chainId), C2D_AQUARIUS_URL: aquarius.url },
    });
    owner = stack.consumer();
    outsider = stack.consumer();
    dataset = await publishToCatalog(owner, stack.catalogDir, stack.chainId, {
      type: 'dataset',
      name: 'salaries',
      serviceId: 'access',
      serviceType: 'access',
      urls: [data.url('salaries.csv')],
      allow: [owner.address],
    });
    // what an outsider reads from our own Aquarius endpoint
    const res = await fetch(`${stack.baseUrl}/api/aquarius/assets/ddo/${dataset}`);
    expect(res.status).toBe(200);
    stolen = ((await res.json()) as { services: { files: string }[] }).services[0]!.files;
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await chain?.stop();
    aquarius?.close();
    data?.close();
    if (contractsDir) fs.rmSync(contractsDir, { recursive: true, force: true });
  });

  it('when its owner downloads the catalog dataset, then the file comes back (the legitimate flow)', async () => {
    const before = data.hits.length;
    const res = await download(owner, dataset);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(SECRET);
    expect(data.hits.length).toBe(before + 1);
  });

  it('when an outsider serves a DDO of their own with the stolen files through Aquarius, then download and compute are refused and nothing is fetched', async () => {
    const did = randomDid();
    const foreign = {
      '@context': ['https://w3id.org/did/v1'],
      id: did,
      version: '4.1.0',
      chainId: stack.chainId,
      metadata: { type: 'dataset', name: 'mine', author: 'outsider', license: 'MIT' },
      services: [
        { id: 'access', type: 'access', files: stolen, timeout: 0 },
        {
          id: 'compute',
          type: 'compute',
          files: stolen,
          timeout: 0,
          compute: { allowRawAlgorithm: true, allowNetworkAccess: false, publisherTrustedAlgorithmPublishers: [], publisherTrustedAlgorithms: [] },
        },
      ],
      credentials: { allow: [{ type: 'address', values: [outsider.address] }], deny: [] },
    };
    aquarius.ddos.set(did, foreign);
    const before = data.hits.length;

    const res = await download(outsider, did);
    expect(res.status).toBe(400);
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({ error: { download: 'compute_services_not_in_same_provider' } });
    expect(body).not.toContain('salaries.csv');

    const job = outsider.startJob({ environment: 'env', dataset: { documentId: did, serviceId: 'compute' }, algorithm: nodeRaw("console.log('hi')") });
    await expect(job).rejects.toMatchObject({ status: 400 });
    await expect(job).rejects.toMatchObject({ body: expect.stringContaining('compute_services_not_in_same_provider') as unknown });
    expect(data.hits.length).toBe(before);
    expect(stack.output()).not.toContain('salaries.csv');
  });

  it('when an outsider sets a DDO with the stolen files on chain, then the download is refused and nothing is fetched', async () => {
    const publisher = chain.signers[3]!;
    const asset = await publishOnChainAsset(chain, publisher, stack.providerWallet, { serviceType: 'access' });
    // the same NFT's DDO, updated: an access service without a datatoken (no order needed) holding the stolen files
    const ddo = {
      ...asset.ddo,
      services: [{ id: 'access', type: 'access', files: stolen, timeout: 0 }],
      credentials: { allow: [{ type: 'address', values: [outsider.address] }], deny: [] },
    };
    await setDdoOnChain(publisher, asset.nftAddress, ddo, {
      providerPublicKey: stack.providerWallet.signingKey.publicKey,
      providerUrl: stack.baseUrl,
      providerAddress: stack.providerWallet.address,
    });
    const resolved = await fetch(`${stack.baseUrl}/api/aquarius/assets/ddo/${asset.did}`);
    expect(((await resolved.json()) as { services: { files: string }[] }).services[0]!.files).toBe(stolen);
    const before = data.hits.length;
    const res = await download(outsider, asset.did);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { download: 'compute_services_not_in_same_provider' } });
    expect(data.hits.length).toBe(before);
  }, 60_000);

  it('when a catalog file still holds an unbound list, then it is refused, the API names the file at start, and `c2d catalog rebind` makes it work again', async () => {
    const ddo = buildCatalogDdo(stack.providerWallet.signingKey.publicKey, {
      type: 'dataset',
      serviceId: 'access',
      serviceType: 'access',
      urls: [data.url('salaries.csv')],
      allow: [owner.address],
    });
    // what a catalog published before binding holds
    ddo.services[0]!.files = encryptFiles(stack.providerWallet.signingKey.publicKey, { urls: [data.url('salaries.csv')] });
    const file = await writeCatalogDdo(stack.catalogDir, ddo);
    const before = data.hits.length;
    const refused = await download(owner, ddo.id);
    expect(refused.status).toBe(400);
    expect(data.hits.length).toBe(before);

    // an API starting on this catalog says so, naming the file and the command
    const api = spawn(process.execPath, [path.resolve(__dirname, '../../dist/src/entrypoints/api.js')], {
      env: { ...process.env, ...stack.env, C2D_API_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let printed = '';
    api.stdout.on('data', (d: Buffer) => (printed += d.toString()));
    try {
      const line = await waitFor('the startup error', () => printed.split('\n').find((l) => l.includes('c2d catalog rebind')), 20_000);
      expect(JSON.parse(line)).toMatchObject({ level: 50, files: [file] });
    } finally {
      const exited = new Promise((r) => api.once('exit', r));
      api.kill('SIGTERM');
      await exited;
    }

    const out: string[] = [];
    const err: string[] = [];
    const sink = (to: string[]) => ({ write: (s: string) => to.push(s) > 0 }) as unknown as NodeJS.WritableStream;
    const dry = await cli(['catalog', 'rebind', '--dry-run'], stack.env, { out: sink(out), err: sink(err) });
    expect(dry).toBe(0);
    expect(out.join('')).toBe(`would rebind\t${file}\t${ddo.id}\taccess\n`);
    expect((await download(owner, ddo.id)).status).toBe(400); // a dry run changes nothing

    out.length = 0;
    expect(await cli(['catalog', 'rebind'], stack.env, { out: sink(out), err: sink(err) })).toBe(0);
    expect(out.join('')).toBe(`rebound\t${file}\t${ddo.id}\taccess\n`);
    expect(fs.readFileSync(file, 'utf8')).not.toContain('salaries.csv');
    const res = await download(owner, ddo.id);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(SECRET);

    out.length = 0;
    expect(await cli(['catalog', 'rebind'], stack.env, { out: sink(out), err: sink(err) })).toBe(0);
    expect(out).toEqual([]); // nothing left to rebind
  });
});
