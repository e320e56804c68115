import fs from 'node:fs';
import { getAddress } from 'ethers';
import { z } from 'zod';
import { ValidationError } from '../domain/errors';

const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/)
  .transform((a) => getAddress(a));

/** One network's entry of Ocean's `address.json` (the fields we deploy and read; others are kept). */
export const oceanContractsSchema = z.looseObject({
  chainId: z.number().int().positive(),
  Ocean: address,
  OPFCommunityFeeCollector: address,
  startBlock: z.number().int().nonnegative().default(0),
  Router: address,
  FixedPrice: address,
  Dispenser: address,
  ERC20Template: z.record(z.string(), address),
  ERC721Template: z.record(z.string(), address),
  ERC721Factory: address,
  /** Ocean's escrow for C2D v2 payments (contracts >= 2.6.0); absent on chains without it. */
  Escrow: address.optional(),
});
export type OceanContracts = z.infer<typeof oceanContractsSchema>;

function invalid(message: string): never {
  throw new ValidationError({ C2D_CONTRACTS_FILE: [message] }, `Invalid setting C2D_CONTRACTS_FILE: ${message}`);
}

/** Reads the entry of `chainId` from an address.json-shaped file. */
export function readContractsFile(file: string, chainId: number): OceanContracts {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    invalid(`cannot read ${file}: ${(err as Error).message}`);
  }
  const entries = z.record(z.string(), z.unknown()).safeParse(json);
  const entry = entries.success ? Object.values(entries.data).find((v) => z.object({ chainId: z.literal(chainId) }).safeParse(v).success) : undefined;
  if (!entry) invalid(`${file} has no network with chainId ${chainId}`);
  const parsed = oceanContractsSchema.safeParse(entry);
  if (!parsed.success) invalid(z.prettifyError(parsed.error));
  return parsed.data;
}

/** The Escrow contract of a network, or a clear error when the contracts file has none (paid v2 jobs need it). */
export function escrowAddress(contracts: OceanContracts): string {
  if (!contracts.Escrow) {
    throw new ValidationError(
      { C2D_CONTRACTS_FILE: ['no Escrow address'] },
      `Invalid setting C2D_CONTRACTS_FILE: the network with chainId ${contracts.chainId} has no "Escrow" address; deploy Escrow(Router, OPFCommunityFeeCollector) from @oceanprotocol/contracts >= 2.6.0 and add it`,
    );
  }
  return contracts.Escrow;
}
