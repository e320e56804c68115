import { CancellationScope, proxyActivities } from '@temporalio/workflow';
import type { Activities, LockResult } from '../activities';
import type { JobInput } from '../domain/job';
import type { JobStatusCode } from '../domain/status';
import { chainCall } from './activity-options';
import type { JobState } from './job-view';

const { lockPayment } = proxyActivities<Activities>({ ...chainCall, summary: "Lock the job's price in the consumer's Escrow deposit" });
const { settlePayment } = proxyActivities<Activities>({ ...chainCall, summary: 'Claim the minutes used from the Escrow lock, release the rest' });

/**
 * The payment saga of a C2D v2 paid job (Ocean's Escrow contract): lock the price once the job has capacity, claim the
 * minutes the algorithm ran at the end (nothing when it never ran) and give the rest back — within seconds
 * of the job's end, where ocean-node claims by an hourly cron. Both chain calls are activities retried
 * until the chain answers and idempotent per job id, so a crash or an outage between lock and claim never
 * claims twice nor loses the lock. A job without `payment` has nothing to lock or settle.
 */
export function paymentSaga(input: JobInput, state: JobState) {
  let locked: LockResult | undefined;
  /** workflow time (ms) of the algorithm's run: what the claim bills */
  let startedAt: number | undefined;
  let endedAt: number | undefined;
  return {
    async lock(): Promise<void> {
      if (!input.payment) return;
      const payment = input.payment;
      const { chainId, token } = payment;
      // not cut short by a stop: a lock taken on chain must be known here, so that the job's end releases it
      locked = await CancellationScope.nonCancellable(() => lockPayment({ jobId: input.jobId, payment }));
      state.payment = { chainId, token, lockTx: locked.lockTx, claimTx: null, cancelTx: null, cost: null };
    },
    algorithmStarted: (): void => void (startedAt = Date.now()),
    algorithmEnded: (): void => void (endedAt = Date.now()),
    locked: (): boolean => locked !== undefined,
    /** Claims what the job owes; `status` (how it ended) goes into the claim's public proof. */
    async settle(status: JobStatusCode): Promise<void> {
      if (!locked || !input.payment) return;
      const ranMs = startedAt === undefined ? 0 : (endedAt ?? Date.now()) - startedAt;
      const settled = await settlePayment({
        jobId: input.jobId,
        payment: input.payment,
        lock: locked,
        ranSeconds: ranMs / 1000,
        proof: JSON.stringify({ jobId: input.jobId, status, ranSeconds: Math.round(ranMs / 1000) }),
      });
      if (state.payment)
        state.payment = { ...state.payment, claimTx: settled.claimTx, cost: settled.cost, ...(settled.cancelTx ? { cancelTx: settled.cancelTx } : {}) };
    },
  };
}
