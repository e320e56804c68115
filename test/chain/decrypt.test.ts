import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BaseWallet, hexlify, type Log, toUtf8Bytes, Wallet } from 'ethers';
import request from 'supertest';
import { createApp } from '../../src/api/app';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { contractInterface } from '../../src/chain/artifacts';
import { contractAt, send } from '../../src/chain/contracts';
import { ChainDdoResolver } from '../../src/chain/ddo-resolver';
import { MetadataReader } from '../../src/chain/metadata-reader';
import { createNftWithDatatoken } from '../../tools/chain/publish';
import { environmentSchema } from '../../src/domain/environment';
import { LocalResultStore } from '../../src/storage/local';
import { FileNonceStore } from '../../src/storage/nonces';
import { FakeJobsService } from '../api/fakes';
import { recordingLogger, signRequest } from '../helpers/api';
import { type OnChainAsset, publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';

const nftIface = contractInterface('ERC721Template');

/** The MetadataCreated/MetadataUpdated logs a data NFT emitted, oldest first. */
async function metadataLogs(chain: TestChain, nftAddress: string): Promise<Log[]> {
  const topics = [nftIface.getEvent('MetadataCreated')!.topicHash, nftIface.getEvent('MetadataUpdated')!.topicHash];
  return chain.provider.getLogs({ address: nftAddress, topics: [topics], fromBlock: 0 });
}

describe('POST /api/services/decrypt against a hardhat node', () => {
  let chain: TestChain;
  let dir: string;
  let app: ReturnType<typeof createApp>;
  let asset: OnChainAsset;
  let txId: string;
  let encryptedDocument: string;
  let documentHash: string;
  const providerWallet = new Wallet(Wallet.createRandom().privateKey);
  const aquarius = new Wallet(Wallet.createRandom().privateKey);
  const stranger = new Wallet(Wallet.createRandom().privateKey);
  const logger = recordingLogger();
  let nonce = 0;

  const signed = async (wallet: BaseWallet, body: Record<string, unknown>, opts: { nonce?: number; signer?: BaseWallet } = {}) => {
    const n = opts.nonce ?? ++nonce;
    const named = String(body.transactionId ?? body.dataNftAddress);
    const signature = await signRequest(
      opts.signer ?? wallet,
      [named, wallet.address, String((body.chainId as number | string | undefined) ?? chain.chainId)],
      n,
    );
    return { decrypterAddress: wallet.address, chainId: chain.chainId, ...body, nonce: String(n), signature };
  };

  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-decrypt-'));
    asset = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet, { name: 'decrypt me' });
    const [created] = await metadataLogs(chain, asset.nftAddress);
    const parsed = nftIface.parseLog(created!)!;
    txId = created!.transactionHash;
    encryptedDocument = String(parsed.args.getValue('data'));
    documentHash = String(parsed.args.getValue('metaDataHash'));
    const results = new LocalResultStore(dir);
    const resolver = new ChainDdoResolver({
      provider: chain.provider,
      chainId: chain.chainId,
      factory: chain.contracts.ERC721Factory,
      startBlock: 0,
      providerPrivateKey: providerWallet.privateKey,
      logger,
    });
    app = createApp({
      chainId: chain.chainId,
      providerWallet,
      version: '0.0.0-test',
      environments: [environmentSchema.parse({ id: 'free' })],
      jobs: new FakeJobsService(results),
      results,
      nonces: new FileNonceStore(dir),
      resolver,
      decryptor: new ProviderFileDecryptor(providerWallet.privateKey),
      backendFor: () => undefined,
      logger,
      metadata: new MetadataReader({ provider: chain.provider, factory: chain.contracts.ERC721Factory, startBlock: 0, logger }),
      authorizedDecrypters: [aquarius.address.toLowerCase()],
    });
  }, 60_000);
  afterAll(async () => {
    await chain?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('when an authorized decrypter names the transaction that set the DDO, then it gets the DDO as published (201 text/plain)', async () => {
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { transactionId: txId }));
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toBe(JSON.stringify(asset.ddo));
    expect(`0x${createHash('sha256').update(res.text).digest('hex')}`).toBe(documentHash);
  });

  it('when an authorized decrypter sends the document with its data NFT, flags and hash, then it gets the DDO; the provider itself needs no listing', async () => {
    const body = { dataNftAddress: asset.nftAddress, encryptedDocument, flags: 2, documentHash };
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, body));
    expect(res.status).toBe(201);
    expect(JSON.parse(res.text)).toEqual(asset.ddo);
    // numbers as strings, parameters in the query string: Ocean's rules hold here too
    const own = await signed(providerWallet, { ...body, flags: '2' });
    const query = await request(app).post('/api/services/decrypt').query(own);
    expect(query.status).toBe(201);
    expect(query.text).toBe(JSON.stringify(asset.ddo));
  });

  it('when the decrypter is not authorized, then 403 says so and its nonce is not used up', async () => {
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(stranger, { transactionId: txId }, { nonce: 1 }));
    expect(res.status).toBe(403);
    expect(res.body.error).toMatch(/^Decrypter not authorized: 0x[0-9a-fA-F]{40} is not this provider and not in its C2D_AUTHORIZED_DECRYPTERS$/);
    expect(res.text).not.toContain('decrypt me');
    const stored = await request(app).get('/api/services/nonce').query({ userAddress: stranger.address });
    expect(stored.body).toEqual({ nonce: 0 });
  });

  it("when the signature is not the decrypter's, then 401 Invalid signature", async () => {
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { transactionId: txId }, { signer: stranger }));
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'Invalid signature' });
  });

  it('when the nonce was used already, then 401 Invalid nonce', async () => {
    const first = await signed(aquarius, { transactionId: txId });
    expect((await request(app).post('/api/services/decrypt').send(first)).status).toBe(201);
    const replay = await request(app).post('/api/services/decrypt').send(first);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toMatch(/^Invalid nonce/);
  });

  it('when the ciphertext was altered, then 400 Failed to decrypt and nothing of the document', async () => {
    const tampered = `${encryptedDocument.slice(0, -2)}${encryptedDocument.endsWith('00') ? '01' : '00'}`;
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: asset.nftAddress, encryptedDocument: tampered, flags: 2, documentHash }));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^Failed to decrypt/);
  });

  it("when a published plain document is sent altered under its published hash, then 400 Checksum doesn't match", async () => {
    const publisher = chain.signers[1]!;
    const { nftAddress } = await createNftWithDatatoken(publisher, chain.contracts);
    const plain = JSON.stringify({ id: 'did:op:plain', note: 'published unencrypted' });
    const hash = `0x${createHash('sha256').update(plain).digest('hex')}`;
    await send(
      contractAt('ERC721Template', nftAddress, publisher),
      'setMetaData',
      0,
      'http://127.0.0.1:1',
      providerWallet.address,
      '0x00',
      hexlify(toUtf8Bytes(plain)),
      hash,
      [],
    );
    const altered = hexlify(toUtf8Bytes(plain.replace('unencrypted', 'in clear!!!')));
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: nftAddress, encryptedDocument: altered, flags: 0, documentHash: hash }));
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/^Checksum doesn't match/);
    expect(res.text).not.toContain('in clear');
    const genuine = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: nftAddress, encryptedDocument: hexlify(toUtf8Bytes(plain)), flags: '0x00', documentHash: hash }));
    expect(genuine.status).toBe(201);
    expect(genuine.text).toBe(plain);
  });

  it("when ciphertext is sent under a hash its NFT never published (e.g. a service's files), then 400 and nothing is decrypted", async () => {
    const files = String(asset.ddo.services[0]!.files);
    const guessed = `0x${createHash('sha256').update('anything').digest('hex')}`;
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: asset.nftAddress, encryptedDocument: files, flags: 2, documentHash: guessed }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'documentHash: this data NFT never published a document with this metaDataHash' });
  });

  it('when the transaction set no metadata, the NFT is not from the factory, or the chain is another, then 400 says which', async () => {
    const order = await send(contractAt('ERC20Template', asset.datatokenAddress, chain.signers[1]!), 'mint', chain.signers[2]!.address, 1n);
    const notMetadata = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { transactionId: order.hash }));
    expect(notMetadata.status).toBe(400);
    expect(notMetadata.body.error).toMatch(/^transactionId: no successful MetadataCreated or MetadataUpdated event/);

    const foreign = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: chain.contracts.Ocean, encryptedDocument, flags: 2, documentHash }));
    expect(foreign.status).toBe(400);
    expect(foreign.body).toEqual({ error: 'Asset not deployed by the data NFT factory of this chain' });

    const otherChain = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { transactionId: txId, chainId: 1 }));
    expect(otherChain.status).toBe(400);
    expect(otherChain.body.errors).toEqual({ chainId: [`unsupported chain id, this provider serves ${chain.chainId}`] });
  });

  it('when the document is flagged compressed, then 400 says compression is not supported; HEAD is 405 as on every signed route', async () => {
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: asset.nftAddress, encryptedDocument, flags: 3, documentHash }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'Compressed documents (flags bit 0) are not supported by this provider' });
    expect((await request(app).head('/api/services/decrypt')).status).toBe(405);
  });

  it('when a field is missing, then the validation error names it', async () => {
    const res = await request(app)
      .post('/api/services/decrypt')
      .send(await signed(aquarius, { dataNftAddress: asset.nftAddress, flags: 2 }));
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual({ encryptedDocument: ['required with dataNftAddress'], documentHash: ['required with dataNftAddress'] });
  });
});
