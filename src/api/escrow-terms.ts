import { lockAmount, lockSeconds } from '../chain/escrow';
import { type Environment, jobMaxDuration, jobResourceAmounts } from '../domain/environment';
import { C2DError } from '../domain/errors';
import { type EscrowPayment, pricePerMinute, type ResourceAmount } from '../domain/resources';
import type { AppDeps } from './deps';

/** What initializeCompute and computeStart of ocean.js ≥ 4 say of a paid job (top-level fields win over `payment`'s). */
export interface PaymentRequest {
  environment: string;
  consumerAddress: string;
  payment: { chainId: number; token: string; resources?: ResourceAmount[] | undefined; maxJobDuration?: number | undefined };
  resources?: ResourceAmount[] | undefined;
  maxJobDuration?: number | undefined;
}

export interface PaymentTerms {
  payment: EscrowPayment;
  /** token units (wei) the lock holds */
  amount: bigint;
  /** what the consumer's authorization of this provider must allow as maxLockSeconds */
  minLockSeconds: number;
}

/**
 * What a paid C2D v2 job costs on this environment, as initializeCompute announces it and computeStart
 * locks it: the environment's price for the chain and token × the job's resource amounts, for every
 * started minute of its maxJobDuration (capped at the environment's). Every refusal says what to change.
 */
export async function paymentTerms(
  deps: Pick<AppDeps, 'escrow' | 'chainId' | 'environments'>,
  body: PaymentRequest,
): Promise<PaymentTerms & { environment: Environment }> {
  const env = deps.environments.find((e) => e.id === body.environment);
  if (!env) throw new C2DError('validation', 'unknown_environment', 'Compute environment does not exist');
  const req = {
    chainId: body.payment.chainId,
    token: body.payment.token,
    payer: body.consumerAddress,
    resources: body.resources ?? body.payment.resources,
    maxJobDuration: body.maxJobDuration ?? body.payment.maxJobDuration,
  };
  if (!deps.escrow || req.chainId !== deps.chainId)
    throw new C2DError(
      'validation',
      'escrow_unavailable',
      `this provider takes Escrow payments on chain ${deps.chainId} only${deps.escrow ? '' : ', and has no Escrow contract there'}`,
    );
  const amounts = jobResourceAmounts(env, req.resources, false);
  if (typeof amounts === 'string') throw new C2DError('validation', 'bad_resources', amounts);
  const price = pricePerMinute(env.fees, req.chainId, req.token, amounts);
  if (price === undefined) {
    const taken = (env.fees[String(req.chainId)] ?? []).map((f) => f.feeToken);
    throw new C2DError(
      'validation',
      'token_not_accepted',
      `Compute environment ${env.id} does not take token ${req.token} on chain ${req.chainId}${taken.length > 0 ? `: it takes ${taken.join(', ')}` : ': it has no fees there (free compute only)'}`,
    );
  }
  const maxJobDuration = jobMaxDuration(env, req.maxJobDuration !== undefined ? { maxJobDuration: req.maxJobDuration } : {});
  const amount = lockAmount(price, maxJobDuration, await deps.escrow.decimals(req.token));
  return {
    environment: env,
    payment: { chainId: req.chainId, token: req.token, payer: req.payer.toLowerCase(), resources: amounts, pricePerMinute: price, maxJobDuration },
    amount,
    minLockSeconds: lockSeconds({ maxJobDuration }),
  };
}

/** Refuses a paid start the Escrow would refuse to lock: say so now, with what to do, rather than fail the job later. */
export async function requireLockable(deps: Pick<AppDeps, 'escrow'>, terms: PaymentTerms): Promise<void> {
  const { token, payer } = terms.payment;
  const state = await deps.escrow!.payerState(token, payer);
  const need = `${terms.amount} (token units) for ${terms.minLockSeconds} s`;
  if (state.available < terms.amount)
    throw new C2DError(
      'validation',
      'insufficient_escrow_funds',
      `the Escrow holds ${state.available} of token ${token} for ${payer}, and this job locks ${need}: deposit more`,
    );
  const a = state.auth;
  if (!a)
    throw new C2DError(
      'validation',
      'escrow_not_authorized',
      `${payer} has not authorized this provider in the Escrow for token ${token}: authorize it for at least ${need}`,
    );
  if (a.maxLockSeconds < BigInt(terms.minLockSeconds))
    throw new C2DError(
      'validation',
      'escrow_lock_too_short',
      `the Escrow authorization allows locks of ${a.maxLockSeconds} s, and this job needs ${terms.minLockSeconds} s: authorize a longer maxLockSeconds`,
    );
  if (a.maxLockedAmount - a.currentLockedAmount < terms.amount)
    throw new C2DError(
      'validation',
      'escrow_limit_reached',
      `the Escrow authorization leaves ${a.maxLockedAmount - a.currentLockedAmount} to lock, and this job locks ${terms.amount}: authorize more`,
    );
  if (a.currentLocks >= a.maxLockCounts)
    throw new C2DError(
      'validation',
      'escrow_limit_reached',
      `the Escrow authorization allows ${a.maxLockCounts} locks at once and all are taken: wait for a job to settle, or authorize more`,
    );
}
