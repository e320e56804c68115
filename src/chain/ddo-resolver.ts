import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { getAddress, getBytes, type Log, type Provider, toUtf8String } from 'ethers';
import { decrypt } from '../assets/ecies';
import type { AssetResolver } from '../assets/resolver';
import { type Ddo, ddoSchema } from '../domain/ddo';
import type { Logger } from '../domain/logger';
import { contractInterface } from './artifacts';
import { contractAt, read } from './contracts';
import { assetDid } from './did';
import { chainCall } from './rpc';

export interface ChainDdoResolverDeps {
  provider: Provider;
  chainId: number;
  /** the ERC721Factory whose NFTs are indexed, and the block it was deployed in */
  factory: string;
  startBlock: number;
  /** decrypts DDOs published encrypted for this provider (flags bit 1) */
  providerPrivateKey: string;
  logger: Logger;
  /** at most one catch-up per this many ms; lookups in between use the index as it is */
  minSyncIntervalMs?: number;
  /** blocks per eth_getLogs call */
  blockBatch?: number;
  /** where the index is kept between restarts (resumed from its last block); absent: rebuilt from startBlock */
  indexFile?: string;
}

/** The index as saved: valid only for the chain whose factory deploy block has this hash. */
interface SavedIndex {
  chainId: number;
  factory: string;
  startBlockHash: string;
  nextBlock: number;
  nfts: string[];
  ddos: [string, Ddo][];
}

const FLAG_COMPRESSED = 1;
const FLAG_ENCRYPTED = 2;

const factoryIface = contractInterface('ERC721Factory');
const nftIface = contractInterface('ERC721Template');
const NFT_CREATED = factoryIface.getEvent('NFTCreated')!.topicHash;
const METADATA_TOPICS = [nftIface.getEvent('MetadataCreated')!.topicHash, nftIface.getEvent('MetadataUpdated')!.topicHash];

/**
 * On-chain assets: indexes `NFTCreated` of the factory and `MetadataCreated`/`MetadataUpdated` of those
 * NFTs, keeps the latest valid DDO per DID, and on lookup adds the NFT's live owner and state. The index
 * catches up on lookup; with an `indexFile` it is saved after each catch-up and a restart resumes from
 * the saved block — unless the chain under it changed (a restarted dev chain reuses the addresses, but
 * not the block hashes), then it is rebuilt from the factory's block.
 */
export class ChainDdoResolver implements AssetResolver {
  private readonly nfts = new Set<string>();
  private readonly ddos = new Map<string, Ddo>();
  private nextBlock: number;
  private lastSync = 0;
  private syncing: Promise<void> | undefined;
  private startBlockHash: string | undefined;
  private loaded = false;

  constructor(private readonly deps: ChainDdoResolverDeps) {
    this.nextBlock = deps.startBlock;
  }

  async resolve(did: string): Promise<Ddo | null> {
    if (!/^did:op:[0-9a-f]{64}$/i.test(did)) return null;
    await this.sync();
    // a DID not seen yet may have been published since the last catch-up: that one never waits for the interval
    if (!this.ddos.has(did.toLowerCase())) await this.sync(true);
    const ddo = this.ddos.get(did.toLowerCase());
    if (!ddo?.nftAddress) return null;
    const nft = contractAt('ERC721Template', ddo.nftAddress, this.deps.provider);
    const [owner, metadata] = await this.rpc(() => Promise.all([read(nft, 'ownerOf', 1), read(nft, 'getMetaData')]));
    const state = Number((metadata as unknown[])[2]);
    return { ...ddo, nft: { ...ddo.nft, address: ddo.nftAddress, owner: String(owner), state } };
  }

