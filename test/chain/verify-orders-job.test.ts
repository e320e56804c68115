import { type BaseWallet, Wallet, ZeroAddress, parseEther } from 'ethers';
import { createActivities } from '../../src/activities';
import { authorizeJob } from '../../src/assets/authorize';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { contractAt, send } from '../../src/chain/contracts';
import { ChainDdoResolver } from '../../src/chain/ddo-resolver';
import { reuseOrder, startOrder } from '../../tools/chain/order-client';
import { mintDatatokens } from '../../tools/chain/publish';
import { OrderVerifier } from '../../src/chain/orders';
import { feeAmount, providerFeeTuple, signProviderFee } from '../../src/chain/provider-fee';
import { rpcProvider } from '../../src/chain/rpc';
import type { JobInput, JobView } from '../../src/domain/job';
import { finalStatuses } from '../../src/domain/status';
import { TemporalJobsService } from '../../src/temporal/client';
import { recordingLogger } from '../helpers/api';
import { type OnChainAsset, publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';
import { eventually, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { environment, MemoryResultStore, newJobId, ScriptedBackend } from '../workflows/fakes';

const now = (): number => Math.floor(Date.now() / 1000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** How long the chain node is frozen in the middle of a job's order verification. */
const OUTAGE_MS = 20_000;

describe('a job whose assets are on chain verifies its orders before it runs', () => {
  const env = environment({ id: uniqueName('paid'), priceMin: 1, maxJobDuration: 300, maxJobs: 4 });
  const providerWallet = new Wallet(Wallet.createRandom().privateKey);
  const logger = recordingLogger();
  const backend = new ScriptedBackend();
  let chain: TestChain;
  let tw: TestWorker;
  let jobs: TemporalJobsService;
  let consumer: BaseWallet;
  let stranger: BaseWallet;
  let dataset: OnChainAsset;
  /** a dataset whose compute service lets an order count for 1 s only */
  let shortLived: OnChainAsset;
  let algorithm: OnChainAsset;
  let jobProvider: ReturnType<typeof rpcProvider>;
  /** job ids whose chain goes silent for this many ms right after their first authorization */
  const outages = new Map<string, number>();
  let resumedAt = 0;

  beforeAll(async () => {
    chain = await startChain();
    const [deployer, publisher] = [chain.signers[0]!, chain.signers[1]!];
    consumer = chain.signers[2]!;
    stranger = chain.signers[3]!;
    dataset = await publishOnChainAsset(chain, publisher, providerWallet);
    shortLived = await publishOnChainAsset(chain, publisher, providerWallet, { timeout: 1, mintTo: [consumer.address] });
    algorithm = await publishOnChainAsset(chain, publisher, providerWallet, { type: 'algorithm' });
    await mintDatatokens(publisher, dataset.datatokenAddress, consumer.address, parseEther('30'));
    await mintDatatokens(publisher, dataset.datatokenAddress, stranger.address, parseEther('2'));
    await mintDatatokens(publisher, algorithm.datatokenAddress, consumer.address, parseEther('30'));
    await send(contractAt('OceanToken', chain.contracts.Ocean, deployer), 'mint', consumer.address, parseEther('1000'));
    // the worker's own connection, with a short request timeout so a silent node shows as an outage quickly
    jobProvider = rpcProvider(chain.rpcUrl, chain.chainId, 50, 1000);
    const resolver = new ChainDdoResolver({
      provider: jobProvider,
      chainId: chain.chainId,
      factory: chain.contracts.ERC721Factory,
      startBlock: 0,
      providerPrivateKey: providerWallet.privateKey,
      logger,
    });
    const decryptor = new ProviderFileDecryptor(providerWallet.privateKey);
    const results = new MemoryResultStore();
    const activities = createActivities({
      environments: [env],
      backendFor: () => backend,
      results,
      authorize: async (input) => {
        // the assets' files are on 127.0.0.1 (never fetched here: the backend is scripted)
        const auth = await authorizeJob({ resolver, decryptor, checkContainer: () => null, fetchPolicy: { allowedPrivateHosts: ['127.0.0.1'] } }, input);
        const pauseMs = outages.get(input.jobId);
        if (pauseMs !== undefined) {
          outages.delete(input.jobId);
          chain.node.process.kill('SIGSTOP');
          setTimeout(() => {
            chain.node.process.kill('SIGCONT');
            resumedAt = Date.now();
          }, pauseMs);
        }
        return auth;
      },
      decryptor,
      logger,
      heartbeatMs: 200,
      // no grace on a fee's validUntil, so an expired fee shows within seconds
      orders: {
        resolver,
        verifier: new OrderVerifier({
          provider: jobProvider,
          providerAddress: providerWallet.address,
          feeToken: chain.contracts.Ocean,
          logger,
          receiptAttempts: 2,
          receiptDelayMs: 20,
          feeGraceSeconds: 0,
        }),
      },
    });
    tw = await startTestWorker(activities);
    jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results });
  }, 120_000);
  afterAll(async () => {
    await tw?.stop();
    jobProvider?.destroy();
    await chain?.stop();
  });

  type FeeOptions = { amount: bigint; env?: string; signer?: BaseWallet; validUntil?: number };
  const feeFor = (asset: OnChainAsset, o: FeeOptions) => {
    const t = now();
    return signProviderFee(o.signer ?? providerWallet, {
      environment: o.env ?? env.id,
      datatoken: asset.datatokenAddress,
      serviceId: 'compute',
      feeToken: chain.contracts.Ocean,
      amount: o.amount,
      validUntil: o.validUntil ?? t + env.maxJobDuration + 60,
      now: t,
    });
  };
  const order = async (asset: OnChainAsset, o: FeeOptions & { by?: BaseWallet; serviceIndex?: number }) => {
    const by = o.by ?? consumer;
    return (await startOrder(by, asset.datatokenAddress, by.address, o.serviceIndex ?? 0, feeFor(asset, o))).hash;
  };
  const paidFee = { amount: feeAmount(1, env.maxJobDuration) };

  const run = async (
    datasetTx: string,
    algorithmTx: string,
    o: { outageMs?: number; whileRunning?: (jobId: string) => Promise<void>; datasetAsset?: OnChainAsset; finishWithinMs?: number } = {},
  ): Promise<JobView> => {
    const input: JobInput = {
      jobId: newJobId(),
      owner: consumer.address.toLowerCase(),
      environmentId: env.id,
      datasets: [{ did: (o.datasetAsset ?? dataset).did, serviceId: 'compute', transferTxId: datasetTx }],
      algorithm: { kind: 'published', did: algorithm.did, serviceId: 'compute', transferTxId: algorithmTx },
      createdAt: Date.now(),
    };
    if (o.outageMs) outages.set(input.jobId, o.outageMs);
    await jobs.start(input);
    await o.whileRunning?.(input.jobId);
    return eventually(
      async () => {
        const v = await jobs.get(input.jobId);
        return v && finalStatuses.includes(v.status) ? v : undefined;
      },
      o.finishWithinMs ?? 30_000,
      'job to finish',
    );
  };

  /** The code the job's order verification was refused with (the non-retryable activity failure in its history). */
  const refusalCode = async (jobId: string): Promise<string | undefined> => {
    const history = await tw.client.workflow.getHandle(`c2d-${jobId}`).fetchHistory();
    for (const e of history.events ?? []) {
      const info = e.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo;
      if (info?.nonRetryable) return info.type ?? undefined;
    }
    return undefined;
  };

  test('when the chain node stops answering for 20 s during verification, then the job waits in status 1 and completes after it returns', async () => {
    const datasetTx = await order(dataset, paidFee);
    const algorithmTx = await order(algorithm, { amount: 0n });
    const seen = new Set<number>();
    const started = Date.now();
    const view = await run(datasetTx, algorithmTx, {
      outageMs: OUTAGE_MS,
      // watch the job for most of the outage: it must sit in status 1, neither failed nor running
      whileRunning: async (jobId) => {
        while (Date.now() < started + OUTAGE_MS - 2000) {
          const status = (await jobs.get(jobId))?.status;
          if (status !== undefined) seen.add(status);
          await sleep(500);
        }
      },
      // the activity's retries back off (1, 2, 4, 8, 16 s …): the next one after the node returns may take a while
      finishWithinMs: 120_000,
    });
    expect([...seen]).toEqual([1]);
    expect(view.status).toBe(70);
    expect(resumedAt).toBeGreaterThan(0);
    expect(Number(view.dateFinished) * 1000).toBeGreaterThanOrEqual(resumedAt - 1000);
    expect(view.agreementId).toBe(datasetTx);
    expect(algorithmRan(view.jobId)).toBe(true);
    expect(logger.entries.filter((e) => e.msg === 'chain rpc failed').length).toBeGreaterThan(1);
  }, 180_000);

  const algorithmRan = (jobId: string): boolean => backend.calls.some((c) => c.jobId === jobId && c.step === 'algorithm');

  test('when both orders carry our fee covering the job, then the job runs to the end', async () => {
    const view = await run(await order(dataset, paidFee), await order(algorithm, { amount: 0n }));
    expect(view.status).toBe(70);
    expect(algorithmRan(view.jobId)).toBe(true);
  });

  test('when the algorithm order is the one that paid, then the job keeps it as its agreementId', async () => {
    const datasetTx = await order(dataset, { amount: 0n });
    const algorithmTx = await order(algorithm, paidFee);
    const view = await run(datasetTx, algorithmTx);
    expect(view.status).toBe(70);
    expect(view.agreementId).toBe(algorithmTx);
    expect((await tw.client.workflow.getHandle(`c2d-${view.jobId}`).describe()).memo).toMatchObject({ agreementId: algorithmTx });
    expect(logger.entries.some((e) => e.msg === 'orders verified' && (e.fields as { agreementId?: string }).agreementId === algorithmTx)).toBe(true);
  });

  test('when still-valid orders are used again, then a second job runs on them without a new transaction', async () => {
    const datasetTx = await order(dataset, paidFee);
    const algorithmTx = await order(algorithm, { amount: 0n });
    const first = await run(datasetTx, algorithmTx);
    const block = await chain.provider.getBlockNumber();
    const second = await run(datasetTx, algorithmTx);
    expect([first.status, second.status]).toEqual([70, 70]);
    expect(second.agreementId).toBe(datasetTx);
    expect(algorithmRan(second.jobId)).toBe(true);
    expect(await chain.provider.getBlockNumber()).toBe(block);
  });

  test('when the fee of an order expired, then the order is refused until reuseOrder renews the fee, and the job on the reuse completes', async () => {
    const algorithmTx = await order(algorithm, { amount: 0n });
    const datasetTx = await order(dataset, { ...paidFee, validUntil: now() + 1 });
    await sleep(2500);
    const refused = await run(datasetTx, algorithmTx);
    expect(refused.status).toBe(31);
    expect(await refusalCode(refused.jobId)).toBe('provider_fee_expired');
    expect(algorithmRan(refused.jobId)).toBe(false);

    const balance = await contractAt('ERC20Template', dataset.datatokenAddress, chain.provider).getFunction('balanceOf')(consumer.address);
    const reuse = await reuseOrder(consumer, dataset.datatokenAddress, datasetTx, feeFor(dataset, paidFee));
    expect(await contractAt('ERC20Template', dataset.datatokenAddress, chain.provider).getFunction('balanceOf')(consumer.address)).toBe(balance); // no datatoken spent
    const view = await run(reuse.hash, algorithmTx);
    expect(view.status).toBe(70);
    expect(view.agreementId).toBe(reuse.hash);
    expect(algorithmRan(view.jobId)).toBe(true);
  });

  const noMarketFee = { consumeMarketFeeAddress: ZeroAddress, consumeMarketFeeToken: ZeroAddress, consumeMarketFeeAmount: 0n };
  /** Sends startOrder without waiting for (or estimating) it: a transaction the node takes even when it reverts or is not mined. */
  const sendOrder = async (fee: ReturnType<typeof feeFor>): Promise<string> =>
    (
      await contractAt('ERC20Template', dataset.datatokenAddress, consumer)
        .getFunction('startOrder')
        .send(consumer.address, 0, providerFeeTuple(fee), noMarketFee, { gasLimit: 1_000_000 })
    ).hash;

  interface WrongOrder {
    what: string;
    code: string;
    /** the dataset's transferTxId; the algorithm's order is a good one */
    datasetTx: () => Promise<string>;
    datasetAsset?: () => OnChainAsset;
    after?: () => Promise<void>;
  }
  const wrongOrders: WrongOrder[] = [
    { what: 'the order was made by and for someone else', code: 'consumer_mismatch', datasetTx: () => order(dataset, { amount: 0n, by: stranger }) },
    { what: 'the order names another service index', code: 'service_index_mismatch', datasetTx: () => order(dataset, { ...paidFee, serviceIndex: 1 }) },
    { what: 'the order spent another datatoken', code: 'datatoken_mismatch', datasetTx: () => order(algorithm, paidFee) },
    {
      what: 'the order is older than the service timeout',
      code: 'order_expired',
      datasetAsset: () => shortLived,
      datasetTx: async () => {
        const tx = await order(shortLived, paidFee);
        // the order's age counts from its block's timestamp, which a busy dev chain may set ahead of the clock
        const mined = (await chain.provider.getBlock((await chain.provider.getTransactionReceipt(tx))!.blockNumber))!.timestamp;
        await sleep(Math.max(0, (mined + 2 - Date.now() / 1000) * 1000) + 500);
        return tx;
      },
    },
    {
      what: 'the provider fee expired',
      code: 'provider_fee_expired',
      datasetTx: async () => {
        const tx = await order(dataset, { ...paidFee, validUntil: now() + 1 });
        await sleep(2500);
        return tx;
      },
    },
    {
      what: 'the order transaction reverted',
      code: 'order_reverted',
      // our fee address with another key's signature: the datatoken contract reverts
      datasetTx: () =>
        sendOrder({ ...feeFor(dataset, { amount: 0n, signer: new Wallet(Wallet.createRandom().privateKey) }), providerFeeAddress: providerWallet.address }),
    },
    {
      what: 'the order is not mined yet',
      code: 'order_not_mined',
      datasetTx: async () => {
        await chain.provider.send('evm_setAutomine', [false]);
        return sendOrder(feeFor(dataset, { amount: 0n }));
      },
      after: async () => {
        await chain.provider.send('evm_setAutomine', [true]);
        await chain.provider.send('evm_mine', []);
      },
    },
    {
      what: 'the fee was signed by another provider',
      code: 'provider_fee_not_ours',
      datasetTx: () => order(dataset, { ...paidFee, signer: new Wallet(Wallet.createRandom().privateKey) }),
    },
    { what: 'the fee was made for another environment', code: 'provider_fee_mismatch', datasetTx: () => order(dataset, { ...paidFee, env: 'another-env' }) },
    { what: 'the fee is too small for the job', code: 'fees_not_paid', datasetTx: () => order(dataset, { amount: feeAmount(1, 60) }) },
    {
      what: 'the transaction is not an order',
      code: 'order_not_found',
      datasetTx: async () => (await send(contractAt('OceanToken', chain.contracts.Ocean, chain.signers[0]!), 'mint', stranger.address, 1n)).hash,
    },
  ];

  describe.each(wrongOrders)('when $what', ({ code, datasetTx, datasetAsset, after }) => {
    test(`then the job is refused with ${code} as data provisioning failed and runs no algorithm`, async () => {
      const algorithmTx = await order(algorithm, { amount: 0n });
      const tx = await datasetTx();
      let view: JobView;
      try {
        view = await run(tx, algorithmTx, { datasetAsset: datasetAsset?.() });
      } finally {
        await after?.();
      }
      expect(view.status).toBe(31);
      expect(await refusalCode(view.jobId)).toBe(code);
      expect(view.terminationDetails?.reason).toMatch(/^(dataset|order): /);
      expect(backend.calls.filter((c) => c.jobId === view.jobId)).toEqual([]);
    });
  });

  test('when the algorithm order was made by someone else for them, then the job fails as algorithm provisioning failed', async () => {
    const datasetTx = await order(dataset, paidFee);
    const t = now();
    const fee = signProviderFee(providerWallet, {
      environment: env.id,
      datatoken: algorithm.datatokenAddress,
      serviceId: 'compute',
      feeToken: chain.contracts.Ocean,
      amount: 0n,
      validUntil: t + 600,
      now: t,
    });
    await send(contractAt('ERC20Template', algorithm.datatokenAddress, consumer), 'transfer', stranger.address, parseEther('1'));
    const strangerOrder = (await startOrder(stranger, algorithm.datatokenAddress, stranger.address, 0, fee)).hash;
    const view = await run(datasetTx, strangerOrder);
    expect(view.status).toBe(32);
    expect(await refusalCode(view.jobId)).toBe('consumer_mismatch');
    expect(view.terminationDetails?.reason).toMatch(/neither consumer nor payer/);
    expect(algorithmRan(view.jobId)).toBe(false);
  });
});
