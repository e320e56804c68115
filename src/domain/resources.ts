import { z } from 'zod';

/**
 * ocean-node's compute resources (C2D v2): an environment declares what it has of each resource in all
 * (`total`) and what one job may ask for (`min`..`max`); a job asks for amounts. Units as ocean-node's:
 * cpu in cores, ram and disk in GB, gpu in devices.
 */
export const resourceIdSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'lower-case letters, digits, _ - (max 32), starting with a letter');

export const resourceSchema = z
  .object({
    id: resourceIdSchema,
    description: z.string().optional(),
    /** of this environment, for all its jobs together */
    total: z.number().positive(),
    /** the least and the most one job may ask for */
    min: z.number().nonnegative().default(0),
    max: z.number().positive(),
  })
  .refine((r) => r.min <= r.max && r.max <= r.total, { message: 'needs min <= max <= total' });
export type Resource = z.infer<typeof resourceSchema>;

/** An amount of one resource asked for by (or granted to) a job. */
export interface ResourceAmount {
  id: string;
  amount: number;
}

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x address');

/**
 * What a paid job costs, per chain (chain id as a decimal string) and fee token, as ocean-node's
 * `fees`: a price per unit of each resource per minute, in fee-token units (not wei).
 */
export const feesSchema = z.record(
  z.string().regex(/^[1-9][0-9]*$/, 'a chain id'),
  z.array(
    z.object({
      feeToken: address,
      prices: z.array(z.object({ id: resourceIdSchema, price: z.number().nonnegative() })).min(1),
    }),
  ),
);
export type Fees = z.infer<typeof feesSchema>;

/** The price of `amounts` per minute on `chainId` in `token`, or undefined when the environment does not take that token there. */
export function pricePerMinute(fees: Fees, chainId: number, token: string, amounts: ResourceAmount[]): number | undefined {
  const fee = fees[String(chainId)]?.find((f) => f.feeToken.toLowerCase() === token.toLowerCase());
  if (!fee) return undefined;
  let total = 0;
  for (const { id, amount } of amounts) total += (fee.prices.find((p) => p.id === id)?.price ?? 0) * amount;
  return total;
}

/** Minutes a job is charged for: every started minute counts (ocean-node's rule). */
export const billedMinutes = (seconds: number): number => Math.max(1, Math.ceil(seconds / 60));

/**
 * How a C2D v2 job is paid through Ocean's Escrow contract (the workflow's payment saga: lock at start,
 * claim the minutes used at the end, nothing when the algorithm never ran). Public chain facts only: it
 * is part of the job input and so of Temporal's history. The Escrow address and the payee (the
 * provider's address) come from the worker's chain settings.
 */
export interface EscrowPayment {
  chainId: number;
  /** the fee token (ERC-20) */
  token: string;
  /** the consumer, lower-case 0x address: its deposit in the Escrow is locked */
  payer: string;
  /** the job's resource amounts, as priced (the environment's fees for chainId and token) */
  resources: ResourceAmount[];
  /** fee-token units per minute for these resources (pricePerMinute) */
  pricePerMinute: number;
  /** seconds the lock covers: the job's maxJobDuration; the lock holds pricePerMinute × billedMinutes(maxJobDuration) */
  maxJobDuration: number;
}
