import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as OceanLib from '../../node_modules/@oceanprotocol/lib/dist/src/index';
import type { ComputeAlgorithm, ComputeAsset, ComputeJob, Config, DDO, ProviderComputeInitialize } from '../../node_modules/@oceanprotocol/lib/dist/src/index';
import { ethers as ethers5 } from 'ethers-v5';
import { parseEther } from 'ethers';
import { contractAt, read, send } from '../../src/chain/contracts';
import { writeContractsFile } from '../../tools/chain/deploy';
import { waitFor } from '../integration/helpers';
import { startChain, type TestChain } from '../helpers/chain';
import { type Stack, serveFiles, startStack } from '../helpers/stack';

// The package's "exports" map has no "types" condition, so node16 resolution cannot see its
// declarations: the types are taken by path, the code is loaded as any consumer loads it.
const { Aquarius, Datatoken, ProviderInstance, Nft, NftFactory, ZERO_ADDRESS, approveWei, downloadFile, generateDid, getEventFromTx, getHash } =
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@oceanprotocol/lib') as typeof OceanLib;

/**
 * Ocean's own client library (@oceanprotocol/lib 3.3.0 on ethers 5), used the way its compute example
 * uses it, against our whole stack (API + worker processes, Temporal, sandbox) and a hardhat node with
 * Ocean's contracts: publish with NftFactory/Nft, resolve through our Aquarius endpoint, initializeCompute,
 * order with the lib's helpers, start, poll, download, stop, delete. Nothing of the lib is patched.
 */
