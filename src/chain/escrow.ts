import { setTimeout as sleep } from 'node:timers/promises';
import { type Contract, type JsonRpcProvider, NonceManager, type TransactionReceipt, Wallet, getBigInt, keccak256, parseUnits, toUtf8Bytes } from 'ethers';
import { contractAt, read, send } from './contracts';
import { billedMinutes } from '../domain/resources';

/**
 * Pure helpers of the escrow payment saga (the chain calls come with the workflow's activities).
 * The Escrow address is `escrowAddress(contracts)` (contracts-file.ts); the payee is the provider's wallet.
 */

/** The Escrow lock id of a job: uint256(keccak256(jobId)), > 0 and unique per (payer, payee) as the contract requires. */
export function escrowLockId(jobId: string): bigint {
  const id = getBigInt(keccak256(toUtf8Bytes(jobId)));
  if (id === 0n) throw new Error(`job id ${jobId} hashes to 0, which Escrow refuses`);
  return id;
}

/** The payee of every lock this provider creates: the address of C2D_PROVIDER_PRIVATE_KEY. */
export const escrowPayee = (providerPrivateKey: string): string => new Wallet(providerPrivateKey).address;

/**
 * Token units (wei) for `minutes` at `pricePerMinute` fee-token units, exactly: the price goes through its
 * decimal string (parseUnits), never a float multiplication in wei.
 */
export function amountForMinutes(pricePerMinute: number, minutes: number, decimals: number): bigint {
  if (!Number.isFinite(pricePerMinute) || pricePerMinute < 0) throw new Error(`invalid price per minute ${pricePerMinute}`);
  if (!Number.isInteger(minutes) || minutes < 0) throw new Error(`invalid minutes ${minutes}`);
  const text = pricePerMinute.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 20 });
  return parseUnits(text, decimals) * BigInt(minutes);
}

/** What the lock holds at start: pricePerMinute × billedMinutes(maxJobDuration). */
export const lockAmount = (pricePerMinute: number, maxJobDurationSeconds: number, decimals: number): bigint =>
  amountForMinutes(pricePerMinute, billedMinutes(maxJobDurationSeconds), decimals);

/**
 * Seconds a job's lock lasts beyond its maxJobDuration: configuring, an image pull, publishing and the
 * claim itself must fit (the lock is taken once the job has capacity, so its queue wait does not count).
 * A consumer's authorization must allow maxLockSeconds of at least lockSeconds() (initializeCompute says
 * how much: minLockSeconds).
 */
export const ESCROW_LOCK_MARGIN_SECONDS = 1800;

/** How long a job's lock lasts: its maxJobDuration and the margin. */
export const lockSeconds = (payment: { maxJobDuration: number }): number => Math.ceil(payment.maxJobDuration + ESCROW_LOCK_MARGIN_SECONDS);

/** What the chain says of a job's lock, and what settling it did. Amounts in token units (wei) as decimal strings: they go into history. */
export interface LockResult {
  /** the transaction that created the lock; null when an earlier attempt had created it already */
  lockTx: string | null;
  amount: string;
  /** the block from which the lock's events are looked up (a retried claim finds its own claim there) */
  fromBlock: number;
}
export interface SettleResult {
  /** the claim's transaction (cost > 0, or 0 to release the lock at once); null when the lock was gone already and no claim of ours was found */
  claimTx: string | null;
  /** what was claimed: the cost of the minutes used, at most the lock */
  cost: string;
  /** the lock had expired and was cancelled (this transaction) before we claimed: the consumer got it all back */
  cancelTx?: string;
}

/**
 * The provider's side of Ocean's Escrow contract (payee): lock a job's price at its start, claim the
 * minutes it used at its end (claimLockAndWithdraw: the rest goes back to the payer, our share to the
 * provider's wallet). Both are idempotent per job id, so a retried activity never locks or claims twice:
 * a lock that exists already is the job's; a claim that finds no lock looks for its own Claimed event.
 */
export class EscrowPayments {
  private readonly wallet: NonceManager;
  private readonly payee: string;
  private readonly decimalsOf = new Map<string, number>();

  constructor(private readonly opts: { provider: JsonRpcProvider; escrow: string; providerPrivateKey: string; confirmations?: number }) {
    const wallet = new Wallet(opts.providerPrivateKey, opts.provider);
    this.payee = wallet.address;
    // back-to-back sends from one wallet must not reuse a nonce (the provider caches the count)
    this.wallet = new NonceManager(wallet);
  }

  /** the Escrow contract's address */
  get address(): string {
    return this.opts.escrow;
  }

  /** the payee of every lock: the provider's address */
  get payeeAddress(): string {
    return this.payee;
  }

  private contract(): Contract {
    return contractAt('Escrow', this.opts.escrow, this.wallet);
  }

