import { verifyJobOrders } from '../../src/chain/job-orders';
import { OrderVerifier } from '../../src/chain/orders';
import { rpcProvider } from '../../src/chain/rpc';
import type { Ddo } from '../../src/domain/ddo';
import { AccessDeniedError } from '../../src/domain/errors';
import type { JobInput } from '../../src/domain/job';
import { silentLogger } from '../helpers/process-backend';

const did = (c: string): string => `did:op:${c.repeat(64)}`;
const ddo = (id: string, datatokenAddress?: string): Ddo => ({
  id,
  nftAddress: datatokenAddress ? '0x' + '99'.repeat(20) : undefined,
  metadata: { type: 'dataset', name: id },
  services: [{ id: 'compute', type: 'compute', files: '0x00', timeout: 0, ...(datatokenAddress ? { datatokenAddress } : {}) }],
});

describe('verifyJobOrders', () => {
  // nothing listens here: a test that reached the chain would fail as unavailable
  const provider = rpcProvider('http://127.0.0.1:1', 8996, 50, 500);
  const verifier = new OrderVerifier({ provider, providerAddress: '0x' + '11'.repeat(20), feeToken: '0x' + '22'.repeat(20), logger: silentLogger });
  const assets = new Map<string, Ddo>([
    [did('a'), ddo(did('a'))],
    [did('b'), ddo(did('b'))],
    [did('c'), ddo(did('c'), '0x' + '33'.repeat(20))],
  ]);
  const resolver = { resolve: (d: string) => Promise.resolve(assets.get(d) ?? null) };
  const input = (datasetDid: string, transferTxId?: string): Pick<JobInput, 'owner' | 'datasets' | 'algorithm'> => ({
    owner: '0x' + '44'.repeat(20),
    datasets: [{ did: datasetDid, serviceId: 'compute', transferTxId }],
    algorithm: { kind: 'published', did: did('b'), serviceId: 'compute' },
  });
  const req = (i: Pick<JobInput, 'owner' | 'datasets' | 'algorithm'>) => ({ input: i, environment: { id: 'e', priceMin: 1 }, durationSeconds: 60, now: 0 });
  afterAll(() => provider.destroy());

  it('when every asset is a catalog asset, then there is no order to verify and no agreement', async () => {
    await expect(verifyJobOrders({ resolver, verifier }, req(input(did('a'))))).resolves.toEqual({ agreementId: null });
  });

  it('when an on-chain asset comes without a transferTxId, then it is refused as order_not_found before any chain call', async () => {
    const err = await verifyJobOrders({ resolver, verifier }, req(input(did('c')))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AccessDeniedError);
    expect(err).toMatchObject({ code: 'order_not_found', resource: 'dataset' });
  });

  it('when an asset vanished since the job was accepted, then it is not found', async () => {
    await expect(verifyJobOrders({ resolver, verifier }, req(input(did('d'))))).rejects.toMatchObject({ code: 'did_not_found' });
  });
});
