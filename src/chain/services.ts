import { type JsonRpcProvider, Wallet } from 'ethers';
import type { ChainSettings } from '../config';
import type { Logger } from '../domain/logger';
import { type OceanContracts, readContractsFile } from './contracts-file';
import { ChainDdoResolver } from './ddo-resolver';
import { EscrowPayments } from './escrow';
import { OrderVerifier } from './orders';
import { rpcProvider } from './rpc';

/** Everything one chain gives the provider: on-chain DDOs, order verification, the fee token. */
export interface ChainServices {
  chainId: number;
  provider: JsonRpcProvider;
  contracts: OceanContracts;
  feeToken: string;
  resolver: ChainDdoResolver;
  verifier: OrderVerifier;
  /** C2D v2 paid jobs: the provider's side of Ocean's Escrow; absent when this chain has no Escrow deployed */
  escrow?: EscrowPayments;
  close(): void;
}

/**
 * Builds the chain's services from its settings. Reads the contracts file now, so it must exist
 * (`npm run dev` starts the chain and waits for the file before worker and API).
 */
export function createChainServices(
  settings: ChainSettings,
  opts: { providerPrivateKey: string; logger: Logger; pollingIntervalMs?: number; indexFile?: string },
): ChainServices {
  const contracts = readContractsFile(settings.contractsFile, settings.chainId);
  const provider = rpcProvider(settings.rpcUrl, settings.chainId, opts.pollingIntervalMs);
  const feeToken = settings.feeToken ?? contracts.Ocean;
  const logger = opts.logger.child({ chainId: settings.chainId });
  const resolver = new ChainDdoResolver({
    provider,
    chainId: settings.chainId,
    factory: contracts.ERC721Factory,
    startBlock: contracts.startBlock,
    providerPrivateKey: opts.providerPrivateKey,
    logger: logger.child({ part: 'chain-resolver' }),
    minSyncIntervalMs: 250,
    ...(opts.indexFile ? { indexFile: opts.indexFile } : {}),
  });
  const verifier = new OrderVerifier({
    provider,
    providerAddress: new Wallet(opts.providerPrivateKey).address,
    feeToken,
    confirmations: settings.confirmations,
    logger: logger.child({ part: 'orders' }),
  });
  const escrow = contracts.Escrow
    ? new EscrowPayments({ provider, escrow: contracts.Escrow, providerPrivateKey: opts.providerPrivateKey, confirmations: settings.confirmations })
    : undefined;
  return { chainId: settings.chainId, provider, contracts, feeToken, resolver, verifier, ...(escrow ? { escrow } : {}), close: () => provider.destroy() };
}
