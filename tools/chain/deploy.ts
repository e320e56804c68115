import fs from 'node:fs';
import path from 'node:path';
import { ContractFactory, type Signer } from 'ethers';
import { z } from 'zod';
import { artifact, type ContractName } from '../../src/chain/artifacts';
import { contractAt, send } from '../../src/chain/contracts';
import type { OceanContracts } from '../../src/chain/contracts-file';
import type { Logger } from '../../src/domain/logger';

/** Where FactoryRouter sends its share of swap fees on a dev chain: nobody's account. */
const DEAD = '0x000000000000000000000000000000000000dEaD';

async function deployOne(name: ContractName, signer: Signer, args: unknown[]): Promise<string> {
  const { abi, bytecode } = artifact(name);
  const contract = await new ContractFactory(abi, bytecode, signer).deploy(...args);
  await contract.waitForDeployment();
  return contract.getAddress();
}

/**
 * Deploys Ocean's contracts in the order of the wire contract (§4) with `signer` as owner of all,
 * then registers factory, fixed-rate exchange and dispenser with the router. For dev and test chains.
 */
export async function deployOceanContracts(signer: Signer, logger?: Logger): Promise<OceanContracts> {
  const provider = signer.provider;
  if (!provider) throw new Error('the deployer needs a provider');
  const owner = await signer.getAddress();
  const { chainId } = await provider.getNetwork();
  const startBlock = await provider.getBlockNumber();
  const ocean = await deployOne('OceanToken', signer, [owner]);
  const opf = await deployOne('OPFCommunityFeeCollector', signer, [owner, owner]);
  const router = await deployOne('FactoryRouter', signer, [owner, ocean, DEAD, opf, []]);
  const fixedRate = await deployOne('FixedRateExchange', signer, [router]);
  const dispenser = await deployOne('Dispenser', signer, [router]);
  const erc20 = await deployOne('ERC20Template', signer, []);
  const erc721 = await deployOne('ERC721Template', signer, []);
  const factory = await deployOne('ERC721Factory', signer, [erc721, erc20, router]);
  const escrow = await deployOne('Escrow', signer, [router, opf]);
  const r = contractAt('FactoryRouter', router, signer);
  await send(r, 'addFactory', factory);
  await send(r, 'addFixedRateContract', fixedRate);
  await send(r, 'addDispenserContract', dispenser);
  logger?.info({ chainId: Number(chainId), factory }, 'ocean contracts deployed');
  return {
    chainId: Number(chainId),
    Ocean: ocean,
    OPFCommunityFeeCollector: opf,
    startBlock,
    Router: router,
    FixedPrice: fixedRate,
    Dispenser: dispenser,
    ERC20Template: { '1': erc20 },
    ERC721Template: { '1': erc721 },
    ERC721Factory: factory,
    Escrow: escrow,
  };
}

/** Ocean's own name for a chain id where it has one; the lookup goes by the `chainId` inside anyway. */
export const networkName = (chainId: number): string => (chainId === 8996 ? 'development' : `chain-${chainId}`);

/** Writes (or replaces) one network's entry, keeping the others; atomic so readers never see half a file. */
export function writeContractsFile(file: string, contracts: OceanContracts): void {
  let existing: Record<string, unknown> = {};
  try {
    const parsed = z.record(z.string(), z.unknown()).safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
    if (parsed.success) existing = parsed.data;
  } catch {
    // no file yet, or not ours to keep: start a fresh one
  }
  const name = networkName(contracts.chainId);
  const next = { ...existing, [name]: contracts };
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`);
  fs.renameSync(tmp, file);
}
