import { FetchRequest, JsonRpcProvider, Network } from 'ethers';

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
