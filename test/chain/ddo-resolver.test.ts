import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Filter, type Provider, Wallet, hexlify, toUtf8Bytes } from 'ethers';
import { encrypt } from '../../src/assets/ecies';
import { contractAt, send } from '../../src/chain/contracts';
import { ChainDdoResolver } from '../../src/chain/ddo-resolver';
import { assetDid } from '../../src/chain/did';
import { createNftWithDatatoken, setDdoOnChain } from '../../tools/chain/publish';
import { UnavailableError } from '../../src/domain/errors';
import { rpcProvider } from '../../src/chain/rpc';
import { recordingLogger } from '../helpers/api';
import { publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';

describe('on-chain DDO resolver', () => {
  let chain: TestChain;
  const providerWallet = Wallet.createRandom();
  const logger = recordingLogger();
  const resolver = (): ChainDdoResolver =>
    new ChainDdoResolver({
      provider: chain.provider,
      chainId: chain.chainId,
      factory: chain.contracts.ERC721Factory,
      startBlock: chain.contracts.startBlock,
      providerPrivateKey: providerWallet.privateKey,
      logger,
    });

  beforeAll(async () => {
    chain = await startChain();
  });
  afterAll(() => chain?.stop());

  test('when a DDO is published encrypted for us, then it resolves by its DID with NFT owner, state and datatokens', async () => {
    const publisher = chain.signers[1]!;
    const r = resolver();
    const asset = await publishOnChainAsset(chain, publisher, providerWallet);
    expect(asset.did).toBe(assetDid(asset.nftAddress.toLowerCase(), 8996));
    const ddo = await r.resolve(asset.did);
    expect(ddo).toMatchObject({
      id: asset.did,
      nftAddress: asset.nftAddress,
      chainId: 8996,
      metadata: { name: 'dataset on chain' },
      nft: { address: asset.nftAddress, owner: publisher.address, state: 0 },
    });
    expect(ddo?.datatokens).toEqual([{ address: asset.datatokenAddress, serviceId: 'compute' }]);
    expect(ddo?.services[0]?.files).toBe(asset.ddo.services[0]!.files);
  });

  test('when a DDO is updated or its state changes after the index started, then the lookup sees the change', async () => {
    const publisher = chain.signers[1]!;
    const r = resolver();
    const asset = await publishOnChainAsset(chain, publisher, providerWallet);
    expect((await r.resolve(asset.did))?.metadata.name).toBe('dataset on chain');
    const updated = { ...asset.ddo, metadata: { ...(asset.ddo.metadata as object), name: 'renamed' } };
    await setDdoOnChain(publisher, asset.nftAddress, updated, {
      providerPublicKey: providerWallet.signingKey.publicKey,
      providerUrl: 'x',
      providerAddress: providerWallet.address,
    });
    await send(contractAt('ERC721Template', asset.nftAddress, publisher), 'setMetaDataState', 4);
    const ddo = await r.resolve(asset.did);
    expect(ddo?.metadata.name).toBe('renamed');
    expect(ddo?.nft?.state).toBe(4);
    expect(r.cursor).toBe((await chain.provider.getBlockNumber()) + 1);
  });

  describe('with an index file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-index-'));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** The chain's provider, recording the first block of every eth_getLogs. */
    const spying = (fromBlocks: number[]): Provider =>
      new Proxy(chain.provider, {
        get(target, key) {
          if (key === 'getLogs') return (filter: Filter) => (fromBlocks.push(Number(filter.fromBlock)), target.getLogs(filter));
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    const indexed = (indexFile: string, provider: Provider): ChainDdoResolver =>
      new ChainDdoResolver({
        provider,
        chainId: chain.chainId,
        factory: chain.contracts.ERC721Factory,
        startBlock: chain.contracts.startBlock,
        providerPrivateKey: providerWallet.privateKey,
        logger,
        indexFile,
      });

    test('when the provider restarts, then the index resumes from its last block instead of rescanning', async () => {
      const indexFile = path.join(dir, 'resume.json');
      const asset = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet);
      const first = indexed(indexFile, chain.provider);
      expect((await first.resolve(asset.did))?.id).toBe(asset.did);
      const cursor = first.cursor;
      const fromBlocks: number[] = [];
      const restarted = indexed(indexFile, spying(fromBlocks));
      expect((await restarted.resolve(asset.did))?.id).toBe(asset.did); // known without reading old blocks
      const later = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet);
      expect((await restarted.resolve(later.did))?.id).toBe(later.did);
      expect(fromBlocks.length).toBeGreaterThan(0);
      expect(Math.min(...fromBlocks)).toBeGreaterThanOrEqual(cursor);
      expect(fs.statSync(indexFile).mode & 0o077).toBe(0);
    });

    test('when a DDO is published after the index caught up, then the next lookup finds it reading only the new blocks', async () => {
      const fromBlocks: number[] = [];
      const r = indexed(path.join(dir, 'live.json'), spying(fromBlocks));
      expect(await r.resolve(`did:op:${'7'.repeat(64)}`)).toBeNull(); // catches up to the head
      const cursor = r.cursor;
      fromBlocks.length = 0;
      const asset = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet, { name: 'published later' });
      expect((await r.resolve(asset.did))?.metadata.name).toBe('published later');
      expect(Math.min(...fromBlocks)).toBe(cursor);
    });

    test('when the saved index belongs to another chain (a restarted dev chain), then it is rebuilt from the factory block', async () => {
      const indexFile = path.join(dir, 'other.json');
      const asset = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet);
      await indexed(indexFile, chain.provider).resolve(asset.did);
      const saved = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
      fs.writeFileSync(indexFile, JSON.stringify({ ...saved, startBlockHash: `0x${'00'.repeat(32)}`, ddos: [] }));
      const fromBlocks: number[] = [];
      expect((await indexed(indexFile, spying(fromBlocks)).resolve(asset.did))?.id).toBe(asset.did);
      expect(fromBlocks[0]).toBe(chain.contracts.startBlock);
    });
  });

  test('when a DDO is for another provider, names another DID or breaks its hash, then it is not served', async () => {
    const publisher = chain.signers[2]!;
    const r = resolver();
    const foreign = await publishOnChainAsset(chain, publisher, Wallet.createRandom());
    const { nftAddress } = await createNftWithDatatoken(publisher, chain.contracts);
    const impostor = { ...foreign.ddo, id: foreign.did, nftAddress };
    await setDdoOnChain(publisher, nftAddress, impostor, {
      providerPublicKey: providerWallet.signingKey.publicKey,
      providerUrl: 'x',
      providerAddress: providerWallet.address,
    });
    const tampered = await createNftWithDatatoken(publisher, chain.contracts);
    const tamperedDdo = { ...foreign.ddo, id: assetDid(tampered.nftAddress, 8996), nftAddress: tampered.nftAddress };
    const data = hexlify(encrypt(providerWallet.signingKey.publicKey, toUtf8Bytes(JSON.stringify(tamperedDdo))));
    await send(
      contractAt('ERC721Template', tampered.nftAddress, publisher),
      'setMetaData',
      0,
      'x',
      providerWallet.address,
      '0x02',
      data,
      `0x${'ab'.repeat(32)}`,
      [],
    );
    expect(await r.resolve(assetDid(tampered.nftAddress, 8996))).toBeNull();
    expect(logger.entries.some((e) => e.msg === 'DDO does not match its metaDataHash; skipped')).toBe(true);
    expect(await r.resolve(foreign.did)).toBeNull();
    expect(await r.resolve(assetDid(nftAddress, 8996))).toBeNull();
    expect(await r.resolve('did:op:' + '0'.repeat(64))).toBeNull();
    expect(await r.resolve('not-a-did')).toBeNull();
    expect(logger.entries.some((e) => e.msg === 'DDO invalid or not named by its NFT; skipped')).toBe(true);
  });

  test('when the chain is down, then a lookup fails as unavailable', async () => {
    const down = rpcProvider('http://127.0.0.1:1', 8996, 50);
    const r = new ChainDdoResolver({
      provider: down,
      chainId: 8996,
      factory: chain.contracts.ERC721Factory,
      startBlock: 0,
      providerPrivateKey: providerWallet.privateKey,
      logger,
    });
    await expect(r.resolve('did:op:' + '1'.repeat(64))).rejects.toBeInstanceOf(UnavailableError);
    down.destroy();
  });
});
