import { FetchRequest, isError, JsonRpcProvider, Network } from 'ethers';
import { UnavailableError } from '../domain/errors';
import type { Logger } from '../domain/logger';

/**
 * A JSON-RPC provider for a chain whose id we know: no network detection round-trips, a short
 * polling interval (ethers' default 4 s makes every wait on a local node slow), no response cache
 * (a cached nonce makes back-to-back transactions collide), and a request timeout well below an
 * activity's (ethers waits 5 minutes for a node that accepted the connection but does not answer).
 */
export function rpcProvider(rpcUrl: string, chainId: number, pollingIntervalMs = 250, requestTimeoutMs = 20_000): JsonRpcProvider {
  const request = new FetchRequest(rpcUrl);
  request.timeout = requestTimeoutMs;
  return new JsonRpcProvider(request, Network.from(chainId), { staticNetwork: true, pollingInterval: pollingIntervalMs, cacheTimeout: -1 });
}

/** Runs an RPC call; transport faults become UnavailableError (retry later), a contract-level failure (revert, bad data) passes through. */
export async function chainCall<T>(logger: Logger, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isError(err, 'CALL_EXCEPTION') || isError(err, 'BAD_DATA')) throw err;
    logger.warn({ code: (err as { code?: unknown }).code }, 'chain rpc failed');
    throw new UnavailableError('chain_unavailable', 'the chain node cannot be reached', { cause: err });
  }
}
