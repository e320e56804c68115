import type { AssetResolver } from '../assets/resolver';
import type { Ddo, DdoService } from '../domain/ddo';
import { AccessDeniedError, NotFoundError } from '../domain/errors';
import type { JobInput } from '../domain/job';
import type { OrderItem, OrderVerifier, ReceiptWait } from './orders';

/** What a job's order check needs: where DDOs come from (the same chain of resolvers as authorization) and the chain. */
export interface JobOrderDeps {
  resolver: AssetResolver;
  verifier: OrderVerifier;
}

export interface JobOrdersRequest {
  input: Pick<JobInput, 'owner' | 'datasets' | 'algorithm'>;
  environment: { id: string; priceMin: number; feeToken?: string };
  /** seconds of compute the fees must cover */
  durationSeconds: number;
  /** unix seconds */
  now: number;
  /** default `wait`; the verifyOrders activity looks `once` and lets its retry policy wait */
  receipts?: ReceiptWait;
}

interface JobAsset {
  resource: string;
  ddo: Ddo;
  service: DdoService;
  transferTxId?: string;
  isDataset: boolean;
}

async function asset(
  resolver: AssetResolver,
  resource: string,
  ref: { did: string; serviceId: string; transferTxId?: string },
  isDataset: boolean,
): Promise<JobAsset> {
  const ddo = await resolver.resolve(ref.did);
  if (!ddo) throw new NotFoundError('did_not_found', `${resource}: asset ${ref.did} not found`, resource);
  const service = ddo.services.find((s) => s.id === ref.serviceId);
  if (!service) throw new NotFoundError('service_not_found', `${resource}: service ${ref.serviceId} not found in ${ddo.id}`, resource);
  return { resource, ddo, service, transferTxId: ref.transferTxId, isDataset };
}

/**
 * Verifies the orders of a job's on-chain assets (§4). Catalog assets (no datatoken) have no order:
 * their credentials are what grants access. `agreementId` is null when nothing was ordered.
 */
export async function verifyJobOrders(deps: JobOrderDeps, req: JobOrdersRequest): Promise<{ agreementId: string | null }> {
  const { input } = req;
  const assets = await Promise.all(input.datasets.map((d, i) => asset(deps.resolver, i === 0 ? 'dataset' : `datasets[${i}]`, d, true)));
  if (input.algorithm.kind === 'published') assets.push(await asset(deps.resolver, 'algorithm', input.algorithm, false));
  const items: OrderItem[] = assets
    .filter((a) => a.service.datatokenAddress)
    .map((a) => {
      if (!a.transferTxId) throw new AccessDeniedError(a.resource, 'order_not_found', `${a.resource}: no transferTxId for an asset that needs an order`);
      return { resource: a.resource, ddo: a.ddo, serviceId: a.service.id, transferTxId: a.transferTxId, isDataset: a.isDataset };
    });
  if (items.length === 0) return { agreementId: null };
  const verified = await deps.verifier.verify(
    { consumerAddress: input.owner, items, environment: req.environment, durationSeconds: req.durationSeconds, now: req.now },
    req.receipts,
  );
  return { agreementId: verified.agreementId };
}
