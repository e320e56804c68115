import { Wallet } from 'ethers';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { encryptFiles } from '../../tools/catalog/publish';
import { AccessDeniedError } from '../../src/domain/errors';
import { datasetFixture, fixtureProvider, fixtureSecretUrls } from '../fixtures/ddo';

describe('ProviderFileDecryptor', () => {
  const decryptor = new ProviderFileDecryptor(fixtureProvider.privateKey);

  it('when the files were encrypted for this provider and name this asset, then they decrypt', async () => {
    const ddo = datasetFixture();
    const files = await decryptor.decryptServiceFiles(ddo, ddo.services[0]!, 'dataset');
    expect(files.files[0]?.url).toBe(fixtureSecretUrls[0]);
    expect(files.nftAddress).toBe(ddo.nftAddress);
  });

  const refusals: [string, (ddo: ReturnType<typeof datasetFixture>) => void][] = [
    [
      'encrypted for another provider',
      (ddo) => {
        ddo.services[0]!.files = encryptFiles(Wallet.createRandom().signingKey.publicKey, {
          datatokenAddress: ddo.services[0]!.datatokenAddress,
          nftAddress: ddo.nftAddress,
          urls: [fixtureSecretUrls[0]!],
        });
      },
    ],
    [
      'for another datatoken',
      (ddo) => {
        ddo.services[0]!.datatokenAddress = Wallet.createRandom().address;
      },
    ],
    [
      'for another NFT',
      (ddo) => {
        ddo.nftAddress = Wallet.createRandom().address;
      },
    ],
    [
      'not a file list',
      (ddo) => {
        ddo.services[0]!.files = `0x${Buffer.from('x').toString('hex')}`;
      },
    ],
    [
      'bound to no asset (no nftAddress)',
      (ddo) => {
        ddo.services[0]!.files = encryptFiles(fixtureProvider.publicKey, {
          datatokenAddress: ddo.services[0]!.datatokenAddress,
          urls: [fixtureSecretUrls[0]!],
        });
      },
    ],
    [
      'bound to no asset at all (what catalogs held before binding)',
      (ddo) => {
        ddo.services[0]!.files = encryptFiles(fixtureProvider.publicKey, { urls: [fixtureSecretUrls[0]!] });
      },
    ],
    [
      'bound to a catalog DID, pasted into another DDO',
      (ddo) => {
        ddo.services[0]!.files = encryptFiles(fixtureProvider.publicKey, {
          did: `did:op:${'c'.repeat(64)}`,
          serviceId: ddo.services[0]!.id,
          urls: [fixtureSecretUrls[0]!],
        });
      },
    ],
    [
      "bound to this DDO's other service",
      (ddo) => {
        ddo.services[0]!.files = encryptFiles(fixtureProvider.publicKey, { did: ddo.id, serviceId: 'access-1', urls: [fixtureSecretUrls[0]!] });
      },
    ],
    [
      "bound to this NFT and datatoken, in a DDO whose DID is not the NFT's",
      (ddo) => {
        ddo.id = `did:op:${'e'.repeat(64)}`;
      },
    ],
  ];

  it('when a catalog file list names this DID and service, then it decrypts whatever resolver served the DDO', async () => {
    const ddo = datasetFixture();
    delete ddo.nftAddress;
    delete ddo.services[0]!.datatokenAddress;
    ddo.services[0]!.files = encryptFiles(fixtureProvider.publicKey, {
      did: ddo.id.toUpperCase().replace('DID:OP:', 'did:op:'),
      serviceId: ddo.services[0]!.id,
      urls: [fixtureSecretUrls[0]!],
    });
    const files = await decryptor.decryptServiceFiles(ddo, ddo.services[0]!, 'dataset');
    expect(files.files[0]?.url).toBe(fixtureSecretUrls[0]);
  });

  it.each(refusals)('when the files are %s, then access is denied without revealing any URL', async (_name, mutate) => {
    const ddo = datasetFixture();
    mutate(ddo);
    const error = await decryptor.decryptServiceFiles(ddo, ddo.services[0]!, 'dataset').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AccessDeniedError);
    expect((error as AccessDeniedError).code).toBe('compute_services_not_in_same_provider');
    expect((error as AccessDeniedError).resource).toBe('dataset');
    for (const url of fixtureSecretUrls) expect((error as Error).message).not.toContain(url);
  });
});
