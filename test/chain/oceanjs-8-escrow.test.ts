import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { type HDNodeWallet, parseEther, toBeHex, Wallet, ZeroAddress as ZERO } from 'ethers';
import { ProviderClient } from '../../src/client/provider-client';
import { contractAt, read, send } from '../../src/chain/contracts';
import { escrowAddress } from '../../src/chain/contracts-file';
import { escrowLockId } from '../../src/chain/escrow';
import { workflowIdForJob } from '../../src/domain/job';
import { writeContractsFile } from '../../tools/chain/deploy';
import { startChain, type TestChain } from '../helpers/chain';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { testState } from '../helpers/state';
import { nodeRaw } from '../integration/helpers';

/** The calls of @oceanprotocol/lib 8.6.2 this test makes, as declared in its types (an ES module's types, which this CommonJS project cannot import). */
interface ComputeJob {
  jobId: string;
  status: number;
  statusText: string;
  results: { filename: string }[];
  payment?: { lockTx: string | null; claimTx: string | null; cost: string | null };
}
interface Lib8 {
  ProviderInstance: {
    initializeCompute(
      assets: object[],
      algorithm: object,
      env: string,
      token: string,
      validUntil: number,
      nodeUri: string,
      consumerAddress: string,
      resources: object[],
      chainId: number,
    ): Promise<{ payment: { escrowAddress: string; payee: string; chainId: number; minLockSeconds: number; token: string; amount: string } }>;
    computeStart(
      nodeUri: string,
      signer: HDNodeWallet,
      env: string,
      datasets: object[],
      algorithm: object,
      maxJobDuration: number,
      token: string,
      resources: object[],
      chainId: number,
    ): Promise<ComputeJob | ComputeJob[]>;
    computeStatus(nodeUri: string, signer: HDNodeWallet, jobId?: string, agreementId?: string): Promise<ComputeJob | ComputeJob[]>;
    computeStreamableLogs(nodeUri: string, signer: HDNodeWallet, jobId: string): Promise<AsyncIterable<Uint8Array> | null>;
    encrypt(data: object, chainId: number, nodeUri: string, signer: HDNodeWallet): Promise<string>;
  };
  EscrowContract: new (
    address: string,
    signer: HDNodeWallet,
    network?: number,
  ) => {
    deposit(token: string, amount: string): Promise<unknown>;
    authorize(token: string, payee: string, maxLockedAmount: string, maxLockSeconds: string, maxLockCounts: string): Promise<unknown>;
  };
  NftFactory: new (
    address: string,
    signer: HDNodeWallet,
    network: number,
    config: object,
  ) => { createNftWithDatatoken(nft: object, datatoken: object): Promise<Sent> };
  Nft: new (
    signer: HDNodeWallet,
    network: number,
    config: object,
  ) => {
    setMetadata(
      nft: string,
      address: string,
      state: number,
      decryptorUrl: string,
      decryptorAddress: string,
      flags: string,
      data: string,
      hash: string,
    ): Promise<Sent>;
  };
  Datatoken: new (
    signer: HDNodeWallet,
    network: number,
    config: object,
  ) => {
    mint(datatoken: string, minter: string, amount: string, to: string): Promise<Sent>;
    startOrder(datatoken: string, consumer: string, serviceIndex: number, providerFee: object): Promise<Sent>;
  };
  getEventFromTx(receipt: unknown, event: string): { args: Record<string, unknown>; transactionHash: string };
  generateDid(nftAddress: string, chainId: number): string;
  getHash(data: string): string;
}
/** what the lib's transaction methods answer (null when the transaction failed) */
type Sent = { wait(): Promise<{ hash: string } | null> } | null;
/** initializeCompute's answer per dataset: the order to place, with this provider's fee */
interface OrderTerms {
  datatoken?: string;
  providerFee?: { providerFeeAmount: string; providerFeeToken: string };
  validOrder?: string;
}
// Loaded the way a consumer loads it, unmodified.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ProviderInstance, EscrowContract, NftFactory, Nft, Datatoken, getEventFromTx, generateDid, getHash } = require('@oceanprotocol/lib-8') as Lib8;

