import { createHash } from 'node:crypto';
import { type BaseWallet, HDNodeWallet, Mnemonic, type JsonRpcProvider, Wallet, hexlify, parseEther, toUtf8Bytes } from 'ethers';
import { contractAt, read, send } from '../../src/chain/contracts';
import { type OceanContracts, readContractsFile } from '../../src/chain/contracts-file';
import { assetDid } from '../../src/chain/did';
import type { ProviderFee } from '../../src/chain/provider-fee';
import { rpcProvider } from '../../src/chain/rpc';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { trustedAlgorithm } from '../catalog/catalog-publisher';
import { HARDHAT_MNEMONIC } from '../chain/hardhat-node';
import { startOrder } from '../chain/order-client';
import { createNftWithDatatoken, mintDatatokens } from '../chain/publish';

/**
 * The paid half of `npm run demo`, Ocean's standard flow against our provider, over the chain and the
 * wire contract only: a publisher mints a data NFT with a datatoken for a dataset and for an algorithm,
 * has our /encrypt encrypt their files and their DDOs and puts the DDOs on chain with setMetaData; the
 * consumer asks initializeCompute for provider fees, orders both datatokens with them (startOrder), starts
 * the job in a priced environment, and downloads the result.
 */

export interface PaidDemoOptions {
  /** the provider's base URL */
  base: string;
  chainId: number;
  rpcUrl: string;
  contractsFile: string;
  /** the consumer's client (its wallet is funded here) */
  client: ProviderClient;
  environment: { id: string; priceMin: number; maxJobDuration: number; consumerAddress?: string };
  dataUrl: string;
  algoUrl: string;
  /** follows the job until it ends (status lines, live log) */
  follow: (jobId: string) => Promise<JobView>;
  /** where the narration goes (default: stdout) */
  log?: (line: string) => void;
}

interface Initialized {
  datatoken?: string;
  providerFee?: ProviderFee;
  validOrder?: string;
}

