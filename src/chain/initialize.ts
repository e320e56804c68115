import type { BaseWallet } from 'ethers';
import type { AssetResolver } from '../assets/resolver';
import type { Environment } from '../domain/environment';
import { AccessDeniedError, UnavailableError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import type { OrderItem, OrderVerifier } from './orders';
import { feeAmount, type ProviderFee, signProviderFee } from './provider-fee';

export interface InitializeItem {
  documentId: string;
  serviceId: string;
  transferTxId?: string;
}

export interface InitializeComputeRequest {
  datasets: InitializeItem[];
  /** absent for a raw algorithm: nothing to order */
  algorithm?: InitializeItem;
  environment: Pick<Environment, 'id' | 'priceMin' | 'feeToken'>;
  /** unix seconds the fee must stay valid until */
  validUntil: number;
  consumerAddress: string;
  /** unix seconds */
  now: number;
}

/**
 * Ocean's three answers per item: order needed, order and fee still valid, order valid but a new fee
 * is due (`reuseOrder`). An asset without a datatoken (catalog) needs no order: `{}`.
 */
export type InitializeAnswer = { datatoken: string; providerFee: ProviderFee; validOrder?: string } | { validOrder: string } | Record<string, never>;

export interface InitializeComputeAnswer {
  datasets: InitializeAnswer[];
  algorithm?: InitializeAnswer;
}

export interface ComputeInitializerDeps {
  resolver: AssetResolver;
  /** absent when no chain is configured: then only assets without a datatoken (catalog) can be initialized */
  verifier?: OrderVerifier;
  /** the provider's key: signs fees, receives them */
  wallet: BaseWallet;
  feeTokenDecimals?: number;
  logger: Logger;
}

/** Codes that mean: the order itself is fine, only its provider fee must be renewed. */
const feeOnlyCodes = new Set(['provider_fee_missing', 'provider_fee_not_ours', 'provider_fee_mismatch', 'provider_fee_expired']);

/** `initializeCompute`: signed provider fees and the state of existing orders (wire contract §3). */
export class ComputeInitializer {
  constructor(private readonly deps: ComputeInitializerDeps) {}

  async initialize(req: InitializeComputeRequest): Promise<InitializeComputeAnswer> {
    const seconds = req.validUntil - req.now;
    const amount = feeAmount(req.environment.priceMin, seconds, this.deps.feeTokenDecimals ?? 18);
    const datasets: InitializeAnswer[] = [];
    // Only the first item carries the real fee; the others carry a zero one (the contract still wants it signed).
    for (const [i, d] of req.datasets.entries()) datasets.push(await this.answer(d, i === 0 ? 'dataset' : `datasets[${i}]`, true, i === 0 ? amount : 0n, req));
    const algorithm = req.algorithm ? await this.answer(req.algorithm, 'algorithm', false, 0n, req) : undefined;
    return algorithm ? { datasets, algorithm } : { datasets };
  }

  private async answer(ref: InitializeItem, resource: string, isDataset: boolean, amount: bigint, req: InitializeComputeRequest): Promise<InitializeAnswer> {
    const ddo = await this.deps.resolver.resolve(ref.documentId);
    if (!ddo) throw new AccessDeniedError(resource, 'did_not_found', `${resource}: ${ref.documentId} is not known here`);
    const service = ddo.services.find((s) => s.id === ref.serviceId);
    if (!service) throw new AccessDeniedError(resource, 'service_not_found', `${resource}: service ${ref.serviceId} is not in ${ddo.id}`);
    const datatoken = service.datatokenAddress;
    if (!datatoken || !ddo.nftAddress) return {};
    const verifier = this.deps.verifier;
    if (!verifier) throw new UnavailableError('chain_not_configured', `${resource}: ${ddo.id} is on chain, but this provider has no chain configured`);
    const providerFee = (): ProviderFee =>
      signProviderFee(this.deps.wallet, {
        environment: req.environment.id,
        datatoken,
        serviceId: service.id,
        feeToken: verifier.feeTokenOf(req.environment),
        amount,
        validUntil: req.validUntil,
        now: req.now,
      });
    if (!ref.transferTxId) return { datatoken, providerFee: providerFee() };

    const item: OrderItem = { resource, ddo, serviceId: service.id, transferTxId: ref.transferTxId, isDataset };
    // judged at validUntil: the order and its fee must still hold when the job would run
    const at = { consumerAddress: req.consumerAddress, environment: req.environment, now: req.validUntil };
    let order;
    try {
      order = await verifier.checkOrder(item, at);
    } catch (err) {
      if (err instanceof AccessDeniedError) return { datatoken, providerFee: providerFee() };
      throw err;
    }
    try {
      const verified = verifier.checkFee(item, order, at);
      if (verified.feePaid >= amount) return { validOrder: verified.transferTxId };
    } catch (err) {
      if (!(err instanceof AccessDeniedError && feeOnlyCodes.has(err.code))) throw err;
    }
    return { datatoken, providerFee: providerFee(), validOrder: order.orderReceipt.hash };
  }
}
