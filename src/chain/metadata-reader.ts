import { getAddress, getBytes, type Provider, ZeroAddress } from 'ethers';
import type { Logger } from '../domain/logger';
import { contractInterface } from './artifacts';
import { contractAt, read } from './contracts';
import { chainCall } from './rpc';

/** What one `setMetaData` put on chain: the (possibly encrypted) document and the sha256 of its plaintext. */
export interface PublishedMetadata {
  nftAddress: string;
  /** bit 0 compressed, bit 1 encrypted by a provider */
  flags: number;
  data: Uint8Array;
  /** 0x + 64 lower-case hex */
  metaDataHash: string;
}

export interface MetadataReaderDeps {
  provider: Provider;
  /** the ERC721Factory whose NFTs count, and the block it was deployed in */
  factory: string;
  startBlock: number;
  logger: Logger;
}

const nftIface = contractInterface('ERC721Template');
const METADATA_TOPICS = [nftIface.getEvent('MetadataCreated')!.topicHash, nftIface.getEvent('MetadataUpdated')!.topicHash];

function published(log: { address: string; topics: readonly string[]; data: string }): PublishedMetadata | null {
  const parsed = nftIface.parseLog(log);
  if (!parsed) return null;
  return {
    nftAddress: getAddress(log.address),
    flags: getBytes(String(parsed.args.getValue('flags')))[0] ?? 0,
    data: getBytes(String(parsed.args.getValue('data'))),
    metaDataHash: String(parsed.args.getValue('metaDataHash')).toLowerCase(),
  };
}

/**
 * DDO documents as data NFTs published them (`MetadataCreated`/`MetadataUpdated`), for `decrypt`:
 * only what a data NFT of our factory published on chain is ever decrypted, never arbitrary ciphertext.
 */
export class MetadataReader {
  constructor(private readonly deps: MetadataReaderDeps) {}

  /** The last metadata event of a mined, successful transaction; null when it has none (or failed, or is unknown). */
  async fromTransaction(txId: string): Promise<PublishedMetadata | null> {
    const receipt = await this.rpc(() => this.deps.provider.getTransactionReceipt(txId));
    if (!receipt || receipt.status !== 1) return null;
    let found: PublishedMetadata | null = null;
    for (const log of receipt.logs) {
      if (METADATA_TOPICS.includes(log.topics[0] ?? '')) found = published(log) ?? found;
    }
    return found;
  }

  /** Whether the factory deployed this NFT (its `erc721List` maps a deployed NFT to itself). */
  async isFactoryNft(nftAddress: string): Promise<boolean> {
    const factory = contractAt('ERC721Factory', this.deps.factory, this.deps.provider);
    const listed = String(await this.rpc(() => read(factory, 'erc721List', nftAddress)));
    return listed !== ZeroAddress && listed.toLowerCase() === nftAddress.toLowerCase();
  }

  /** Whether this NFT ever published a document with this metaDataHash. */
  async hasPublished(nftAddress: string, metaDataHash: string): Promise<boolean> {
    const logs = await this.rpc(() =>
      this.deps.provider.getLogs({ address: nftAddress, topics: [METADATA_TOPICS], fromBlock: this.deps.startBlock, toBlock: 'latest' }),
    );
    const wanted = metaDataHash.toLowerCase();
    return logs.some((log) => published(log)?.metaDataHash === wanted);
  }

  private rpc<T>(call: () => Promise<T>): Promise<T> {
    return chainCall(this.deps.logger, call);
  }
}
