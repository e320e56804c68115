import { Contract, type ContractRunner, type TransactionReceipt } from 'ethers';
import { contractInterface, type ContractName } from './artifacts';

/** A contract of Ocean's by name, at an address. */
export const contractAt = (name: ContractName, address: string, runner: ContractRunner): Contract => new Contract(address, contractInterface(name), runner);

/** Sends a transaction and waits until it is mined; throws when it reverts. */
export async function send(contract: Contract, method: string, ...args: unknown[]): Promise<TransactionReceipt> {
  const tx = await contract.getFunction(method).send(...args);
  const receipt = await tx.wait();
  if (!receipt) throw new Error(`${method}: no receipt`);
  return receipt;
}

/** A view call; the caller parses the result (ethers returns loosely typed values). */
export const read = (contract: Contract, method: string, ...args: unknown[]): Promise<unknown> =>
  contract.getFunction(method).staticCall(...args) as Promise<unknown>;
