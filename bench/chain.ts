import { type BaseWallet, HDNodeWallet, Mnemonic, Wallet, parseEther } from 'ethers';
import { encryptFiles } from '../tools/catalog/publish';
import { contractAt, send } from '../src/chain/contracts';
import type { OceanContracts } from '../src/chain/contracts-file';
import { ChainDdoResolver } from '../src/chain/ddo-resolver';
import { deployOceanContracts } from '../tools/chain/deploy';
import { assetDid } from '../src/chain/did';
import { HARDHAT_MNEMONIC, startHardhatNode } from '../tools/chain/hardhat-node';
import { startOrder } from '../tools/chain/order-client';
import { type OrderItem, OrderVerifier } from '../src/chain/orders';
import { feeAmount, signProviderFee } from '../src/chain/provider-fee';
import { createNftWithDatatoken, mintDatatokens, setDdoOnChain } from '../tools/chain/publish';
import { rpcProvider } from '../src/chain/rpc';
import type { Ddo } from '../src/domain/ddo';
import type { Logger } from '../src/domain/logger';
import { freePort } from '../tools/temporal-server';

/**
 * The chain part of `npm run bench`, against a local hardhat node with Ocean's contracts:
 * order verification time per item (§4 of the wire contract, every RPC it makes), and how fast the
 * on-chain DDO index catches up over a chain with `assets` published assets.
 */

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/** Counts what the indexer says, says nothing. */
function countingLogger(counts: Map<string, number>): Logger {
  const log = (_fields: object, msg: string): void => void counts.set(msg, (counts.get(msg) ?? 0) + 1);
  const logger: Logger = { debug: log, info: log, warn: log, error: log, child: () => logger };
  return logger;
}

function ddoFor(chainId: number, providerWallet: BaseWallet, nftAddress: string, datatokenAddress: string, i: number): Ddo & Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    '@context': ['https://w3id.org/did/v1'],
    id: assetDid(nftAddress, chainId),
    version: '4.1.0',
    nftAddress,
    chainId,
    metadata: { created: now, updated: now, type: 'dataset', name: `bench asset ${i}`, description: 'bench', author: 'bench', license: 'MIT' },
    services: [
      {
        id: 'compute',
        type: 'compute',
        files: encryptFiles(providerWallet.signingKey.publicKey, { datatokenAddress, nftAddress, urls: [`http://127.0.0.1:1/${i}.csv`] }),
        datatokenAddress,
        serviceEndpoint: 'http://127.0.0.1:8030',
        timeout: 0,
        compute: { allowRawAlgorithm: true, allowNetworkAccess: false, publisherTrustedAlgorithmPublishers: [], publisherTrustedAlgorithms: [] },
      },
    ],
  };
}

export interface ChainBenchOptions {
  /** assets published for the indexer figures */
  assets?: number;
  /** orders verified for the verification figures */
  orders?: number;
}

