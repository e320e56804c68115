import fs from 'node:fs';
import { Interface, type InterfaceAbi } from 'ethers';

/** Ocean's compiled contracts (ABI + bytecode) as shipped by npm `@oceanprotocol/contracts`; no solc needed. */
const paths = {
  OceanToken: 'utils/OceanToken.sol/OceanToken.json',
  OPFCommunityFeeCollector: 'communityFee/OPFCommunityFeeCollector.sol/OPFCommunityFeeCollector.json',
  FactoryRouter: 'pools/FactoryRouter.sol/FactoryRouter.json',
  FixedRateExchange: 'pools/fixedRate/FixedRateExchange.sol/FixedRateExchange.json',
  Dispenser: 'pools/dispenser/Dispenser.sol/Dispenser.json',
  ERC20Template: 'templates/ERC20Template.sol/ERC20Template.json',
  ERC721Template: 'templates/ERC721Template.sol/ERC721Template.json',
  ERC721Factory: 'ERC721Factory.sol/ERC721Factory.json',
  Escrow: 'escrow/Escrow.sol/Escrow.json',
} as const;

export type ContractName = keyof typeof paths;

export interface Artifact {
  abi: InterfaceAbi;
  bytecode: string;
}

const cache = new Map<ContractName, Artifact>();

export function artifact(name: ContractName): Artifact {
  let found = cache.get(name);
  if (!found) {
    const file = require.resolve(`@oceanprotocol/contracts/artifacts/contracts/${paths[name]}`);
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { abi: InterfaceAbi; bytecode: string };
    found = { abi: json.abi, bytecode: json.bytecode };
    cache.set(name, found);
  }
  return found;
}

const interfaces = new Map<ContractName, Interface>();

export function contractInterface(name: ContractName): Interface {
  let found = interfaces.get(name);
  if (!found) {
    found = new Interface(artifact(name).abi);
    interfaces.set(name, found);
  }
  return found;
}
