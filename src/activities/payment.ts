import { amountForMinutes, type EscrowPayments, type LockResult, lockAmount, lockSeconds, type SettleResult } from '../chain/escrow';
import { C2DError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { EscrowPayment } from '../domain/resources';
import { billedMinutes } from '../domain/resources';
import { mapFailures } from './failures';

export type { LockResult, SettleResult } from '../chain/escrow';

export interface LockPaymentInput {
  jobId: string;
  payment: EscrowPayment;
}

export interface SettlePaymentInput {
  jobId: string;
  payment: EscrowPayment;
  lock: LockResult;
  /** seconds the algorithm ran (0: it never started, nothing is owed) */
  ranSeconds: number;
  /** what the claim carries as its proof (public: the job's id and how it ended) */
  proof: string;
}

/**
 * The payment saga's chain calls (C2D v2 paid jobs): each an activity retried with backoff while the chain
 * is unreachable, and idempotent per job id (EscrowPayments), so a worker crash or a retry never locks or
 * claims twice.
 */
export function createPaymentActivities(deps: { escrow?: EscrowPayments; chainId?: number; logger: Logger }) {
  const escrowFor = (payment: EscrowPayment): EscrowPayments => {
    if (!deps.escrow || payment.chainId !== deps.chainId)
      throw new C2DError('validation', 'escrow_unavailable', `this worker has no Escrow contract on chain ${payment.chainId}: it cannot take paid jobs there`);
    return deps.escrow;
  };
  return {
    /** Locks the job's price (pricePerMinute × its billed maxJobDuration) in the consumer's Escrow deposit. */
    async lockPayment(input: LockPaymentInput): Promise<LockResult> {
      return mapFailures(async () => {
        const escrow = escrowFor(input.payment);
        const { token, payer, pricePerMinute, maxJobDuration } = input.payment;
        const amount = lockAmount(pricePerMinute, maxJobDuration, await escrow.decimals(token));
        const locked = await escrow.lock(input.jobId, token, payer, amount, lockSeconds(input.payment));
        deps.logger.info({ jobId: input.jobId, amount: locked.amount, lockTx: locked.lockTx }, 'payment locked');
        return locked;
      });
    },

    /** Claims the minutes the algorithm used (nothing when it never ran) and gives the rest back to the consumer. */
    async settlePayment(input: SettlePaymentInput): Promise<SettleResult> {
      return mapFailures(async () => {
        const escrow = escrowFor(input.payment);
        const { token, payer, pricePerMinute } = input.payment;
        const cost = input.ranSeconds > 0 ? amountForMinutes(pricePerMinute, billedMinutes(input.ranSeconds), await escrow.decimals(token)) : 0n;
        const settled = await escrow.claim(input.jobId, token, payer, cost, input.proof, input.lock.fromBlock);
        deps.logger.info({ jobId: input.jobId, cost: settled.cost, claimTx: settled.claimTx, cancelTx: settled.cancelTx }, 'payment settled');
        return settled;
      });
    },
  };
}
