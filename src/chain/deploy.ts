import { ContractFactory, type Signer } from 'ethers';
import type { Logger } from '../domain/logger';
import { artifact, type ContractName } from './artifacts';
import { contractAt, send } from './contracts';
import type { OceanContracts } from './contracts-file';

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
  };
}
