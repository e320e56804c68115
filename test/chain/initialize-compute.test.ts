import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BaseWallet, Wallet, parseEther } from 'ethers';
import request from 'supertest';
import { createApp } from '../../src/api/app';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { contractAt, read, send } from '../../src/chain/contracts';
import { ChainDdoResolver } from '../../src/chain/ddo-resolver';
import { ComputeInitializer } from '../../src/chain/initialize';
import { reuseOrder, startOrder } from '../../tools/chain/order-client';
import { OrderVerifier } from '../../src/chain/orders';
import { feeAmount, type ProviderFee, decodeProviderData } from '../../src/chain/provider-fee';
import { environmentSchema } from '../../src/domain/environment';
import { LocalResultStore } from '../../src/storage/local';
import { FileNonceStore } from '../../src/storage/nonces';
import { FakeJobsService } from '../api/fakes';
import { recordingLogger } from '../helpers/api';
import { type OnChainAsset, publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';

const now = (): number => Math.floor(Date.now() / 1000);

describe('POST /api/services/initializeCompute against a hardhat node', () => {
  let chain: TestChain;
  let dir: string;
  let app: ReturnType<typeof createApp>;
  let consumer: BaseWallet;
  let dataset: OnChainAsset;
  let algorithm: OnChainAsset;
  const providerWallet = new Wallet(Wallet.createRandom().privateKey);
  const logger = recordingLogger();

  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-init-'));
    const [deployer, publisher] = [chain.signers[0]!, chain.signers[1]!];
    consumer = chain.signers[2]!;
    dataset = await publishOnChainAsset(chain, publisher, providerWallet, { mintTo: [consumer.address, consumer.address, consumer.address] });
    algorithm = await publishOnChainAsset(chain, publisher, providerWallet, { type: 'algorithm', mintTo: [consumer.address, consumer.address] });
    await send(contractAt('OceanToken', chain.contracts.Ocean, deployer), 'mint', consumer.address, parseEther('1000'));
    const results = new LocalResultStore(dir);
    const resolver = new ChainDdoResolver({
      provider: chain.provider,
      chainId: chain.chainId,
      factory: chain.contracts.ERC721Factory,
      startBlock: 0,
      providerPrivateKey: providerWallet.privateKey,
      logger,
    });
    const verifier = new OrderVerifier({
      provider: chain.provider,
      providerAddress: providerWallet.address,
      feeToken: chain.contracts.Ocean,
      logger,
      receiptAttempts: 2,
      receiptDelayMs: 20,
    });
    app = createApp({
      chainId: chain.chainId,
      providerWallet,
      version: '0.0.0-test',
      environments: [environmentSchema.parse({ id: 'free' }), environmentSchema.parse({ id: 'paid', priceMin: 1 })],
      jobs: new FakeJobsService(results),
      results,
      nonces: new FileNonceStore(dir),
      resolver,
      decryptor: new ProviderFileDecryptor(providerWallet.privateKey),
      backendFor: () => undefined,
      logger,
      computeInitializer: new ComputeInitializer({ resolver, verifier, wallet: providerWallet, logger }),
    });
  });
  afterAll(async () => {
    await chain?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const initialize = (o: { env?: string; validUntil?: number; datasetTx?: string; algorithmTx?: string; algorithm?: object; consumer?: string } = {}) =>
    request(app)
      .post('/api/services/initializeCompute')
      .send({
        datasets: [{ documentId: dataset.did, serviceId: 'compute', transferTxId: o.datasetTx }],
        algorithm: o.algorithm ?? { documentId: algorithm.did, serviceId: 'compute', transferTxId: o.algorithmTx },
        compute: { env: o.env ?? 'paid', validUntil: o.validUntil ?? now() + 600 },
        consumerAddress: o.consumer ?? consumer.address,
      });

  test('when nothing is ordered yet, then each item gets a signed fee the datatoken contract accepts, the real fee on the dataset only', async () => {
    const validUntil = now() + 600;
    const res = await initialize({ validUntil });
    expect(res.status).toBe(200);
    const d = res.body.datasets[0] as { datatoken: string; providerFee: ProviderFee };
    const a = res.body.algorithm as { datatoken: string; providerFee: ProviderFee };
    expect(d.datatoken).toBe(dataset.datatokenAddress);
    expect(a.datatoken).toBe(algorithm.datatokenAddress);
    expect(BigInt(d.providerFee.providerFeeAmount)).toBeGreaterThanOrEqual(feeAmount(1, 598));
    expect(BigInt(d.providerFee.providerFeeAmount)).toBeLessThanOrEqual(feeAmount(1, 600));
    expect(a.providerFee.providerFeeAmount).toBe('0');
    expect(d.providerFee).toMatchObject({ providerFeeAddress: providerWallet.address, providerFeeToken: chain.contracts.Ocean, validUntil });
    expect(decodeProviderData(d.providerFee.providerData)).toMatchObject({ environment: 'paid', dt: dataset.datatokenAddress, id: 'compute' });

    const dOrder = await startOrder(consumer, d.datatoken, consumer.address, 0, d.providerFee);
    const aOrder = await startOrder(consumer, a.datatoken, consumer.address, 0, a.providerFee);
    expect(await read(contractAt('OceanToken', chain.contracts.Ocean, chain.provider), 'balanceOf', providerWallet.address)).toBe(
      BigInt(d.providerFee.providerFeeAmount),
    );

    const again = await initialize({ validUntil, datasetTx: dOrder.hash, algorithmTx: aOrder.hash });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ datasets: [{ validOrder: dOrder.hash }], algorithm: { validOrder: aOrder.hash } });

    // later than the fee holds: the order stays, a new fee is due, and reuseOrder with it is accepted
    const later = now() + 3600;
    const renew = await initialize({ validUntil: later, datasetTx: dOrder.hash, algorithmTx: aOrder.hash });
    expect(renew.status).toBe(200);
    const rd = renew.body.datasets[0] as { datatoken: string; providerFee: ProviderFee; validOrder: string };
    expect(rd).toMatchObject({ datatoken: dataset.datatokenAddress, validOrder: dOrder.hash });
    expect(BigInt(rd.providerFee.providerFeeAmount)).toBeGreaterThanOrEqual(feeAmount(1, 3598));
    expect(renew.body.algorithm).toMatchObject({ datatoken: algorithm.datatokenAddress, validOrder: aOrder.hash });
    const reused = await reuseOrder(consumer, rd.datatoken, rd.validOrder, rd.providerFee);
    const afterReuse = await initialize({ validUntil: later, datasetTx: reused.hash, algorithmTx: aOrder.hash });
    expect(afterReuse.body.datasets).toEqual([{ validOrder: reused.hash }]);
  });

  test('when the order belongs to someone else, then a new order is needed', async () => {
    const res = await initialize();
    const d = res.body.datasets[0] as { datatoken: string; providerFee: ProviderFee };
    const order = await startOrder(consumer, d.datatoken, consumer.address, 0, d.providerFee);
    const other = await initialize({ datasetTx: order.hash, consumer: chain.signers[3]!.address });
    expect(other.status).toBe(200);
    expect(other.body.datasets[0]).toEqual({ datatoken: dataset.datatokenAddress, providerFee: expect.any(Object) });
    expect(other.body.datasets[0].validOrder).toBeUndefined();
  });

  test('when the algorithm is raw, then the answer has no algorithm', async () => {
    const res = await initialize({
      env: 'free',
      algorithm: { meta: { rawcode: 'x', container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: 'sha256:0' } } },
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['datasets']);
    expect(res.body.datasets[0].providerFee.providerFeeAmount).toBe('0');
  });

  test('when validUntil is past or the environment unknown, then 400 with the contract error', async () => {
    const past = await initialize({ validUntil: now() - 10 });
    expect(past.status).toBe(400);
    expect(past.body).toEqual({ error: 'validUntil is in the past' });
    const unknown = await initialize({ env: 'nope' });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual({ error: 'Compute environment does not exist' });
  });

  test('when the DID is unknown, then 400 names the item', async () => {
    const res = await request(app)
      .post('/api/services/initializeCompute')
      .send({
        datasets: [{ documentId: `did:op:${'0'.repeat(64)}`, serviceId: 'compute' }],
        algorithm: { documentId: algorithm.did, serviceId: 'compute' },
        compute: { env: 'free', validUntil: now() + 60 },
        consumerAddress: consumer.address,
      });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { dataset: 'did_not_found' } });
  });
});
