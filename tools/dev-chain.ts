import { HDNodeWallet, Mnemonic } from 'ethers';
import { rpcProvider } from '../src/chain/rpc';
import { DEV_CHAIN_RPC_URL, loadConfig } from '../src/config';
import { deployOceanContracts, writeContractsFile } from './chain/deploy';
import { HARDHAT_MNEMONIC, startHardhatNode } from './chain/hardhat-node';

/**
 * `node dist/tools/dev-chain.js` (started by `npm run dev` unless C2D_CHAIN_RPC_URL names a chain): a local hardhat node (chain C2D_CHAIN_ID, listening where
 * C2D_CHAIN_RPC_URL points, default 127.0.0.1:8545) with Ocean's contracts deployed and their addresses
 * written to C2D_CONTRACTS_FILE. The chain lives in memory: every start deploys afresh (same addresses,
 * as the deployer and its nonces are the same).
 */
export async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const rpcUrl = new URL(config.chains[config.chainId]?.rpcUrl ?? DEV_CHAIN_RPC_URL);
  const port = Number(rpcUrl.port || 8545);
  const node = await startHardhatNode({ host: rpcUrl.hostname, port, chainId: config.chainId });
  let stopping = false;
  const stop = (): void => {
    stopping = true;
    void node.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  node.process.once('exit', (code) => {
    if (stopping) return;
    console.error(`hardhat node exited (${code ?? 'signal'})`);
    process.exit(1);
  });
  const provider = rpcProvider(node.rpcUrl, config.chainId, 100);
  const deployer = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(HARDHAT_MNEMONIC), "m/44'/60'/0'/0/0").connect(provider);
  const contracts = await deployOceanContracts(deployer);
  writeContractsFile(config.contractsFile, contracts);
  provider.destroy();
  console.log(`Chain ${config.chainId} at ${node.rpcUrl}; Ocean contracts (ERC721Factory ${contracts.ERC721Factory}) written to ${config.contractsFile}`);
  console.log(`Funded dev accounts come from the mnemonic "${HARDHAT_MNEMONIC}" (publicly known; never for real funds)`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