const FINAL = [2, 31, 32, 41, 42, 61, 62, 70];
/** an algorithm that prints the line count of each of its datasets */
const countBoth =
  "const fs = require('fs'); const n = JSON.parse(process.env.DIDS).map((d) => fs.readFileSync('/data/inputs/' + d.replace('did:op:', '') + '/0', 'utf8').trim().split('\\n').length); console.log('lines', n.join(' '));";

/**
 * A paid job of today's Ocean client (@oceanprotocol/lib 8.6.2, unmodified) through Ocean's Escrow
 * contract on a local chain: the consumer deposits and authorizes this provider with the lib's own
 * EscrowContract, initializeCompute gives the terms, computeStart locks the price, and when the job ends
 * the workflow claims the minutes the algorithm ran (status 71 meanwhile) and releases the rest.
 */
describe('@oceanprotocol/lib 8.6.2 pays a job through the Escrow contract', () => {
  let chain: TestChain;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let dir: string;
  let url: string;
  let consumer: HDNodeWallet;
  let token: string;
  let escrow: string;
  let dataset: string;
  let secondDataset: string;
  let brokenDataset: string;
  let temporal: Client;

  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-escrow-'));
    const contractsFile = path.join(dir, 'address.json');
    writeContractsFile(contractsFile, chain.contracts);
    token = chain.contracts.Ocean;
    escrow = escrowAddress(chain.contracts);
    data = await serveFiles({ 'rows.csv': 'a\nb\n', 'more.csv': 'c\nd\ne\n' });
    stack = await startStack({
      environments: [
        {
          id: 'v2-paid',
          desc: 'paid through the Escrow',
          maxJobs: 2,
          cpuNumber: 1,
          ramGB: 0.5,
          maxJobDuration: 600,
          // what a 3.x client pays in its orders' provider fee; a v2 job pays through the Escrow instead
          priceMin: 1,
          fees: { [String(chain.chainId)]: [{ feeToken: token, prices: [{ id: 'cpu', price: 1 }] }] },
        },
      ],
      env: { C2D_CHAIN_RPC_URL: chain.rpcUrl, C2D_CONTRACTS_FILE: contractsFile, C2D_CHAIN_ID: String(chain.chainId) },
    });
    url = stack.baseUrl;
    consumer = chain.signers[2]!;
    const publisher = new ProviderClient(url, new Wallet(consumer.privateKey));
    dataset = await stack.publish(publisher, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    secondDataset = await stack.publish(publisher, { type: 'dataset', name: 'more rows', urls: [data.url('more.csv')], compute: { allowRawAlgorithm: true } });
    brokenDataset = await stack.publish(publisher, { type: 'dataset', name: 'gone', urls: [data.url('missing.csv')], compute: { allowRawAlgorithm: true } });
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }) });
    // the consumer's side, as ocean.js 8.6.2 does it: tokens, an approval, a deposit and an authorization of this provider
    await send(contractAt('OceanToken', token, chain.signers[0]!), 'mint', consumer.address, parseEther('100'));
    await send(contractAt('OceanToken', token, consumer), 'approve', escrow, parseEther('100'));
    const lib = new EscrowContract(escrow, consumer, chain.chainId);
    expect(await lib.deposit(token, '10')).not.toBeNull(); // the lib answers null when a transaction failed
    const provider = ((await (await fetch(url)).json()) as { providerAddress: string }).providerAddress;
    // the provider's wallet pays the gas of its locks and claims
    await (await chain.signers[0]!.sendTransaction({ to: provider, value: parseEther('10') })).wait();
    expect(await lib.authorize(token, provider, '10', '3600', '5')).not.toBeNull();
  }, 300_000);

  afterAll(async () => {
    await temporal?.connection.close();
    await stack?.stop();
    data?.close();
    await chain?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const funds = async (): Promise<{ available: bigint; locked: bigint }> => {
    const f = (await read(contractAt('Escrow', escrow, chain.provider), 'getUserFunds', consumer.address, token)) as { available: bigint; locked: bigint };
    return { available: f.available, locked: f.locked };
  };
  const balance = async (address: string): Promise<bigint> => (await read(contractAt('OceanToken', token, chain.provider), 'balanceOf', address)) as bigint;
  const one = (jobs: ComputeJob | ComputeJob[]): ComputeJob => (Array.isArray(jobs) ? jobs[0]! : jobs);
  /** ocean.js 8.6.2's paid computeStart on one dataset with a raw algorithm, paid in the fee token */
  const paidStart = async (documentIds: string | string[], rawcode: string, maxJobDuration: number): Promise<ComputeJob> =>
    one(
      await ProviderInstance.computeStart(
        url,
        consumer,
        'v2-paid',
        [documentIds].flat().map((documentId) => ({ documentId, serviceId: 'compute' })),
        nodeRaw(rawcode),
        maxJobDuration,
        token,
        [],
        chain.chainId,
      ),
    );
  const untilFinal = async (jobId: string, timeoutMs = 60_000): Promise<ComputeJob> => {
    for (const t = Date.now(); ; await new Promise((r) => setTimeout(r, 200))) {
      const job = one(await ProviderInstance.computeStatus(url, consumer, jobId));
      if (FINAL.includes(job.status)) return job;
      if (Date.now() - t > timeoutMs) {
        const pending = (await temporal.workflow.getHandle(workflowIdForJob(jobId)).describe()).raw.pendingActivities ?? [];
        throw new Error(`job ${jobId} still at ${job.status}: ${JSON.stringify(pending.map((a) => [a.activityType?.name, a.lastFailure?.message]))}`);
      }
    }
  };
  /** the statuses the job's workflow recorded, in order */
  const statuses = async (jobId: string): Promise<number[]> => {
    const history = await temporal.workflow.getHandle(workflowIdForJob(jobId)).fetchHistory();
    return (history.events ?? []).flatMap((e) => {
      const field = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.C2DStatus;
      return field?.data ? [Number(JSON.parse(Buffer.from(field.data).toString()))] : [];
    });
  };

  test('when a consumer pays a job, then the start locks the price, the end claims the minute it ran (71, then 70) and the rest goes back', async () => {
    const terms = await ProviderInstance.initializeCompute(
      [{ documentId: dataset, serviceId: 'compute' }],
      nodeRaw("console.log('paid')"),
      'v2-paid',
      token,
      120,
      url,
      consumer.address,
      [],
      chain.chainId,
    );
    // 1 token per cpu-minute, 1 cpu, 2 minutes of maxJobDuration
    expect(terms.payment).toMatchObject({
      escrowAddress: escrow,
      chainId: chain.chainId,
      token,
      amount: parseEther('2').toString(),
      minLockSeconds: 120 + 1800,
    });
    const before = await funds();
    const providerBefore = await balance(terms.payment.payee);
    // two datasets: the algorithm counts the lines of both
    const started = await paidStart([dataset, secondDataset], countBoth, 120);
    const done = await untilFinal(started.jobId);
    expect({ status: done.status, statusText: done.statusText }).toEqual({ status: 70, statusText: 'Job finished' });
    expect(done.payment).toMatchObject({
      lockTx: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      claimTx: expect.stringMatching(/^0x[0-9a-f]{64}$/),
      cost: parseEther('1').toString(),
    });
    expect(await statuses(started.jobId)).toEqual(expect.arrayContaining([40, 71, 70]));
    const log = await ProviderInstance.computeStreamableLogs(url, consumer, started.jobId);
    let text = '';
    for await (const chunk of log!) text += Buffer.from(chunk).toString();
    expect(text).toBe('lines 2 3\n');
    // one minute claimed, nothing left locked; the provider got it less Ocean's 0.1 % community fee
    expect(await funds()).toEqual({ available: before.available - parseEther('1'), locked: 0n });
    expect((await balance(terms.payment.payee)) - providerBefore).toBe(parseEther('0.999'));
  }, 180_000);

  test('when the lib publishes two datasets on chain (its own provider-encrypted DDOs, setMetadata) and the consumer orders them, then a paid job on both runs to 70 through 71, and its orders fund that job only', async () => {
    const publisher = chain.signers[1]!;
    const config = {
      chainId: chain.chainId,
      network: 'development',
      nodeUri: chain.rpcUrl,
      oceanNodeUri: url,
      nftFactoryAddress: chain.contracts.ERC721Factory,
      oceanTokenAddress: token,
      fixedRateExchangeAddress: chain.contracts.FixedPrice,
      dispenserAddress: chain.contracts.Dispenser,
      opfCommunityFeeCollector: chain.contracts.OPFCommunityFeeCollector,
      escrow,
      gasFeeMultiplier: 1,
      sdk: 'evm',
    };
    const mined = async (sent: Sent): Promise<{ hash: string }> => {
      expect(sent).not.toBeNull(); // the lib answers null when a transaction failed
      const receipt = await sent!.wait();
      expect(receipt).not.toBeNull();
      return receipt!;
    };
    /** ocean.js 8's publishing: NFT + datatoken, the files and then the DDO encrypted by this provider (signed requests), setMetadata */
    const publish = async (name: string, fileUrl: string): Promise<{ did: string; datatoken: string }> => {
      const factory = new NftFactory(chain.contracts.ERC721Factory, publisher, chain.chainId, config);
      const created = await mined(
        await factory.createNftWithDatatoken(
          { name, symbol: 'C2D8', templateIndex: 1, tokenURI: '', transferable: true, owner: publisher.address },
          {
            templateIndex: 1,
            cap: '1000',
            feeAmount: '0',
            paymentCollector: publisher.address,
            feeToken: token,
            minter: publisher.address,
            mpFeeAddress: ZERO,
          },
        ),
      );
      const nftAddress = String(getEventFromTx(created, 'NFTCreated').args.newTokenAddress);
      const datatoken = String(getEventFromTx(created, 'TokenCreated').args.newTokenAddress);
      const files = await ProviderInstance.encrypt(
        { nftAddress, datatokenAddress: datatoken, files: [{ type: 'url', url: fileUrl, method: 'GET' }] },
        chain.chainId,
        url,
        publisher,
      );
      const now = new Date().toISOString();
      const ddo = {
        '@context': ['https://w3id.org/did/v1'],
        id: generateDid(nftAddress, chain.chainId),
        version: '4.1.0',
        chainId: chain.chainId,
        nftAddress,
        metadata: { created: now, updated: now, type: 'dataset', name, description: name, author: 'ocean.js 8 test', license: 'MIT' },
        services: [
          {
            id: 'compute',
            type: 'compute',
            files,
            datatokenAddress: datatoken,
            serviceEndpoint: url,
            timeout: 3600,
            compute: { allowRawAlgorithm: true, allowNetworkAccess: false, publisherTrustedAlgorithmPublishers: [], publisherTrustedAlgorithms: [] },
          },
        ],
      };
      const encryptedDdo = await ProviderInstance.encrypt(ddo, chain.chainId, url, publisher);
      const nft = new Nft(publisher, chain.chainId, config);
      await mined(await nft.setMetadata(nftAddress, publisher.address, 0, url, '', toBeHex(2), encryptedDdo, `0x${getHash(JSON.stringify(ddo))}`));
      await mined(await new Datatoken(publisher, chain.chainId, config).mint(datatoken, publisher.address, '10', consumer.address));
      return { did: ddo.id, datatoken };
    };
    const assets = [await publish('rows on chain', data.url('rows.csv')), await publish('more rows on chain', data.url('more.csv'))];
    const refs = assets.map((a) => ({ documentId: a.did, serviceId: 'compute' }));
    const terms = (await ProviderInstance.initializeCompute(
      refs,
      nodeRaw(countBoth),
      'v2-paid',
      token,
      120,
      url,
      consumer.address,
      [],
      chain.chainId,
    )) as Awaited<ReturnType<Lib8['ProviderInstance']['initializeCompute']>> & { datasets: OrderTerms[] };
    // the orders carry no fee for the compute (the Escrow pays it); they grant access to each dataset
    expect(terms.datasets.map((d) => ({ datatoken: d.datatoken?.toLowerCase(), fee: d.providerFee?.providerFeeAmount }))).toEqual(
      assets.map((a) => ({ datatoken: a.datatoken.toLowerCase(), fee: '0' })),
    );
    const consumerDatatoken = new Datatoken(consumer, chain.chainId, config);
    const orders: string[] = [];
    for (const [i, asset] of assets.entries())
      orders.push((await mined(await consumerDatatoken.startOrder(asset.datatoken, consumer.address, 0, terms.datasets[i]!.providerFee!))).hash);

    const before = await funds();
    const start = async (): Promise<ComputeJob> =>
      one(
        await ProviderInstance.computeStart(
          url,
          consumer,
          'v2-paid',
          refs.map((r, i) => ({ ...r, transferTxId: orders[i] })),
          nodeRaw(countBoth),
          120,
          token,
          [],
          chain.chainId,
        ),
      );
    const started = await start();
    const done = await untilFinal(started.jobId);
    expect({ status: done.status, statusText: done.statusText }).toEqual({ status: 70, statusText: 'Job finished' });
    expect(await statuses(started.jobId)).toEqual(expect.arrayContaining([40, 71, 70]));
    expect(done.payment).toMatchObject({ claimTx: expect.stringMatching(/^0x[0-9a-f]{64}$/), cost: parseEther('1').toString() });
    const log = await ProviderInstance.computeStreamableLogs(url, consumer, started.jobId);
    let text = '';
    for await (const chunk of log!) text += Buffer.from(chunk).toString();
    expect(text).toBe('lines 2 3\n');
    expect(await funds()).toEqual({ available: before.available - parseEther('1'), locked: 0n });
    // the consumer finds the job by its order (agreementId), as ocean.js 8 asks
    const byOrder = [await ProviderInstance.computeStatus(url, consumer, undefined, orders[0])].flat();
    expect(byOrder.map((j) => j.jobId)).toEqual([started.jobId]);
    // an order funds one job: the same orders again are refused before anything is locked
    await expect(start()).rejects.toThrow(/already funded job/);
    expect(await funds()).toEqual({ available: before.available - parseEther('1'), locked: 0n });
  }, 240_000);

  test('when a paid job fails before its algorithm runs, then nothing is claimed and the whole lock goes back', async () => {
    const before = await funds();
    const started = await paidStart(brokenDataset, "console.log('never')", 120);
    const done = await untilFinal(started.jobId);
    expect(done.status).toBe(31);
    expect(done.payment).toMatchObject({ lockTx: expect.stringMatching(/^0x/), cost: '0' });
    expect(await funds()).toEqual(before);
  }, 180_000);

  test('when the consumer has not deposited enough, then the start is refused with what to do, and nothing is locked', async () => {
    const before = await funds();
    await expect(paidStart(dataset, "console.log('x')", 600)).rejects.toThrow(/authorization leaves|deposit more|authorize/);
    expect(await funds()).toEqual(before);
  });

  test('when the worker is killed (-9) between lock and claim and the chain stops answering for 20 s during the claim, then the job still ends 70 with exactly one lock and one claim', async () => {
    const before = await funds();
    const started = await paidStart(dataset, "setTimeout(() => console.log('ran through it all'), 6000);", 120);
    for (
      const t = Date.now();
      one(await ProviderInstance.computeStatus(url, consumer, started.jobId)).status !== 40;
      await new Promise((r) => setTimeout(r, 100))
    )
      if (Date.now() - t > 60_000) throw new Error('the algorithm did not start');
    // locked, algorithm running: the worker dies, and the chain goes silent before the claim comes
    stack.worker.kill('SIGKILL');
    chain.node.process.kill('SIGSTOP');
    const seen = new Set<number>();
    try {
      stack.startWorker();
      // the new worker re-attaches to the algorithm, publishes, and the claim meets the silent chain: 71 until it answers
      for (const t = Date.now(); Date.now() - t < 20_000; await new Promise((r) => setTimeout(r, 500)))
        seen.add(one(await ProviderInstance.computeStatus(url, consumer, started.jobId)).status);
    } finally {
      chain.node.process.kill('SIGCONT');
    }
    expect(seen).toContain(71);
    const done = await untilFinal(started.jobId, 240_000);
    expect(done.status).toBe(70);
    expect(done.payment).toMatchObject({ claimTx: expect.stringMatching(/^0x[0-9a-f]{64}$/), cost: parseEther('1').toString() });
    // on chain: one lock and one claim of this job, the rest back with the consumer
    const escrowContract = contractAt('Escrow', escrow, chain.provider);
    const id = escrowLockId(started.jobId);
    const ofJob = async (event: 'Lock' | 'Claimed'): Promise<number> =>
      (await escrowContract.queryFilter(escrowContract.filters[event]!(), 0)).filter(
        (l) => 'args' in l && (l.args as unknown as { jobId: bigint }).jobId === id,
      ).length;
    expect({ locks: await ofJob('Lock'), claims: await ofJob('Claimed') }).toEqual({ locks: 1, claims: 1 });
    expect(await funds()).toEqual({ available: before.available - parseEther('1'), locked: 0n });
  }, 360_000);
});