describe('@oceanprotocol/lib 3.3.0 drives this provider unmodified', () => {
  const ENV = 'lib-paid';
  const FINAL = [31, 32, 41, 42, 61, 62, 70];
  let chain: TestChain;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let contractsDir: string;
  let providerUrl: string;
  let config: Config;
  let publisher: ethers5.Wallet;
  let consumer: ethers5.Wallet;
  let rpc: ethers5.providers.JsonRpcProvider;
  let datasetDid: string;
  let algorithmDid: string;
  let datasetDdo: DDO;
  let algorithmDdo: DDO;

  const algorithmCode = [
    "const fs = require('fs');",
    "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
    "const lines = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split('\\n');",
    'let custom = {};',
    "try { custom = JSON.parse(fs.readFileSync('/data/inputs/algoCustomData.json', 'utf8')); } catch {}",
    "console.log('lines', lines.length);",
    "fs.writeFileSync('/data/outputs/count.txt', `lines=${lines.length}`);",
    'if (custom.sleepMs) setTimeout(() => {}, custom.sleepMs);',
  ].join('\n');

  /** Ocean's compute example's createAsset(), with our provider as the encrypting one. */
  async function createAsset(owner: ethers5.Wallet, ddo: DDO, url: string): Promise<string> {
    const chainId = (await owner.provider.getNetwork()).chainId;
    const factory = new NftFactory(chain.contracts.ERC721Factory, owner, chainId, config);
    const tx = await factory.createNftWithDatatoken(
      { name: 'Lib NFT', symbol: 'LNFT', templateIndex: 1, tokenURI: '', transferable: true, owner: owner.address },
      {
        templateIndex: 1,
        cap: '100000',
        feeAmount: '0',
        paymentCollector: ZERO_ADDRESS,
        feeToken: ZERO_ADDRESS,
        minter: owner.address,
        mpFeeAddress: ZERO_ADDRESS,
      },
    );
    const receipt = await tx.wait();
    const nftAddress = String(getEventFromTx(receipt, 'NFTCreated').args.newTokenAddress);
    const datatokenAddress = String(getEventFromTx(receipt, 'TokenCreated').args.newTokenAddress);
    const files = { datatokenAddress, nftAddress, files: [{ type: 'url', url, method: 'GET' }] };
    const service = ddo.services[0]!;
    service.files = await ProviderInstance.encrypt(files, chainId, providerUrl);
    service.datatokenAddress = datatokenAddress;
    service.serviceEndpoint = providerUrl;
    ddo.nftAddress = nftAddress;
    ddo.chainId = chainId;
    ddo.id = generateDid(nftAddress, chainId);
    const encryptedDdo = await ProviderInstance.encrypt(ddo, chainId, providerUrl);
    const nft = new Nft(owner, chainId, config);
    const setTx = await nft.setMetadata(
      nftAddress,
      owner.address,
      0,
      providerUrl,
      '',
      ethers5.utils.hexlify(2),
      encryptedDdo,
      `0x${getHash(JSON.stringify(ddo))}`,
    );
    expect(setTx).not.toBeNull(); // the lib's sendTx answers null when the transaction failed
    await setTx.wait();
    return ddo.id;
  }

  /** Ocean's compute example's handleOrder(): reuse a valid order, else startOrder with our provider fee. */
  async function handleOrder(
    order: ProviderComputeInitialize,
    datatokenAddress: string,
    payer: ethers5.Wallet,
    consumerAddress: string,
    serviceIndex: number,
  ): Promise<string> {
    const datatoken = new Datatoken(payer, (await payer.provider.getNetwork()).chainId, config);
    if (order.providerFee && order.providerFee.providerFeeAmount) {
      await approveWei(payer, config, payer.address, order.providerFee.providerFeeToken, datatokenAddress, order.providerFee.providerFeeAmount);
    }
    if (order.validOrder) {
      if (!order.providerFee) return order.validOrder;
      const tx = await datatoken.reuseOrder(datatokenAddress, order.validOrder, order.providerFee);
      const reused = await tx.wait();
      return String(getEventFromTx(reused, 'OrderReused').transactionHash);
    }
    const tx = await datatoken.startOrder(datatokenAddress, consumerAddress, serviceIndex, order.providerFee!);
    expect(tx).not.toBeNull(); // null: the datatoken refused the order (e.g. our fee signature)
    const receipt = await tx.wait();
    return String(getEventFromTx(receipt, 'OrderStarted').transactionHash);
  }

  const statusOf = async (jobId: string): Promise<ComputeJob> => {
    const jobs = await ProviderInstance.computeStatus(providerUrl, consumer.address, jobId, datasetDid);
    const job = Array.isArray(jobs) ? jobs[0] : jobs;
    if (!job) throw new Error(`computeStatus did not list job ${jobId}`);
    return job;
  };

  beforeAll(async () => {
    chain = await startChain();
    contractsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-lib-'));
    const contractsFile = path.join(contractsDir, 'address.json');
    writeContractsFile(contractsFile, chain.contracts);
    data = await serveFiles({ 'lines.txt': 'one\ntwo\nthree\n', 'count.js': algorithmCode });
    stack = await startStack({
      environments: [
        { id: ENV, priceMin: 1, maxJobs: 2, ramGB: 0.5, maxJobDuration: 600 },
        { id: 'lib-free', maxJobs: 2, ramGB: 0.5, maxJobDuration: 600 },
      ],
      env: { C2D_CHAIN_RPC_URL: chain.rpcUrl, C2D_CONTRACTS_FILE: contractsFile, C2D_CHAIN_ID: String(chain.chainId) },
    });
    // the lib joins providerUri + path naively: a trailing slash, as Ocean's own configs have it, gives //api
    providerUrl = `${stack.baseUrl}/`;
    rpc = new ethers5.providers.JsonRpcProvider(chain.rpcUrl, chain.chainId);
    rpc.pollingInterval = 50;
    publisher = new ethers5.Wallet(chain.signers[1]!.privateKey, rpc);
    consumer = new ethers5.Wallet(chain.signers[2]!.privateKey, rpc);
    // the lib would read Ocean's published addresses for chain 8996: give it ours
    config = {
      chainId: chain.chainId,
      network: 'development',
      nodeUri: chain.rpcUrl,
      providerUri: providerUrl,
      metadataCacheUri: stack.baseUrl,
      nftFactoryAddress: chain.contracts.ERC721Factory,
      oceanTokenAddress: chain.contracts.Ocean,
      fixedRateExchangeAddress: chain.contracts.FixedPrice,
      dispenserAddress: chain.contracts.Dispenser,
      opfCommunityFeeCollector: chain.contracts.OPFCommunityFeeCollector,
      gasFeeMultiplier: 1,
    } as Config;
    await send(contractAt('OceanToken', chain.contracts.Ocean, chain.signers[0]!), 'mint', consumer.address, parseEther('1000'));

    const now = new Date().toISOString();
    algorithmDdo = {
      '@context': ['https://w3id.org/did/v1'],
      id: '',
      version: '4.1.0',
      chainId: chain.chainId,
      nftAddress: '0x0',
      metadata: {
        created: now,
        updated: now,
        type: 'algorithm',
        name: 'line counter',
        description: 'counts lines',
        author: 'lib test',
        license: 'MIT',
        algorithm: {
          language: 'Node.js',
          version: '1.0.0',
          container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'2'.repeat(64)}` },
        },
      },
      services: [{ id: 'algo-access', type: 'access', files: '', datatokenAddress: '0x0', serviceEndpoint: '', timeout: 3600 }],
    };
    algorithmDid = await createAsset(publisher, algorithmDdo, data.url('count.js'));
    // the publisher pins the algorithm as it is now (§ trust rules): its file's sha256, and sha256(entrypoint + image checksum)
    const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
    const container = algorithmDdo.metadata.algorithm!.container;
    const trustedAlgorithm = {
      did: algorithmDid,
      filesChecksum: sha256(algorithmCode),
      containerSectionChecksum: sha256(container.entrypoint + container.checksum),
    };
    datasetDdo = {
      '@context': ['https://w3id.org/did/v1'],
      id: '',
      version: '4.1.0',
      chainId: chain.chainId,
      nftAddress: '0x0',
      metadata: { created: now, updated: now, type: 'dataset', name: 'lines', description: 'three lines', author: 'lib test', license: 'MIT' },
      services: [
        {
          id: 'compute-1',
          type: 'compute',
          files: '',
          datatokenAddress: '0x0',
          serviceEndpoint: '',
          timeout: 3600,
          compute: {
            allowRawAlgorithm: false,
            allowNetworkAccess: false,
            publisherTrustedAlgorithmPublishers: [],
            publisherTrustedAlgorithms: [trustedAlgorithm],
          },
        },
      ],
    };
    datasetDid = await createAsset(publisher, datasetDdo, data.url('lines.txt'));

    // the example mints 10 datatokens of each asset to the consumer
    const publisherDatatoken = new Datatoken(publisher, chain.chainId, config);
    await (await publisherDatatoken.mint(datasetDdo.services[0]!.datatokenAddress, publisher.address, '10', consumer.address)).wait();
    await (await publisherDatatoken.mint(algorithmDdo.services[0]!.datatokenAddress, publisher.address, '10', consumer.address)).wait();
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    rpc?.removeAllListeners();
    await chain?.stop();
    if (contractsDir) fs.rmSync(contractsDir, { recursive: true, force: true });
  });

  it('when the lib asks for the root document, then it finds a valid provider and every endpoint by name', async () => {
    expect(await ProviderInstance.isValidProvider(providerUrl)).toBe(true);
    const endpoints = await ProviderInstance.getServiceEndpoints(providerUrl, await ProviderInstance.getEndpoints(providerUrl));
    const names = endpoints.map((e) => e.serviceName);
    for (const name of [
      'nonce',
      'encrypt',
      'decrypt',
      'initializeCompute',
      'computeEnvironments',
      'computeStart',
      'computeStatus',
      'computeStop',
      'computeDelete',
      'computeResult',
      'fileinfo',
    ])
      expect(names).toContain(name);
  });

  it('when the lib resolves the published DDOs through our Aquarius endpoint, then it gets them as published, files still encrypted', async () => {
    const aquarius = new Aquarius(stack.baseUrl);
    const dataset = await aquarius.resolve(datasetDid);
    expect(dataset).toMatchObject({ id: datasetDid, nftAddress: datasetDdo.nftAddress, chainId: chain.chainId, nft: { owner: publisher.address, state: 0 } });
    expect(dataset.services[0]).toMatchObject({
      id: 'compute-1',
      type: 'compute',
      files: datasetDdo.services[0]!.files,
      datatokenAddress: datasetDdo.services[0]!.datatokenAddress,
    });
    expect(JSON.stringify(dataset)).not.toContain(data.url('lines.txt'));
    expect((await aquarius.waitForAqua(algorithmDid)).metadata).toMatchObject({ type: 'algorithm', name: 'line counter' });
    // a file check through the lib works on the on-chain asset, and never shows the location
    const info = await ProviderInstance.checkDidFiles(datasetDid, 'compute-1', providerUrl);
    expect(info).toEqual([expect.objectContaining({ index: 0, valid: true })]);
    expect(JSON.stringify(info)).not.toContain('lines.txt');
  });

  it('when a consumer runs the compute example (initialize, order, start, poll, download), then the job finishes with its output; a second job reuses the orders and is stopped; the first is deleted', async () => {
    const envs = await ProviderInstance.getComputeEnvironments(providerUrl);
    const env = envs[chain.chainId]?.find((e) => e.id === ENV);
    expect(env).toMatchObject({ id: ENV, priceMin: 1, feeToken: chain.contracts.Ocean });
    // the fee must cover the environment's maxJobDuration (600 s): the consumer asks for 15 minutes
    const validUntil = Math.floor(Date.now() / 1000) + 15 * 60;
    const assets: ComputeAsset[] = [{ documentId: datasetDid, serviceId: 'compute-1' }];
    const algo: ComputeAlgorithm = { documentId: algorithmDid, serviceId: 'algo-access' };

    const init = await ProviderInstance.initializeCompute(assets, algo, env!.id, validUntil, providerUrl, consumer.address);
    const fee = init.datasets![0]!.providerFee!;
    expect(fee).toMatchObject({ providerFeeAddress: stack.providerWallet.address, providerFeeToken: chain.contracts.Ocean, validUntil });
    // priceMin 1 OCEAN for the ~15 minutes until validUntil
    expect(BigInt(fee.providerFeeAmount)).toBeGreaterThan(parseEther('14.9'));
    expect(BigInt(fee.providerFeeAmount)).toBeLessThanOrEqual(parseEther('15'));
    expect(init.algorithm!.providerFee).toMatchObject({ providerFeeAmount: '0' });
    const oceanOfProvider = async (): Promise<bigint> =>
      BigInt(String(await read(contractAt('OceanToken', chain.contracts.Ocean, chain.provider), 'balanceOf', stack.providerWallet.address)));
    const oceanBefore = await oceanOfProvider();
    algo.transferTxId = await handleOrder(init.algorithm!, algorithmDdo.services[0]!.datatokenAddress, consumer, env!.consumerAddress, 0);
    assets[0]!.transferTxId = await handleOrder(init.datasets![0]!, datasetDdo.services[0]!.datatokenAddress, consumer, env!.consumerAddress, 0);
    expect((await oceanOfProvider()) - oceanBefore).toBe(BigInt(fee.providerFeeAmount)); // the fee reached the provider

    const started = await ProviderInstance.computeStart(providerUrl, consumer, env!.id, assets[0]!, algo);
    if (!started) throw new Error(`computeStart answered non-2xx (the lib then returns null):\n${stack.output()}`);
    const job = (Array.isArray(started) ? started[0] : started)!;
    expect(job).toMatchObject({ owner: consumer.address.toLowerCase(), inputDID: [datasetDid], algoDID: algorithmDid });
    const done = await waitFor(
      'the job to end',
      async () => {
        const j = await statusOf(job.jobId);
        return FINAL.includes(j.status) ? j : null;
      },
      60_000,
      200,
    );
    if (done.status !== 70) console.error(JSON.stringify(done), stack.output());
    expect(done).toMatchObject({ status: 70, agreementId: assets[0]!.transferTxId });
    const results = done.results as unknown as { filename: string; type: string }[];
    const index = results.findIndex((r) => r.filename === 'count.txt');
    expect(index).toBeGreaterThanOrEqual(0);
    const url = await ProviderInstance.getComputeResultUrl(providerUrl, consumer, job.jobId, index);
    const file = await downloadFile(url, index);
    expect(Buffer.from(file.data).toString('utf8')).toBe('lines=3');
    expect(file.filename).toBe('count.txt');

    // a second job within validUntil: initializeCompute says both orders are still valid, no new transaction
    const again = await ProviderInstance.initializeCompute(
      [{ documentId: datasetDid, serviceId: 'compute-1', transferTxId: assets[0]!.transferTxId }],
      { ...algo },
      env!.id,
      validUntil,
      providerUrl,
      consumer.address,
    );
    expect(again.datasets![0]).toEqual({ validOrder: assets[0]!.transferTxId });
    expect(again.algorithm).toEqual({ validOrder: algo.transferTxId });
    const blockBefore = await rpc.getBlockNumber();
    const reused = {
      ...assets[0]!,
      transferTxId: await handleOrder(again.datasets![0]!, datasetDdo.services[0]!.datatokenAddress, consumer, env!.consumerAddress, 0),
    };
    expect(reused.transferTxId).toBe(assets[0]!.transferTxId);
    expect(await rpc.getBlockNumber()).toBe(blockBefore);

    // asked for longer than the fee paid covers: the order is still good, only a new fee is due → the lib's reuseOrder
    const later = await ProviderInstance.initializeCompute([reused], { ...algo }, env!.id, validUntil + 120, providerUrl, consumer.address);
    expect(later.datasets![0]).toMatchObject({
      validOrder: assets[0]!.transferTxId,
      datatoken: datasetDdo.services[0]!.datatokenAddress,
      providerFee: { validUntil: validUntil + 120 },
    });
    reused.transferTxId = await handleOrder(later.datasets![0]!, datasetDdo.services[0]!.datatokenAddress, consumer, env!.consumerAddress, 0);
    expect(reused.transferTxId).not.toBe(assets[0]!.transferTxId);

    // this one sleeps: the lib stops it while it runs, then deletes its results
    const second = await ProviderInstance.computeStart(providerUrl, consumer, env!.id, reused, { ...algo, algocustomdata: { sleepMs: 60_000 } });
    if (!second) throw new Error(`second computeStart answered non-2xx:\n${stack.output()}`);
    const secondJob = (Array.isArray(second) ? second[0] : second)!;
    await waitFor('status 40', async () => (await statusOf(secondJob.jobId)).status === 40, 60_000, 100);
    const stopped = await ProviderInstance.computeStop(datasetDid, consumer.address, secondJob.jobId, providerUrl, consumer);
    expect(Array.isArray(stopped) ? stopped[0] : stopped).toMatchObject({ jobId: secondJob.jobId, stopreq: 1 });
    const ended = await waitFor(
      'stopped job to end',
      async () => {
        const j = await statusOf(secondJob.jobId);
        return FINAL.includes(j.status) ? j : null;
      },
      30_000,
      100,
    );
    expect(ended).toMatchObject({ status: 70, stopreq: 1, agreementId: reused.transferTxId });

    const deleted = await ProviderInstance.computeDelete(datasetDid, consumer, job.jobId, providerUrl);
    expect(Array.isArray(deleted) ? deleted[0] : deleted).toMatchObject({ jobId: job.jobId, removed: 1 });
    const gone = await ProviderInstance.getComputeResultUrl(providerUrl, consumer, job.jobId, index);
    await expect(downloadFile(gone, index)).rejects.toThrow('Response error');
  }, 180_000);

  it('when a consumer follows the example to the letter (the free environment, 5 minutes), then zero fees are signed, the datatoken orders accept them, and the job finishes', async () => {
    const envs = await ProviderInstance.getComputeEnvironments(providerUrl);
    const computeEnv = envs[chain.chainId]!.find((ce) => ce.priceMin === 0)!;
    expect(computeEnv).toMatchObject({ id: 'lib-free', free: true });
    const mytime = new Date();
    mytime.setMinutes(mytime.getMinutes() + 5);
    const computeValidUntil = Math.floor(mytime.getTime() / 1000);
    const assets: ComputeAsset[] = [{ documentId: datasetDid, serviceId: 'compute-1' }];
    const algo: ComputeAlgorithm = { documentId: algorithmDid, serviceId: 'algo-access' };
    const init = await ProviderInstance.initializeCompute(assets, algo, computeEnv.id, computeValidUntil, providerUrl, consumer.address);
    expect(init.datasets![0]!.providerFee).toMatchObject({ providerFeeAmount: '0', validUntil: computeValidUntil });
    algo.transferTxId = await handleOrder(init.algorithm!, algorithmDdo.services[0]!.datatokenAddress, consumer, computeEnv.consumerAddress, 0);
    assets[0]!.transferTxId = await handleOrder(init.datasets![0]!, datasetDdo.services[0]!.datatokenAddress, consumer, computeEnv.consumerAddress, 0);
    const computeJobs = await ProviderInstance.computeStart(providerUrl, consumer, computeEnv.id, assets[0]!, algo);
    if (!computeJobs) throw new Error(`computeStart answered non-2xx:\n${stack.output()}`);
    const computeJobId = (Array.isArray(computeJobs) ? computeJobs[0] : computeJobs)!.jobId;
    const done = await waitFor(
      'the job to end',
      async () => {
        const j = await statusOf(computeJobId);
        return FINAL.includes(j.status) ? j : null;
      },
      60_000,
      200,
    );
    expect(done).toMatchObject({ status: 70, environment: 'lib-free' });
    const file = await downloadFile(await ProviderInstance.getComputeResultUrl(providerUrl, consumer, computeJobId, 0), 0);
    expect(Buffer.from(file.data).toString('utf8')).toBe('lines=3');
  }, 120_000);
});
