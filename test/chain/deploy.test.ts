import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { escrowAddress, readContractsFile } from '../../src/chain/contracts-file';
import { writeContractsFile } from '../../tools/chain/deploy';
import { contractAt, read } from '../../src/chain/contracts';
import { createNftWithDatatoken } from '../../tools/chain/publish';
import { startChain, type TestChain } from '../helpers/chain';

describe('dev chain with Ocean contracts', () => {
  let chain: TestChain;
  beforeAll(async () => {
    chain = await startChain();
  });
  afterAll(() => chain?.stop());

  test('when the contracts are deployed, then the router knows factory, fixed-rate exchange and dispenser', async () => {
    const router = contractAt('FactoryRouter', chain.contracts.Router, chain.provider);
    expect(await read(router, 'isFixedRateContract', chain.contracts.FixedPrice)).toBe(true);
    expect(await read(router, 'isDispenserContract', chain.contracts.Dispenser)).toBe(true);
    expect(await read(router, 'factory')).toBe(chain.contracts.ERC721Factory);
    expect(chain.contracts.chainId).toBe(8996);
  });

  test('when the contracts are deployed, then Escrow is deployed against the router and the OPC collector and recorded under "Escrow"', async () => {
    const escrow = contractAt('Escrow', escrowAddress(chain.contracts), chain.provider);
    expect(await read(escrow, 'factoryRouter')).toBe(chain.contracts.Router);
    expect(await read(escrow, 'opcCollector')).toBe(chain.contracts.OPFCommunityFeeCollector);
    const { Escrow: _omitted, ...withoutEscrow } = chain.contracts;
    expect(() => escrowAddress(withoutEscrow)).toThrow(/chainId 8996 has no "Escrow" address; deploy Escrow\(Router, OPFCommunityFeeCollector\)/);
  });

  test('when a publisher creates an NFT with a datatoken, then the NFT reports the datatoken as its own', async () => {
    const publisher = chain.signers[1]!;
    const { nftAddress, datatokenAddress } = await createNftWithDatatoken(publisher, chain.contracts);
    const nft = contractAt('ERC721Template', nftAddress, chain.provider);
    expect(await read(nft, 'isDeployed', datatokenAddress)).toBe(true);
    expect(await read(nft, 'ownerOf', 1)).toBe(publisher.address);
  });

  test('when the addresses are written, then they read back in address.json shape keyed by network name', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-contracts-'));
    try {
      const file = path.join(dir, 'address.json');
      fs.writeFileSync(file, JSON.stringify({ other: { chainId: 1, Ocean: '0x0000000000000000000000000000000000000001' } }));
      writeContractsFile(file, chain.contracts);
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      expect(Object.keys(json).sort()).toEqual(['development', 'other']);
      expect(json.development.ERC20Template).toEqual({ '1': chain.contracts.ERC20Template['1'] });
      expect(readContractsFile(file, 8996)).toEqual(chain.contracts);
      expect(() => readContractsFile(file, 5)).toThrow(/no network with chainId 5/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
