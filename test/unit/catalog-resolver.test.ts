import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { CatalogResolver } from '../../src/assets/catalog';
import { buildCatalogDdo, writeCatalogDdo } from '../../tools/catalog/publish';
import { recordingLogger } from '../helpers/api';

describe('CatalogResolver', () => {
  const provider = Wallet.createRandom();
  const consumer = Wallet.createRandom();
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-catalog-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const sample = () => buildCatalogDdo(provider.signingKey.publicKey, { type: 'dataset', urls: ['https://example.invalid/a.csv'], allow: [consumer.address] });

  it('when a DDO file is in the directory, then its DID resolves to it', async () => {
    const ddo = sample();
    await writeCatalogDdo(dir, ddo);
    const resolver = new CatalogResolver(dir, recordingLogger());
    expect((await resolver.resolve(ddo.id))?.services[0]?.files).toBe(ddo.services[0]?.files);
    expect(await resolver.resolve('did:op:0000')).toBeNull();
  });

  it('when a DDO is added after the first lookup, then it is found without a restart', async () => {
    const resolver = new CatalogResolver(dir, recordingLogger());
    const ddo = sample();
    expect(await resolver.resolve(ddo.id)).toBeNull();
    await writeCatalogDdo(dir, ddo);
    expect((await resolver.resolve(ddo.id))?.id).toBe(ddo.id);
  });

  it('when a DDO file changes, then the new content is served', async () => {
    const ddo = sample();
    const file = await writeCatalogDdo(dir, ddo);
    const resolver = new CatalogResolver(dir, recordingLogger());
    expect((await resolver.resolve(ddo.id))?.metadata.name).toBe(ddo.metadata.name);
    fs.writeFileSync(file, JSON.stringify({ ...ddo, metadata: { ...ddo.metadata, name: 'renamed and longer than before' } }));
    expect((await resolver.resolve(ddo.id))?.metadata.name).toBe('renamed and longer than before');
  });

  it('when a file is not a valid DDO, then it is skipped with a warning naming the file but not its content', async () => {
    const good = sample();
    await writeCatalogDdo(dir, good);
    fs.writeFileSync(path.join(dir, 'broken.json'), JSON.stringify({ id: 'did:op:abc', secret: 'https://secret.example.invalid/x' }));
    fs.writeFileSync(path.join(dir, 'garbage.json'), '{not json https://secret.example.invalid/y');
    const logger = recordingLogger();
    const resolver = new CatalogResolver(dir, logger);
    expect(await resolver.resolve('did:op:abc')).toBeNull();
    expect((await resolver.resolve(good.id))?.id).toBe(good.id);
    const warnings = logger.entries.filter((e) => e.level === 'warn');
    expect(warnings.map((w) => (w.fields as { file: string }).file).sort()).toEqual([path.join(dir, 'broken.json'), path.join(dir, 'garbage.json')]);
    expect(JSON.stringify(logger.entries)).not.toContain('secret.example.invalid');
  });

  it('when the directory does not exist, then nothing resolves and nothing throws', async () => {
    const resolver = new CatalogResolver(path.join(dir, 'missing'), recordingLogger());
    expect(await resolver.resolve('did:op:abc')).toBeNull();
  });
});
