import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { loadConfig } from '../../src/config';
import { writeContractsFile } from '../../tools/chain/deploy';
import { createChainServices } from '../../src/chain/services';
import { silentLogger } from '../helpers/process-backend';
import { publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';

describe('chain services from the settings', () => {
  let chain: TestChain;
  let dir: string;
  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-services-'));
  });
  afterAll(async () => {
    await chain?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when C2D_CHAIN_RPC_URL and the contracts file are set, then DDOs resolve and the fee token defaults to Ocean', async () => {
    const providerWallet = new Wallet(Wallet.createRandom().privateKey);
    writeContractsFile(path.join(dir, 'contracts.json'), chain.contracts);
    const config = loadConfig({ C2D_DATA_DIR: dir, C2D_CHAIN_RPC_URL: chain.rpcUrl, C2D_PROVIDER_PRIVATE_KEY: providerWallet.privateKey });
    const settings = config.chains[config.chainId]!;
    const services = createChainServices(settings, { providerPrivateKey: config.providerPrivateKey, logger: silentLogger, pollingIntervalMs: 50 });
    try {
      expect(services.feeToken).toBe(chain.contracts.Ocean);
      const asset = await publishOnChainAsset(chain, chain.signers[1]!, providerWallet);
      expect((await services.resolver.resolve(asset.did))?.nftAddress).toBe(asset.nftAddress);
      expect(services.verifier.feeTokenOf({})).toBe(chain.contracts.Ocean);
      expect(services.verifier.feeTokenOf({ feeToken: '0x' + '11'.repeat(20) })).toBe('0x' + '11'.repeat(20));
    } finally {
      services.close();
    }
    const explicit = createChainServices(
      { ...settings, feeToken: '0x' + '22'.repeat(20) },
      { providerPrivateKey: config.providerPrivateKey, logger: silentLogger },
    );
    expect(explicit.feeToken).toBe('0x' + '22'.repeat(20));
    explicit.close();
  });
});