export async function chainBench(opts: ChainBenchOptions = {}): Promise<string[]> {
  const assets = opts.assets ?? 500;
  const orders = opts.orders ?? 50;
  const chainId = 8996;
  const node = await startHardhatNode({ port: await freePort(), chainId });
  const provider = rpcProvider(node.rpcUrl, chainId, 50);
  const lines: string[] = [];
  try {
    const mnemonic = Mnemonic.fromPhrase(HARDHAT_MNEMONIC);
    const signers = Array.from({ length: 10 }, (_, i) => HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`).connect(provider));
    const [deployer, consumer] = [signers[0]!, signers[1]!];
    const publishers = signers.slice(2);
    const contracts: OceanContracts = await deployOceanContracts(deployer);
    const providerWallet = new Wallet(Wallet.createRandom().privateKey);
    const environment = { id: 'bench-paid', priceMin: 1 };

    // Publish: NFT + datatoken and an encrypted DDO per asset, 8 publishers in parallel.
    const t0 = performance.now();
    const published: { nftAddress: string; datatokenAddress: string; ddo: Ddo; publisher: BaseWallet }[] = [];
    await Promise.all(
      publishers.map(async (publisher, p) => {
        for (let i = p; i < assets; i += publishers.length) {
          const { nftAddress, datatokenAddress } = await createNftWithDatatoken(publisher, contracts);
          const ddo = ddoFor(chainId, providerWallet, nftAddress, datatokenAddress, i);
          await setDdoOnChain(publisher, nftAddress, ddo, {
            providerPublicKey: providerWallet.signingKey.publicKey,
            providerUrl: 'http://127.0.0.1:8030',
            providerAddress: providerWallet.address,
          });
          published.push({ nftAddress, datatokenAddress, ddo, publisher });
        }
      }),
    );
    const publishSeconds = (performance.now() - t0) / 1000;
    const head = await provider.getBlockNumber();
    const blocks = head - contracts.startBlock + 1;

    // Indexer catch-up from the factory's block, no saved index, as a fresh provider does.
    for (const blockBatch of [5000, 100]) {
      const counts = new Map<string, number>();
      const resolver = new ChainDdoResolver({
        provider,
        chainId,
        factory: contracts.ERC721Factory,
        startBlock: contracts.startBlock,
        providerPrivateKey: providerWallet.privateKey,
        logger: countingLogger(counts),
        blockBatch,
      });
      const t = performance.now();
      await resolver.sync(true);
      const seconds = (performance.now() - t) / 1000;
      const indexed = counts.get('DDO indexed') ?? 0;
      if (indexed !== assets) throw new Error(`the index found ${indexed} of ${assets} DDOs`);
      lines.push(
        `indexer catch-up, ${assets} assets over ${blocks} blocks, ${blockBatch} blocks per eth_getLogs: ${seconds.toFixed(2)} s = ${(blocks / seconds).toFixed(0)} blocks/s, ${(indexed / seconds).toFixed(0)} DDOs/s`,
      );
    }

    // Orders: the consumer orders `orders` datatokens with our fee (dataset, paid) or a zero fee (algorithm).
    await send(contractAt('OceanToken', contracts.Ocean, deployer), 'mint', consumer.address, parseEther('100000'));
    const items: { dataset: OrderItem; algorithm: OrderItem }[] = [];
    for (let i = 0; i < orders; i++) {
      const [d, a] = [published[(2 * i) % published.length]!, published[(2 * i + 1) % published.length]!];
      const pair: OrderItem[] = [];
      for (const [asset, isDataset] of [
        [d, true],
        [a, false],
      ] as const) {
        await mintDatatokens(asset.publisher, asset.datatokenAddress, consumer.address, parseEther('1'));
        const t = Math.floor(Date.now() / 1000);
        const fee = signProviderFee(providerWallet, {
          environment: environment.id,
          datatoken: asset.datatokenAddress,
          serviceId: 'compute',
          feeToken: contracts.Ocean,
          amount: isDataset ? feeAmount(1, 600) : 0n,
          validUntil: t + 3600,
          now: t,
        });
        const receipt = await startOrder(consumer, asset.datatokenAddress, consumer.address, 0, fee);
        pair.push({ resource: isDataset ? 'dataset' : 'algorithm', ddo: asset.ddo, serviceId: 'compute', transferTxId: receipt.hash, isDataset });
      }
      items.push({ dataset: pair[0]!, algorithm: pair[1]! });
    }
    const verifier = new OrderVerifier({ provider, providerAddress: providerWallet.address, feeToken: contracts.Ocean, logger: countingLogger(new Map()) });
    const now = (): number => Math.floor(Date.now() / 1000);
    // warm-up: ethers' ABI coders, the node's caches
    await verifier.verify({
      consumerAddress: consumer.address,
      items: [items[0]!.dataset, items[0]!.algorithm],
      environment,
      durationSeconds: 600,
      now: now(),
    });
    const perItem: number[] = [];
    const perJob: number[] = [];
    for (const { dataset, algorithm } of items) {
      for (const item of [dataset, algorithm]) {
        const t = performance.now();
        await verifier.verifyItem(item, { consumerAddress: consumer.address, environment, now: now() });
        perItem.push(performance.now() - t);
      }
      const t = performance.now();
      const result = await verifier.verify({ consumerAddress: consumer.address, items: [dataset, algorithm], environment, durationSeconds: 600, now: now() });
      perJob.push(performance.now() - t);
      if (result.agreementId !== dataset.transferTxId) throw new Error('the paying order is not the agreement');
    }
    const ms = (x: number): string => `${x.toFixed(1)} ms`;
    lines.unshift(
      `order verification per item (${perItem.length} items: isDeployed + metadata state, receipt, events, fee signature): p50 ${ms(percentile(perItem, 50))}, p99 ${ms(percentile(perItem, 99))}`,
      `order verification per job (dataset + algorithm, fee check): p50 ${ms(percentile(perJob, 50))}, p99 ${ms(percentile(perJob, 99))}`,
    );
    lines.push(
      `(publishing the ${assets} assets took ${publishSeconds.toFixed(1)} s: ${((2 * assets) / publishSeconds).toFixed(0)} transactions/s on the hardhat node)`,
    );
    return lines;
  } finally {
    provider.destroy();
    await node.stop();
  }
}
