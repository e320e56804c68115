import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BaseWallet, Wallet } from 'ethers';
import request from 'supertest';
import { createApp } from '../../src/api/app';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { ChainDdoResolver } from '../../src/chain/ddo-resolver';
import { startOrder } from '../../tools/chain/order-client';
import { OrderVerifier } from '../../src/chain/orders';
import { signProviderFee } from '../../src/chain/provider-fee';
import { environmentSchema } from '../../src/domain/environment';
import { serveFiles } from '../../tools/local-stack';
import { LocalResultStore } from '../../src/storage/local';
import { FileNonceStore } from '../../src/storage/nonces';
import { FakeJobsService } from '../api/fakes';
import { recordingLogger, signRequest } from '../helpers/api';
import { type OnChainAsset, publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';

const CODE = "console.log('public, on chain')";
const now = (): number => Math.floor(Date.now() / 1000);

/**
 * `download` of an on-chain `access` service: the order of its datatoken must be made out to the caller.
 * Here the caller is another provider (B) fetching a public algorithm for a job: the consumer ordered
 * with `consumer = B`, and paid a provider fee B signed (not ours: download does not check it).
 */
describe('GET /api/services/download for an on-chain asset, against a hardhat node', () => {
  let chain: TestChain;
  let dir: string;
  let app: ReturnType<typeof createApp>;
  let files: Awaited<ReturnType<typeof serveFiles>>;
  let payer: BaseWallet;
  let algorithm: OnChainAsset;
  const providerWallet = new Wallet(Wallet.createRandom().privateKey);
  /** provider B: runs the job, downloads the algorithm; needs no gas */
  const runner = new Wallet(Wallet.createRandom().privateKey);
  const logger = recordingLogger();
  const nonces: Record<string, number> = {};

  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-download-'));
    files = await serveFiles({ 'chain-algo-51c3.js': CODE });
    payer = chain.signers[2]!;
    algorithm = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet, {
      type: 'algorithm',
      serviceType: 'access',
      urls: [files.url('chain-algo-51c3.js')],
      mintTo: [payer.address, payer.address],
    });
    const resolver = new ChainDdoResolver({
      provider: chain.provider,
      chainId: chain.chainId,
      factory: chain.contracts.ERC721Factory,
      startBlock: 0,
      providerPrivateKey: providerWallet.privateKey,
      logger,
    });
    const results = new LocalResultStore(dir);
    app = createApp({
      chainId: chain.chainId,
      providerWallet,
      version: '0.0.0-test',
      environments: [environmentSchema.parse({ id: 'free' })],
      jobs: new FakeJobsService(results),
      results,
      nonces: new FileNonceStore(dir),
      resolver,
      decryptor: new ProviderFileDecryptor(providerWallet.privateKey),
      backendFor: () => undefined,
      logger,
      // the file server is on loopback: allowed explicitly, as an operator would (C2D_ALLOWED_PRIVATE_HOSTS)
      fetchPolicy: { allowedPrivateHosts: [files.host] },
      orderVerifier: new OrderVerifier({
        provider: chain.provider,
        providerAddress: providerWallet.address,
        feeToken: chain.contracts.Ocean,
        logger,
        receiptAttempts: 2,
        receiptDelayMs: 20,
      }),
    });
  });
  afterAll(async () => {
    files?.close();
    await chain?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    expect(JSON.stringify(logger.entries)).not.toContain(files.url(''));
  });

  /** an order of the algorithm's datatoken paid by `payer` for `consumer`, with a zero fee signed by B */
  const order = async (consumer: string): Promise<string> => {
    const t = now();
    const fee = signProviderFee(runner, {
      environment: 'b-env',
      datatoken: algorithm.datatokenAddress,
      serviceId: 'access',
      feeToken: chain.contracts.Ocean,
      amount: 0n,
      validUntil: t + 600,
      now: t,
    });
    return (await startOrder(payer, algorithm.datatokenAddress, consumer, 0, fee)).hash;
  };

  const download = async (wallet: BaseWallet, transferTxId?: string) => {
    const nonce = String((nonces[wallet.address] = Math.max(Date.now(), (nonces[wallet.address] ?? 0) + 1)));
    return request(app)
      .get('/api/services/download')
      .query({
        documentId: algorithm.did,
        serviceId: 'access',
        fileIndex: 0,
        consumerAddress: wallet.address,
        nonce,
        signature: await signRequest(wallet, [algorithm.did], nonce),
        ...(transferTxId ? { transferTxId } : {}),
      })
      .buffer(true)
      .parse((res, cb) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => cb(null, text));
      });
  };

  test('when the order names the caller as consumer, then the file streams (millisecond nonces accepted); without the order, order_not_found', async () => {
    const tx = await order(runner.address);
    const res = await download(runner, tx);
    expect(res.status).toBe(200);
    expect(res.body).toBe(CODE);
    const without = await download(runner);
    expect(without.status).toBe(400);
    expect(JSON.parse(without.body as string)).toEqual({ error: { download: 'order_not_found' } });
  });

  test('when the order was made out to someone else, then consumer_mismatch and the file server is not asked', async () => {
    const hits = files.hits.length;
    const tx = await order(Wallet.createRandom().address);
    const res = await download(runner, tx);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body as string)).toEqual({ error: { download: 'consumer_mismatch' } });
    expect(files.hits.length).toBe(hits);
  });

  test('when the transaction is not an order, then order_not_found', async () => {
    const res = await download(runner, `0x${'ab'.repeat(32)}`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body as string)).toEqual({ error: { download: 'order_not_found' } });
  });
});