/** POST /encrypt with arbitrary bytes (a files object, a DDO), as Ocean's publish flow does. */
async function encryptWithProvider(base: string, chainId: number, plain: Uint8Array): Promise<string> {
  const res = await fetch(`${base}/api/services/encrypt?chainId=${chainId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: plain,
  });
  if (res.status !== 201) throw new Error(`/encrypt answered ${res.status}: ${await res.text()}`);
  return res.text();
}

async function publishOnChain(
  o: PaidDemoOptions,
  publisher: BaseWallet,
  contracts: OceanContracts,
  providerAddress: string,
  spec: { type: 'dataset' | 'algorithm'; name: string; url: string; compute?: Record<string, unknown> },
): Promise<{ did: string; datatoken: string }> {
  const { nftAddress, datatokenAddress } = await createNftWithDatatoken(publisher, contracts, {
    name: spec.name,
    symbol: spec.type === 'dataset' ? 'DEMO-D' : 'DEMO-A',
  });
  const did = assetDid(nftAddress, o.chainId);
  const files = await encryptWithProvider(
    o.base,
    o.chainId,
    toUtf8Bytes(JSON.stringify({ nftAddress, datatokenAddress, files: [{ type: 'url', url: spec.url, method: 'GET' }] })),
  );
  const now = new Date().toISOString();
  const ddo = {
    '@context': ['https://w3id.org/did/v1'],
    id: did,
    version: '4.1.0',
    chainId: o.chainId,
    nftAddress,
    metadata: {
      created: now,
      updated: now,
      type: spec.type,
      name: spec.name,
      description: `demo ${spec.type}`,
      author: 'demo publisher',
      license: 'CC-BY',
      ...(spec.type === 'algorithm' ? { algorithm: { language: 'node', version: '1.0.0', container: ALGO_CONTAINER } } : {}),
    },
    services: [
      { id: 'compute', type: 'compute', files, datatokenAddress, serviceEndpoint: o.base, timeout: 0, ...(spec.compute ? { compute: spec.compute } : {}) },
    ],
  };
  const plain = toUtf8Bytes(JSON.stringify(ddo));
  const encrypted = await encryptWithProvider(o.base, o.chainId, plain);
  const hash = `0x${createHash('sha256').update(plain).digest('hex')}`;
  // flags 0x02: the DDO is encrypted for the provider named in metaDataDecryptorAddress
  await send(contractAt('ERC721Template', nftAddress, publisher), 'setMetaData', 0, o.base, providerAddress, '0x02', hexlify(encrypted), hash, []);
  return { did, datatoken: datatokenAddress };
}

/** Order a datatoken with the fee initializeCompute signed, unless the order is still valid as it is. */
async function order(log: (line: string) => void, consumer: BaseWallet, orderConsumer: string, item: Initialized, what: string): Promise<string> {
  if (item.validOrder && !item.providerFee) return item.validOrder;
  if (!item.datatoken || !item.providerFee) throw new Error(`initializeCompute gave no fee for the ${what}`);
  const receipt = await startOrder(consumer, item.datatoken, orderConsumer, 0, item.providerFee);
  log(`  startOrder ${what}: tx ${receipt.hash} (provider fee ${item.providerFee.providerFeeAmount} wei of ${item.providerFee.providerFeeToken})`);
  return receipt.hash;
}

export interface PaidDemoResult {
  job: JobView;
  datasetTx: string;
  algorithmTx: string;
  /** fee-token base units the provider received for the orders */
  feeReceived: bigint;
}

/** the algorithm's container, as published and as the dataset's trust entry pins it */
const ALGO_CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${createHash('sha256').update('node:20').digest('hex')}` };

export async function paidDemo(o: PaidDemoOptions): Promise<PaidDemoResult> {
  const log = o.log ?? ((line: string) => console.log(line));
  const provider: JsonRpcProvider = rpcProvider(o.rpcUrl, o.chainId, 100);
  try {
    const contracts = readContractsFile(o.contractsFile, o.chainId);
    const mnemonic = Mnemonic.fromPhrase(HARDHAT_MNEMONIC);
    const account = (i: number): HDNodeWallet => HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`).connect(provider);
    const [funder, publisher] = [account(0), account(1)];
    const consumer = new Wallet(o.client.wallet.privateKey, provider);
    const root = (await (await fetch(`${o.base}/`)).json()) as { providerAddresses?: Record<string, string>; providerAddress?: string };
    const providerAddress = root.providerAddresses?.[String(o.chainId)] ?? root.providerAddress ?? Object.values(root.providerAddresses ?? {})[0];
    if (!providerAddress) throw new Error('the root document names no provider address');

    // the consumer: gas money and fee tokens from the dev chain's funded deployer (who owns the Ocean token)
    await (await funder.sendTransaction({ to: consumer.address, value: parseEther('1') })).wait();
    await send(contractAt('OceanToken', contracts.Ocean, funder), 'mint', consumer.address, parseEther('100'));

    const algorithm = await publishOnChain(o, publisher, contracts, providerAddress, { type: 'algorithm', name: 'CSV summary (on chain)', url: o.algoUrl });
    // the publisher pins the algorithm as reviewed: its file's content and its container
    const reviewed = Buffer.from(await (await fetch(o.algoUrl)).arrayBuffer());
    const dataset = await publishOnChain(o, publisher, contracts, providerAddress, {
      type: 'dataset',
      name: 'Weather week (on chain)',
      url: o.dataUrl,
      compute: {
        allowRawAlgorithm: false,
        allowNetworkAccess: false,
        publisherTrustedAlgorithmPublishers: [],
        publisherTrustedAlgorithms: [trustedAlgorithm(algorithm.did, ALGO_CONTAINER, [reviewed])],
      },
    });
    log(
      `Published on chain ${o.chainId}: dataset ${dataset.did}\n                     algorithm ${algorithm.did} (NFT + datatoken each, DDO encrypted by the provider, set with setMetaData)`,
    );
    for (const a of [dataset, algorithm]) await mintDatatokens(publisher, a.datatoken, consumer.address, parseEther('1'));
    log(`Publisher ${publisher.address} minted 1 datatoken of each to consumer ${consumer.address}`);

    const validUntil = Math.floor(Date.now() / 1000) + o.environment.maxJobDuration;
    const initRes = await o.client.request('POST', '/api/services/initializeCompute', {
      datasets: [{ documentId: dataset.did, serviceId: 'compute' }],
      algorithm: { documentId: algorithm.did, serviceId: 'compute' },
      compute: { env: o.environment.id, validUntil },
      consumerAddress: consumer.address,
    });
    if (!initRes.ok) throw new Error(`initializeCompute answered ${initRes.status}: ${await initRes.text()}`);
    const init = (await initRes.json()) as { datasets: Initialized[]; algorithm: Initialized };
    log(
      `initializeCompute for ${o.environment.id} (priceMin ${o.environment.priceMin}/min) until ${new Date(validUntil * 1000).toISOString()}: fees signed by ${providerAddress}`,
    );

    // Ocean's client orders compute with consumer = the environment's wallet; the consumer pays (payer)
    const orderConsumer = o.environment.consumerAddress ?? consumer.address;
    const ocean = contractAt('OceanToken', contracts.Ocean, provider);
    const before = (await read(ocean, 'balanceOf', providerAddress)) as bigint;
    const datasetTx = await order(log, consumer, orderConsumer, init.datasets[0] ?? {}, 'dataset');
    const algorithmTx = await order(log, consumer, orderConsumer, init.algorithm, 'algorithm');
    const earned = ((await read(ocean, 'balanceOf', providerAddress)) as bigint) - before;
    log(`  the provider received ${earned} wei of fee token for the job`);

    const job = await o.client.startJob({
      environment: o.environment.id,
      dataset: { documentId: dataset.did, serviceId: 'compute', transferTxId: datasetTx },
      algorithm: { documentId: algorithm.did, serviceId: 'compute', transferTxId: algorithmTx },
    });
    log(`Job ${job.jobId} started in ${o.environment.id}; the worker verifies both orders on chain before it runs anything`);
    const final = await o.follow(job.jobId);
    log(`agreementId ${final.agreementId} (the order that paid)`);
    return { job: final, datasetTx, algorithmTx, feeReceived: earned };
  } finally {
    provider.destroy();
  }
}