  async decimals(token: string): Promise<number> {
    const key = token.toLowerCase();
    let d = this.decimalsOf.get(key);
    if (d === undefined) {
      d = Number(await read(contractAt('OceanToken', token, this.opts.provider), 'decimals'));
      this.decimalsOf.set(key, d);
    }
    return d;
  }

  /** The job's lock as the contract holds it now, or null. */
  async lockOf(jobId: string, token: string, payer: string): Promise<{ amount: bigint; expiry: bigint } | null> {
    const id = escrowLockId(jobId);
    const locks = (await read(this.contract(), 'getLocks', token, payer, this.payee)) as { jobId: bigint; amount: bigint; expiry: bigint }[];
    const lock = locks.find((l) => l.jobId === id);
    return lock ? { amount: lock.amount, expiry: lock.expiry } : null;
  }

  /** The payer's funds in the Escrow and its authorization of this provider for `token`. */
  async payerState(
    token: string,
    payer: string,
  ): Promise<{
    available: bigint;
    auth: { maxLockedAmount: bigint; currentLockedAmount: bigint; maxLockSeconds: bigint; maxLockCounts: bigint; currentLocks: bigint } | null;
  }> {
    const funds = (await read(this.contract(), 'getUserFunds', payer, token)) as { available: bigint };
    const auths = (await read(this.contract(), 'getAuthorizations', token, payer, this.payee)) as {
      payee: string;
      maxLockedAmount: bigint;
      currentLockedAmount: bigint;
      maxLockSeconds: bigint;
      maxLockCounts: bigint;
      currentLocks: bigint;
    }[];
    const auth = auths.find((a) => a.payee.toLowerCase() === this.payee.toLowerCase()) ?? null;
    return { available: funds.available, auth };
  }

  /** Locks `amount` of the payer's deposit for the job, for `seconds`; the job's existing lock when there is one. */
  async lock(jobId: string, token: string, payer: string, amount: bigint, seconds: number): Promise<LockResult> {
    const fromBlock = await this.opts.provider.getBlockNumber();
    const existing = await this.lockOf(jobId, token, payer);
    if (existing) return { lockTx: null, amount: existing.amount.toString(), fromBlock: Math.max(0, fromBlock - 1000) };
    const receipt = await this.send('createLock', escrowLockId(jobId), token, payer, amount, seconds);
    await this.confirmed(receipt.blockNumber);
    return { lockTx: receipt.hash, amount: amount.toString(), fromBlock: receipt.blockNumber };
  }

  /** Claims `cost` (at most the lock) and releases the rest to the payer; finds its own earlier claim when the lock is gone. */
  async claim(jobId: string, token: string, payer: string, cost: bigint, proof: string, fromBlock: number): Promise<SettleResult> {
    const lock = await this.lockOf(jobId, token, payer);
    if (!lock) return this.settledEarlier(jobId, payer, fromBlock);
    const amount = cost < lock.amount ? cost : lock.amount;
    const receipt = await this.send('claimLockAndWithdraw', escrowLockId(jobId), token, payer, amount, toUtf8Bytes(proof));
    await this.confirmed(receipt.blockNumber);
    return { claimTx: receipt.hash, cost: amount.toString() };
  }

  /** The lock is gone: our Claimed event for it (a retried claim), or its Canceled one (it expired first). */
  private async settledEarlier(jobId: string, payer: string, fromBlock: number): Promise<SettleResult> {
    const id = escrowLockId(jobId);
    const escrow = this.contract();
    for (const event of ['Claimed', 'Canceled'] as const) {
      const logs = await escrow.queryFilter(escrow.filters[event]!(this.payee, null, null, payer), fromBlock);
      const mine = logs.find((l) => 'args' in l && (l.args as unknown as { jobId: bigint }).jobId === id);
      if (mine && 'args' in mine) {
        const amount = (mine.args as unknown as { amount: bigint }).amount;
        return event === 'Claimed' ? { claimTx: mine.transactionHash, cost: amount.toString() } : { claimTx: null, cost: '0', cancelTx: mine.transactionHash };
      }
    }
    return { claimTx: null, cost: '0' };
  }

  /** A transaction of the provider's wallet; a failed one leaves the nonce where the chain has it. */
  private async send(method: string, ...args: unknown[]): Promise<TransactionReceipt> {
    try {
      return await send(this.contract(), method, ...args);
    } catch (err) {
      this.wallet.reset(); // the manager counted the failed transaction: ask the chain again next time
      if ((err as { code?: string }).code === 'INSUFFICIENT_FUNDS' || /insufficient funds/i.test((err as Error).message))
        throw new Error(
          `Escrow ${method}: the provider's wallet ${this.payee} cannot pay for gas on chain ${(await this.opts.provider.getNetwork()).chainId}: fund it`,
          { cause: err },
        );
      throw err;
    }
  }

  private async confirmed(block: number): Promise<void> {
    const needed = this.opts.confirmations ?? 0;
    while (needed > 0 && (await this.opts.provider.getBlockNumber()) - block + 1 < needed) await sleep(1000);
  }
}