  /** Catches the index up to the chain head (one catch-up at a time; callers share it). */
  sync(force = false): Promise<void> {
    if (this.syncing) return this.syncing;
    if (!force && Date.now() - this.lastSync < (this.deps.minSyncIntervalMs ?? 0)) return Promise.resolve();
    this.syncing = this.catchUp().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** How far the index has read (the next block to read). */
  get cursor(): number {
    return this.nextBlock;
  }

  private async catchUp(): Promise<void> {
    if (!this.loaded) await this.load();
    const head = await this.rpc(() => this.deps.provider.getBlockNumber());
    if (this.nextBlock > head + 1) this.reset('the chain is shorter than the saved index');
    const from = this.nextBlock;
    const batch = this.deps.blockBatch ?? 5000;
    while (this.nextBlock <= head) {
      const fromBlock = this.nextBlock;
      const toBlock = Math.min(head, fromBlock + batch - 1);
      const created = await this.rpc(() => this.deps.provider.getLogs({ address: this.deps.factory, topics: [NFT_CREATED], fromBlock, toBlock }));
      for (const log of created) {
        const parsed = factoryIface.parseLog(log);
        if (parsed) this.nfts.add(getAddress(String(parsed.args.getValue('newTokenAddress'))));
      }
      if (this.nfts.size > 0) {
        const metadata = await this.rpc(() => this.deps.provider.getLogs({ address: [...this.nfts], topics: [METADATA_TOPICS], fromBlock, toBlock }));
        for (const log of metadata) this.index(log);
      }
      this.nextBlock = toBlock + 1;
    }
    this.lastSync = Date.now();
    if (this.nextBlock !== from) this.save();
  }

  private async load(): Promise<void> {
    const block = await this.rpc(() => this.deps.provider.getBlock(this.deps.startBlock));
    this.startBlockHash = block?.hash ?? '';
    this.loaded = true;
    const file = this.deps.indexFile;
    if (!file || !fs.existsSync(file)) return;
    try {
      const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as SavedIndex;
      if (saved.chainId !== this.deps.chainId || saved.factory !== this.deps.factory || saved.startBlockHash !== this.startBlockHash) {
        this.deps.logger.info({ indexFile: file }, 'saved chain index is for another chain; rebuilding');
        return;
      }
      for (const nft of saved.nfts) this.nfts.add(nft);
      for (const [did, ddo] of saved.ddos) this.ddos.set(did, ddo);
      this.nextBlock = saved.nextBlock;
      this.deps.logger.info({ nextBlock: saved.nextBlock, ddos: saved.ddos.length }, 'chain index resumed');
    } catch (err) {
      this.deps.logger.warn({ indexFile: file, err: (err as Error).message }, 'saved chain index unreadable; rebuilding');
    }
  }

  private reset(why: string): void {
    this.deps.logger.warn({ why }, 'chain index rebuilt');
    this.nfts.clear();
    this.ddos.clear();
    this.nextBlock = this.deps.startBlock;
  }

  private save(): void {
    const file = this.deps.indexFile;
    if (!file || this.startBlockHash === undefined) return;
    const saved: SavedIndex = {
      chainId: this.deps.chainId,
      factory: this.deps.factory,
      startBlockHash: this.startBlockHash,
      nextBlock: this.nextBlock,
      nfts: [...this.nfts],
      ddos: [...this.ddos],
    };
    const tmp = `${file}.${process.pid}.tmp`;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(tmp, JSON.stringify(saved), { mode: 0o600 });
    fs.renameSync(tmp, file); // API and worker may both save; each write is whole
  }

  private index(log: Log): void {
    const parsed = nftIface.parseLog(log);
    if (!parsed) return;
    const nftAddress = getAddress(log.address);
    const fields = { nftAddress, block: log.blockNumber, event: parsed.name };
    const flags = getBytes(String(parsed.args.getValue('flags')));
    const flag = flags[0] ?? 0;
    let bytes: Uint8Array = getBytes(String(parsed.args.getValue('data')));
    if (flag & FLAG_COMPRESSED) {
      this.deps.logger.warn(fields, 'compressed DDO skipped');
      return;
    }
    if (flag & FLAG_ENCRYPTED) {
      try {
        bytes = decrypt(this.deps.providerPrivateKey, bytes);
      } catch {
        this.deps.logger.debug(fields, 'DDO encrypted for another provider skipped');
        return;
      }
    }
    const hash = `0x${createHash('sha256').update(bytes).digest('hex')}`;
    if (hash !== String(parsed.args.getValue('metaDataHash')).toLowerCase()) {
      this.deps.logger.warn(fields, 'DDO does not match its metaDataHash; skipped');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(toUtf8String(bytes));
    } catch {
      this.deps.logger.warn(fields, 'DDO is not JSON; skipped');
      return;
    }
    const ddo = ddoSchema.safeParse(json);
    const did = assetDid(nftAddress, this.deps.chainId);
    if (!ddo.success || ddo.data.id.toLowerCase() !== did) {
      this.deps.logger.warn({ ...fields, did }, 'DDO invalid or not named by its NFT; skipped');
      return;
    }
    const datatokens = ddo.data.services.filter((s) => s.datatokenAddress).map((s) => ({ address: s.datatokenAddress, serviceId: s.id }));
    this.ddos.set(did, { ...ddo.data, nftAddress, chainId: this.deps.chainId, datatokens });
    this.deps.logger.info({ ...fields, did }, 'DDO indexed');
  }

  private async rpc<T>(call: () => Promise<T>): Promise<T> {
    return chainCall(this.deps.logger, call);
  }
}
