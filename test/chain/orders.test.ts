import { type BaseWallet, Wallet, parseEther } from 'ethers';
import { contractAt, send } from '../../src/chain/contracts';
import { reuseOrder, startOrder } from '../../tools/chain/order-client';
import { OrderVerifier, type OrderItem } from '../../src/chain/orders';
import { feeAmount, type ProviderFee, providerFeeTuple, signProviderFee } from '../../src/chain/provider-fee';
import { createNftWithDatatoken, mintDatatokens } from '../../tools/chain/publish';
import { rpcProvider } from '../../src/chain/rpc';
import type { Ddo } from '../../src/domain/ddo';
import { AccessDeniedError, UnavailableError } from '../../src/domain/errors';
import { silentLogger } from '../helpers/process-backend';
import { startChain, type TestChain } from '../helpers/chain';

const PAID = { id: 'paid', priceMin: 1 };
const now = (): number => Math.floor(Date.now() / 1000);

describe('order verification against a hardhat node', () => {
  let chain: TestChain;
  let verifier: OrderVerifier;
  let consumer: BaseWallet;
  let stranger: BaseWallet;
  let ddo: Ddo;
  let otherDatatoken: string;
  const providerKey = Wallet.createRandom();
  const otherKey = Wallet.createRandom();

  const makeDdo = (nftAddress: string, datatokenAddress: string, timeout = 0): Ddo => ({
    id: `did:op:${nftAddress.slice(2).toLowerCase()}`,
    nftAddress,
    chainId: 8996,
    metadata: { type: 'dataset', name: 'd' },
    services: [
      { id: 'compute', type: 'compute', files: '0x00', datatokenAddress, timeout },
      { id: 'access', type: 'access', files: '0x00', datatokenAddress, timeout },
    ],
  });

  const fee = (
    datatoken: string,
    o: { signer?: BaseWallet; env?: string; seconds?: number; serviceId?: string; amount?: bigint; validUntil?: number } = {},
  ): ProviderFee => {
    const t = now();
    const seconds = o.seconds ?? 600;
    return signProviderFee(o.signer ?? providerKey, {
      environment: o.env ?? PAID.id,
      datatoken,
      serviceId: o.serviceId ?? 'compute',
      feeToken: chain.contracts.Ocean,
      amount: o.amount ?? feeAmount(PAID.priceMin, seconds),
      validUntil: o.validUntil ?? t + seconds,
      now: t,
    });
  };

  const item = (transferTxId: string, d: Ddo = ddo, serviceId = 'compute'): OrderItem => ({
    resource: 'dataset',
    ddo: d,
    serviceId,
    transferTxId,
    isDataset: true,
  });
  const verify = (items: OrderItem[], o: { consumer?: string; durationSeconds?: number; at?: number } = {}) =>
    verifier.verify({
      consumerAddress: o.consumer ?? consumer.address,
      items,
      environment: PAID,
      durationSeconds: o.durationSeconds ?? 300,
      now: o.at ?? now(),
    });
  const denied = async (p: Promise<unknown>, code: string): Promise<void> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(err).toMatchObject({ code });
  };

  beforeAll(async () => {
    chain = await startChain();
    const [deployer, publisher] = [chain.signers[0]!, chain.signers[1]!];
    consumer = chain.signers[2]!;
    stranger = chain.signers[3]!;
    const a = await createNftWithDatatoken(publisher, chain.contracts);
    const b = await createNftWithDatatoken(publisher, chain.contracts);
    ddo = makeDdo(a.nftAddress, a.datatokenAddress);
    otherDatatoken = b.datatokenAddress;
    await mintDatatokens(publisher, a.datatokenAddress, consumer.address, parseEther('20'));
    await mintDatatokens(publisher, b.datatokenAddress, consumer.address, parseEther('5'));
    await send(contractAt('OceanToken', chain.contracts.Ocean, deployer), 'mint', consumer.address, parseEther('1000'));
    verifier = new OrderVerifier({
      provider: chain.provider,
      providerAddress: providerKey.address,
      feeToken: chain.contracts.Ocean,
      logger: silentLogger,
      receiptAttempts: 3,
      receiptDelayMs: 20,
    });
  });
  afterAll(() => chain?.stop());

  const dt = (): string => ddo.services[0]!.datatokenAddress!;

  test('when the order and its fee are right, then it verifies and the paying order is the agreement', async () => {
    const r = await startOrder(consumer, dt(), consumer.address, 0, fee(dt()));
    const result = await verify([item(r.hash)]);
    expect(result.agreementId).toBe(r.hash);
    expect(result.orders).toEqual([{ resource: 'dataset', transferTxId: r.hash, orderTxId: r.hash, feePaid: feeAmount(1, 600) }]);
  });

  test('when the consumer reuses an order with a new fee, then the reuse verifies back to the original order', async () => {
    const first = await startOrder(consumer, dt(), consumer.address, 0, fee(dt(), { amount: 0n }));
    const reuse = await reuseOrder(consumer, dt(), first.hash, fee(dt()));
    const result = await verify([item(reuse.hash)]);
    expect(result.orders[0]).toMatchObject({ transferTxId: reuse.hash, orderTxId: first.hash, feePaid: feeAmount(1, 600) });
    expect(result.agreementId).toBe(reuse.hash);
  });

  test('when someone else asks with the order, then it is refused as consumer_mismatch', async () => {
    const r = await startOrder(consumer, dt(), consumer.address, 0, fee(dt()));
    await denied(verify([item(r.hash)], { consumer: stranger.address }), 'consumer_mismatch');
  });

  test('when the order was for another service index, then it is refused as service_index_mismatch', async () => {
    const r = await startOrder(consumer, dt(), consumer.address, 1, fee(dt()));
    await denied(verify([item(r.hash)]), 'service_index_mismatch');
  });

  test('when the order spent another datatoken, then it is refused as datatoken_mismatch', async () => {
    const r = await startOrder(consumer, otherDatatoken, consumer.address, 0, fee(otherDatatoken));
    await denied(verify([item(r.hash)]), 'datatoken_mismatch');
  });

  test('when the order transaction reverted, then it is refused as order_reverted', async () => {
    const forged = { ...fee(dt(), { signer: otherKey }), providerFeeAddress: providerKey.address };
    const datatoken = contractAt('ERC20Template', dt(), consumer);
    const noMarketFee = { consumeMarketFeeAddress: consumer.address, consumeMarketFeeToken: chain.contracts.Ocean, consumeMarketFeeAmount: 0n };
    // an explicit gas limit skips estimation, so the reverting transaction is sent and mined
    const tx = await datatoken.getFunction('startOrder').send(consumer.address, 0, providerFeeTuple(forged), noMarketFee, { gasLimit: 1_000_000 });
    await expect(tx.wait()).rejects.toThrow();
    await denied(verify([item(tx.hash)]), 'order_reverted');
  });

  test('when the order is not mined yet, then it is refused as order_not_mined, and it verifies once mined within the wait', async () => {
    const datatoken = contractAt('ERC20Template', dt(), consumer);
    const noMarketFee = { consumeMarketFeeAddress: consumer.address, consumeMarketFeeToken: chain.contracts.Ocean, consumeMarketFeeAmount: 0n };
    await chain.provider.send('evm_setAutomine', [false]);
    try {
      const pending = await datatoken
        .getFunction('startOrder')
        .send(consumer.address, 0, providerFeeTuple(fee(dt(), { amount: 0n })), noMarketFee, { gasLimit: 1_000_000 });
      await denied(verify([item(pending.hash)], { durationSeconds: 0 }), 'order_not_mined');
      const patient = new OrderVerifier({
        provider: chain.provider,
        providerAddress: providerKey.address,
        feeToken: chain.contracts.Ocean,
        logger: silentLogger,
        receiptAttempts: 40,
        receiptDelayMs: 50,
      });
      const verifying = patient.verify({ consumerAddress: consumer.address, items: [item(pending.hash)], environment: PAID, durationSeconds: 0, now: now() });
      setTimeout(() => void chain.provider.send('evm_mine', []), 300);
      expect((await verifying).agreementId).toBe(pending.hash);
    } finally {
      await chain.provider.send('evm_setAutomine', [true]);
    }
  });

  test('when the fee was signed by another provider, then it is refused as provider_fee_not_ours', async () => {
    const r = await startOrder(consumer, dt(), consumer.address, 0, fee(dt(), { signer: otherKey }));
    await denied(verify([item(r.hash)]), 'provider_fee_not_ours');
  });

  test('when the fee was made for another environment or service, then it is refused as provider_fee_mismatch', async () => {
    const env = await startOrder(consumer, dt(), consumer.address, 0, fee(dt(), { env: 'free' }));
    await denied(verify([item(env.hash)]), 'provider_fee_mismatch');
    const svc = await startOrder(consumer, dt(), consumer.address, 0, fee(dt(), { serviceId: 'access' }));
    await denied(verify([item(svc.hash)]), 'provider_fee_mismatch');
  });

  test('when the fee is too small for the job, then it is refused as fees_not_paid', async () => {
    const r = await startOrder(consumer, dt(), consumer.address, 0, fee(dt(), { seconds: 60 }));
    await denied(verify([item(r.hash)], { durationSeconds: 600 }), 'fees_not_paid');
    expect((await verify([item(r.hash)], { durationSeconds: 60 })).agreementId).toBe(r.hash);
  });

  test('when the transaction is not an order, then it is refused as order_not_found', async () => {
    const mint = await send(contractAt('OceanToken', chain.contracts.Ocean, chain.signers[0]!), 'mint', stranger.address, 1n);
    await denied(verify([item(mint.hash)]), 'order_not_found');
    await denied(verify([item(`0x${'12'.repeat(32)}`)]), 'order_not_found');
    await denied(verify([item('not-a-hash')]), 'order_not_found');
  });

  test('when the order is older than the service timeout or its fee expired, then it is refused', async () => {
    const r = await startOrder(consumer, dt(), consumer.address, 0, fee(dt(), { seconds: 120 }));
    const ordered = (await chain.provider.getBlock(r.blockNumber))!.timestamp;
    expect((await verify([item(r.hash, makeDdo(ddo.nftAddress!, dt(), 100))], { at: ordered + 100, durationSeconds: 0 })).agreementId).toBe(r.hash);
    await denied(verify([item(r.hash, makeDdo(ddo.nftAddress!, dt(), 100))], { at: ordered + 101, durationSeconds: 0 }), 'order_expired');
    await denied(verify([item(r.hash)], { at: now() + 120 + 61, durationSeconds: 0 }), 'provider_fee_expired');
  });

  test('when the DDO names a datatoken its NFT did not deploy, then it is refused as datatoken_not_deployed', async () => {
    const r = await startOrder(consumer, otherDatatoken, consumer.address, 0, fee(otherDatatoken));
    await denied(verify([item(r.hash, makeDdo(ddo.nftAddress!, otherDatatoken))]), 'datatoken_not_deployed');
  });

  test('when the asset is no longer active, then it is refused as asset_not_consumable', async () => {
    const publisher = chain.signers[1]!;
    const c = await createNftWithDatatoken(publisher, chain.contracts);
    await mintDatatokens(publisher, c.datatokenAddress, consumer.address, parseEther('1'));
    const r = await startOrder(consumer, c.datatokenAddress, consumer.address, 0, fee(c.datatokenAddress));
    const retired = makeDdo(c.nftAddress, c.datatokenAddress);
    expect((await verify([item(r.hash, retired)])).agreementId).toBe(r.hash);
    await send(contractAt('ERC721Template', c.nftAddress, publisher), 'setMetaDataState', 4);
    await denied(verify([item(r.hash, retired)]), 'asset_not_consumable');
  });

  test('when the chain cannot be reached, then verification fails as unavailable (retryable)', async () => {
    const down = rpcProvider('http://127.0.0.1:1', 8996, 50);
    const offline = new OrderVerifier({ provider: down, providerAddress: providerKey.address, feeToken: chain.contracts.Ocean, logger: silentLogger });
    await expect(
      offline.verify({ consumerAddress: consumer.address, items: [item(`0x${'12'.repeat(32)}`)], environment: PAID, durationSeconds: 0, now: now() }),
    ).rejects.toBeInstanceOf(UnavailableError);
    down.destroy();
  });
});
