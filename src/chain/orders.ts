import { setTimeout as sleep } from 'node:timers/promises';
import { getAddress, type Log, type Provider, type TransactionReceipt } from 'ethers';
import type { Ddo } from '../domain/ddo';
import { consumableStates } from '../domain/ddo';
import { AccessDeniedError, UnavailableError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import { contractInterface } from './artifacts';
import { contractAt, read } from './contracts';
import { decodeProviderData, feeAmount, providerFeeSigner } from './provider-fee';
import { chainCall } from './rpc';

/** One item of a job that needs an order: a dataset, an additional dataset or a published algorithm. */
export interface OrderItem {
  /** Ocean's error resource key: `dataset`, `datasets[i]`, `algorithm` */
  resource: string;
  ddo: Ddo;
  serviceId: string;
  transferTxId: string;
  /** datasets name the environment their fee was made for; algorithms do not */
  isDataset: boolean;
}

export interface VerifyOrdersRequest {
  consumerAddress: string;
  items: OrderItem[];
  /** feeToken: the environment's own fee token, else the verifier's */
  environment: { id: string; priceMin: number; feeToken?: string };
  /** seconds of compute the fees must cover */
  durationSeconds: number;
  /** unix seconds */
  now: number;
}

/**
 * How a caller waits for a transaction that is not mined (or confirmed) yet. `wait`: look up to
 * receiptAttempts times, receiptDelayMs apart, then refuse (a caller without a retry policy: the API).
 * `once`: throw OrderNotMinedError at the first miss, so the caller's retry policy does the waiting
 * (the verifyOrders activity).
 */
export type ReceiptWait = 'wait' | 'once';

/**
 * A transaction named by the consumer has no mined (and confirmed) receipt yet. Retryable (an
 * UnavailableError); `refusal` is what it becomes once the caller stops waiting: order_not_mined when
 * the chain knows the transaction, order_not_found when it does not.
 */
export class OrderNotMinedError extends UnavailableError {
  constructor(readonly refusal: AccessDeniedError) {
    super('order_not_mined_yet', refusal.message);
    this.name = 'OrderNotMinedError';
  }
}

/** An order that passed steps 1–4: the transaction named, and the startOrder it goes back to. */
export interface CheckedOrder {
  datatoken: string;
  feeReceipt: TransactionReceipt;
  orderReceipt: TransactionReceipt;
}

export interface VerifiedOrder {
  resource: string;
  /** the transaction named by the consumer (a startOrder or a reuseOrder) */
  transferTxId: string;
  /** the startOrder transaction it goes back to */
  orderTxId: string;
  /** provider fee paid in our fee token, base units */
  feePaid: bigint;
}

export interface VerifiedOrders {
  /** the tx id of the item that paid the fee (the first item when nothing was due) */
  agreementId: string;
  orders: VerifiedOrder[];
}

export interface OrderVerifierDeps {
  provider: Provider;
  /** the address our provider fees are paid to and signed by */
  providerAddress: string;
  /** the default fee token (an environment may name its own) */
  feeToken: string;
  feeTokenDecimals?: number;
  confirmations?: number;
  logger: Logger;
  /**
   * A transaction not mined yet is waited for receiptAttempts × receiptDelayMs (default 10 × 500 ms):
   * looked for that many times, that far apart (ReceiptWait `wait`), or for that long by the caller's
   * retry policy (`once`: see receiptWaitMs).
   */
  receiptAttempts?: number;
  receiptDelayMs?: number;
  /** seconds a fee's validUntil may lie in the past (clock skew, block time) */
  feeGraceSeconds?: number;
}

const ONE_DATATOKEN = 10n ** 18n;
const erc20 = contractInterface('ERC20Template');

interface OrderStarted {
  consumer: string;
  payer: string;
  amount: bigint;
  serviceIndex: bigint;
  timestamp: bigint;
}

interface ProviderFeeEvent {
  providerFeeAddress: string;
  providerFeeToken: string;
  providerFeeAmount: bigint;
  providerData: string;
  v: bigint;
  r: string;
  s: string;
  validUntil: bigint;
}

const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function eventsOf(receipt: TransactionReceipt, emitter: string, name: string): { log: Log; args: Record<string, unknown> }[] {
  const out: { log: Log; args: Record<string, unknown> }[] = [];
  for (const log of receipt.logs) {
    if (!sameAddress(log.address, emitter)) continue;
    const parsed = erc20.parseLog(log);
    if (parsed?.name === name) out.push({ log, args: parsed.args.toObject() });
  }
  return out;
}

const anyEmitterHas = (receipt: TransactionReceipt, name: string): boolean => receipt.logs.some((log) => erc20.parseLog(log)?.name === name);

const denier =
  (resource: string) =>
  (code: string, why: string): never => {
    throw new AccessDeniedError(resource, code, `${resource}: ${why}`);
  };

/**
 * Checks datatoken orders on chain, per §4 of the wire contract. Permanent failures throw
 * AccessDeniedError with Ocean's resource key and a stable code; an unreachable chain throws
 * UnavailableError, so the caller may retry later.
 */
export class OrderVerifier {
  private readonly receiptAttempts: number;
  private readonly delayMs: number;
  private readonly grace: number;

  constructor(private readonly deps: OrderVerifierDeps) {
    this.receiptAttempts = deps.receiptAttempts ?? 10;
    this.delayMs = deps.receiptDelayMs ?? 500;
    this.grace = deps.feeGraceSeconds ?? 60;
  }

  /** How long a caller that looks `once` per attempt keeps retrying a transaction not mined yet before it takes the refusal. */
  get receiptWaitMs(): number {
    return this.receiptAttempts * this.delayMs;
  }

  async verify(req: VerifyOrdersRequest, receipts: ReceiptWait = 'wait'): Promise<VerifiedOrders> {
    const orders: VerifiedOrder[] = [];
    for (const item of req.items) orders.push(await this.verifyItem(item, req, receipts));
    const paid = orders.reduce((sum, o) => sum + o.feePaid, 0n);
    const due = feeAmount(req.environment.priceMin, req.durationSeconds, this.deps.feeTokenDecimals ?? 18);
    if (paid < due)
      throw new AccessDeniedError(
        'order',
        'fees_not_paid',
        `order: provider fees paid ${paid} < ${due} due for ${req.durationSeconds} s in ${req.environment.id}`,
      );
    const payer = orders.reduce<VerifiedOrder | undefined>((best, o) => (!best || o.feePaid > best.feePaid ? o : best), undefined);
    return { agreementId: payer?.transferTxId ?? '', orders };
  }

  /** One item: its NFT and datatoken, its order, and the provider fee of its latest (re)order. */
  async verifyItem(
    item: OrderItem,
    req: Pick<VerifyOrdersRequest, 'consumerAddress' | 'environment' | 'now'>,
    receipts: ReceiptWait = 'wait',
  ): Promise<VerifiedOrder> {
    return this.checkFee(item, await this.checkOrder(item, req, receipts), req);
  }

  /** Steps 1–4 of §4: NFT and datatoken, mined receipt, OrderReused → OrderStarted, consumer, service timeout. */
  async checkOrder(item: OrderItem, req: Pick<VerifyOrdersRequest, 'consumerAddress' | 'now'>, receipts: ReceiptWait = 'wait'): Promise<CheckedOrder> {
    const { resource, ddo } = item;
    const deny = denier(resource);
    const serviceIndex = ddo.services.findIndex((s) => s.id === item.serviceId);
    const service = ddo.services[serviceIndex];
    if (!service) return deny('service_not_found', `service ${item.serviceId} is not in ${ddo.id}`);
    const datatoken = service.datatokenAddress;
    if (!ddo.nftAddress || !datatoken) return deny('order_not_applicable', `${ddo.id} has no NFT or datatoken to order`);

    await this.checkNft(ddo.nftAddress, datatoken, deny);

    const feeReceipt = await this.minedReceipt(item.transferTxId, resource, receipts);
    let orderReceipt = feeReceipt;
    const reused = eventsOf(feeReceipt, datatoken, 'OrderReused')[0];
    if (reused) orderReceipt = await this.minedReceipt(String(reused.args.orderTxId), resource, receipts);

    const started = eventsOf(orderReceipt, datatoken, 'OrderStarted')[0]?.args as OrderStarted | undefined;
    if (!started) {
      if (anyEmitterHas(orderReceipt, 'OrderStarted')) return deny('datatoken_mismatch', `transaction ${orderReceipt.hash} orders another datatoken`);
      return deny('order_not_found', `transaction ${orderReceipt.hash} is not an order`);
    }
    if (started.serviceIndex !== BigInt(serviceIndex))
      return deny('service_index_mismatch', `order is for service index ${started.serviceIndex}, not ${serviceIndex}`);
    if (started.amount < ONE_DATATOKEN) return deny('order_amount_too_low', `order spent ${started.amount} < 1 datatoken`);
    if (!sameAddress(started.consumer, req.consumerAddress) && !sameAddress(started.payer, req.consumerAddress))
      return deny('consumer_mismatch', 'the caller is neither consumer nor payer of the order');
    if (service.timeout !== 0 && req.now - Number(started.timestamp) > service.timeout)
      return deny('order_expired', `order is older than the service timeout of ${service.timeout} s`);
    return { datatoken, feeReceipt, orderReceipt };
  }

  /** Step 5 of §4: the provider fee of the named transaction is ours, for this item, and not expired. */
  checkFee(item: OrderItem, order: CheckedOrder, req: Pick<VerifyOrdersRequest, 'environment' | 'now'>): VerifiedOrder {
    const { resource } = item;
    const { datatoken, feeReceipt, orderReceipt } = order;
    const deny = denier(resource);
    const fee = eventsOf(feeReceipt, datatoken, 'ProviderFee')[0]?.args as ProviderFeeEvent | undefined;
    if (!fee) return deny('provider_fee_missing', 'the order carries no provider fee');
    if (!sameAddress(fee.providerFeeAddress, this.deps.providerAddress)) return deny('provider_fee_not_ours', 'the provider fee is paid to another provider');
    let signer: string;
    try {
      signer = providerFeeSigner({ ...fee, v: Number(fee.v) });
    } catch {
      return deny('provider_fee_not_ours', 'the provider fee signature is malformed');
    }
    if (!sameAddress(signer, this.deps.providerAddress)) return deny('provider_fee_not_ours', 'the provider fee was not signed by this provider');
    const data = decodeProviderData(fee.providerData);
    if (!data || !sameAddress(data.dt, datatoken) || data.id !== item.serviceId)
      return deny('provider_fee_mismatch', 'the provider fee was made for another datatoken or service');
    if (item.isDataset && data.environment !== req.environment.id)
      return deny('provider_fee_mismatch', `the provider fee was made for environment ${data.environment}`);
    if (fee.validUntil !== 0n && Number(fee.validUntil) + this.grace < req.now) return deny('provider_fee_expired', 'the provider fee expired');

    const feePaid = sameAddress(fee.providerFeeToken, this.feeTokenOf(req.environment)) ? fee.providerFeeAmount : 0n;
    return { resource, transferTxId: feeReceipt.hash, orderTxId: orderReceipt.hash, feePaid };
  }

  /** The token an environment's fees are paid in. */
  feeTokenOf(environment: { feeToken?: string }): string {
    return environment.feeToken ?? this.deps.feeToken;
  }

  private async checkNft(nftAddress: string, datatoken: string, deny: (code: string, why: string) => never): Promise<void> {
    const nft = contractAt('ERC721Template', getAddress(nftAddress), this.deps.provider);
    let deployed: unknown;
    let metadata: unknown;
    try {
      [deployed, metadata] = await Promise.all([this.rpc(() => read(nft, 'isDeployed', datatoken)), this.rpc(() => read(nft, 'getMetaData'))]);
    } catch (err) {
      if (err instanceof UnavailableError) throw err;
      return deny('nft_not_found', `${nftAddress} is not an Ocean data NFT`);
    }
    if (deployed !== true) return deny('datatoken_not_deployed', `the datatoken was not deployed by NFT ${nftAddress}`);
    const state = Number((metadata as unknown[])[2]);
    if (!consumableStates.includes(state)) return deny('asset_not_consumable', `asset is in state ${state}, not consumable`);
  }

  /** The receipt of a mined (and confirmed) transaction; for one not mined yet see ReceiptWait. */
  private async minedReceipt(txId: string, resource: string, receipts: ReceiptWait): Promise<TransactionReceipt> {
    if (!/^0x[0-9a-fA-F]{64}$/.test(txId)) return denier(resource)('order_not_found', 'transferTxId is not a transaction hash');
    for (let look = 1; ; look++) {
      try {
        return await this.lookForReceipt(txId, resource);
      } catch (err) {
        if (!(err instanceof OrderNotMinedError) || receipts === 'once') throw err;
        if (look >= this.receiptAttempts) throw err.refusal;
      }
      await sleep(this.delayMs);
    }
  }

  /** One look: the receipt, or OrderNotMinedError. */
  private async lookForReceipt(txId: string, resource: string): Promise<TransactionReceipt> {
    const confirmations = this.deps.confirmations ?? 0;
    const receipt = await this.rpc(() => this.deps.provider.getTransactionReceipt(txId));
    if (receipt && receipt.status !== 1) return denier(resource)('order_reverted', `transaction ${txId} reverted`);
    if (receipt && (confirmations === 0 || (await this.rpc(() => receipt.confirmations())) >= confirmations)) return receipt;
    const known = receipt !== null || (await this.rpc(() => this.deps.provider.getTransaction(txId))) !== null;
    throw new OrderNotMinedError(
      known
        ? new AccessDeniedError(resource, 'order_not_mined', `${resource}: transaction ${txId} is not mined (or confirmed) yet`)
        : new AccessDeniedError(resource, 'order_not_found', `${resource}: transaction ${txId} is unknown to the chain`),
    );
  }

  /** Maps transport faults to UnavailableError; a contract-level failure (revert, bad data) passes through. */
  private async rpc<T>(call: () => Promise<T>): Promise<T> {
    return chainCall(this.deps.logger, call);
  }
}
