import { type BaseWallet, Wallet, parseEther } from 'ethers';
import { createActivities } from '../../src/activities';
import { authorizeJob } from '../../src/assets/authorize';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { contractAt, send } from '../../src/chain/contracts';
import { ChainDdoResolver } from '../../src/chain/ddo-resolver';
import { startOrder } from '../../src/chain/order-client';
import { OrderVerifier } from '../../src/chain/orders';
import { feeAmount, signProviderFee } from '../../src/chain/provider-fee';
import { rpcProvider } from '../../src/chain/rpc';
import type { JobInput, JobView } from '../../src/domain/job';
import { finalStatuses } from '../../src/domain/status';
import { TemporalJobsService } from '../../src/temporal/client';
import { recordingLogger } from '../helpers/api';
import { type OnChainAsset, publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';
import { eventually, startTestWorker, type TestWorker, uniqueName } from '../helpers/temporal';
import { environment, MemoryResultStore, newJobId, ScriptedBackend } from '../workflows/fakes';

const now = (): number => Math.floor(Date.now() / 1000);

describe('a job whose assets are on chain verifies its orders before it runs', () => {
  const env = environment({ id: uniqueName('paid'), priceMin: 1, maxJobDuration: 300, maxJobs: 4 });
  const providerWallet = new Wallet(Wallet.createRandom().privateKey);
  const logger = recordingLogger();
  const backend = new ScriptedBackend();
  let chain: TestChain;
  let tw: TestWorker;
  let jobs: TemporalJobsService;
  let consumer: BaseWallet;
  let dataset: OnChainAsset;
  let algorithm: OnChainAsset;
  let jobProvider: ReturnType<typeof rpcProvider>;
  /** job ids whose chain goes silent for this many ms right after their first authorization */
  const outages = new Map<string, number>();

  beforeAll(async () => {
    chain = await startChain();
    const [deployer, publisher] = [chain.signers[0]!, chain.signers[1]!];
    consumer = chain.signers[2]!;
    dataset = await publishOnChainAsset(chain, publisher, providerWallet, { mintTo: Array.from({ length: 6 }, () => consumer.address) });
    algorithm = await publishOnChainAsset(chain, publisher, providerWallet, { type: 'algorithm', mintTo: Array.from({ length: 6 }, () => consumer.address) });
    await send(contractAt('OceanToken', chain.contracts.Ocean, deployer), 'mint', consumer.address, parseEther('1000'));
    // the worker's own connection, with a short request timeout so a silent node shows as an outage quickly
    jobProvider = rpcProvider(chain.rpcUrl, chain.chainId, 50, 1000);
    const resolver = new ChainDdoResolver({ provider: jobProvider, chainId: chain.chainId, factory: chain.contracts.ERC721Factory, startBlock: 0, providerPrivateKey: providerWallet.privateKey, logger });
    const decryptor = new ProviderFileDecryptor(providerWallet.privateKey);
    const results = new MemoryResultStore();
    const activities = createActivities({
      environments: [env],
      backendFor: () => backend,
      results,
      authorize: async (input) => {
        const auth = await authorizeJob({ resolver, decryptor, checkContainer: () => null }, input);
        const pauseMs = outages.get(input.jobId);
        if (pauseMs !== undefined) {
          outages.delete(input.jobId);
          chain.node.process.kill('SIGSTOP');
          setTimeout(() => chain.node.process.kill('SIGCONT'), pauseMs);
        }
        return auth;
      },
      decryptor,
      logger,
      heartbeatMs: 200,
      orders: { resolver, verifier: new OrderVerifier({ provider: jobProvider, providerAddress: providerWallet.address, feeToken: chain.contracts.Ocean, logger, receiptAttempts: 2, receiptDelayMs: 20 }) },
    });
    tw = await startTestWorker(activities);
    jobs = new TemporalJobsService({ client: tw.client, taskQueue: tw.taskQueue, results });
  }, 120_000);
  afterAll(async () => {
    await tw?.stop();
    jobProvider?.destroy();
    await chain?.stop();
  });

  const order = async (asset: OnChainAsset, o: { amount: bigint; env?: string }) => {
    const t = now();
    const fee = signProviderFee(providerWallet, { environment: o.env ?? env.id, datatoken: asset.datatokenAddress, serviceId: 'compute', feeToken: chain.contracts.Ocean, amount: o.amount, validUntil: t + env.maxJobDuration + 60, now: t });
    return (await startOrder(consumer, asset.datatokenAddress, consumer.address, 0, fee)).hash;
  };

  const run = async (datasetTx: string, algorithmTx: string, o: { outageMs?: number; whileRunning?: (jobId: string) => Promise<void> } = {}): Promise<JobView> => {
    const input: JobInput = {
      jobId: newJobId(),
      owner: consumer.address.toLowerCase(),
      environmentId: env.id,
      datasets: [{ did: dataset.did, serviceId: 'compute', transferTxId: datasetTx }],
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
      30_000,
      'job to finish',
    );
  };

  test('when the chain node stops answering during verification, then the job waits in status 1 and completes after it returns', async () => {
    const datasetTx = await order(dataset, { amount: feeAmount(1, env.maxJobDuration) });
    const algorithmTx = await order(algorithm, { amount: 0n });
    const seen = new Set<number>();
    const view = await run(datasetTx, algorithmTx, {
      outageMs: 6000,
      whileRunning: async (jobId) => {
        const until = Date.now() + 4000;
        while (Date.now() < until) {
          const status = (await jobs.get(jobId))?.status;
          if (status !== undefined) seen.add(status);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
    });
    expect([...seen]).toEqual([1]);
    expect(view.status).toBe(70);
    expect(algorithmRan(view.jobId)).toBe(true);
    expect(logger.entries.some((e) => e.msg === 'chain rpc failed')).toBe(true);
  }, 60_000);

  const algorithmRan = (jobId: string): boolean => backend.calls.some((c) => c.jobId === jobId && c.step === 'algorithm');

  test('when both orders carry our fee covering the job, then the job runs to the end', async () => {
    const view = await run(await order(dataset, { amount: feeAmount(1, env.maxJobDuration) }), await order(algorithm, { amount: 0n }));
    expect(view.status).toBe(70);
    expect(algorithmRan(view.jobId)).toBe(true);
  });

  test('when the fee does not cover the job, then it ends as data provisioning failed with fees_not_paid and runs nothing', async () => {
    const view = await run(await order(dataset, { amount: feeAmount(1, 60) }), await order(algorithm, { amount: 0n }));
    expect(view.status).toBe(31);
    expect(view.terminationDetails?.reason).toMatch(/fees paid/);
    expect(algorithmRan(view.jobId)).toBe(false);
  });

  test('when the algorithm order was made by someone else for them, then the job fails as algorithm provisioning failed', async () => {
    const datasetTx = await order(dataset, { amount: feeAmount(1, env.maxJobDuration) });
    const stranger = chain.signers[3]!;
    const t = now();
    const fee = signProviderFee(providerWallet, { environment: env.id, datatoken: algorithm.datatokenAddress, serviceId: 'compute', feeToken: chain.contracts.Ocean, amount: 0n, validUntil: t + 600, now: t });
    await send(contractAt('ERC20Template', algorithm.datatokenAddress, consumer), 'transfer', stranger.address, parseEther('1'));
    const strangerOrder = (await startOrder(stranger, algorithm.datatokenAddress, stranger.address, 0, fee)).hash;
    const view = await run(datasetTx, strangerOrder);
    expect(view.status).toBe(32);
    expect(view.terminationDetails?.reason).toMatch(/neither consumer nor payer/);
    expect(algorithmRan(view.jobId)).toBe(false);
  });
});
