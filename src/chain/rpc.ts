import { JsonRpcProvider, Network } from 'ethers';

/**
 * A JSON-RPC provider for a chain whose id we know: no network detection round-trips, and a short
 * polling interval (ethers' default 4 s makes every wait on a local node slow).
 */
export function rpcProvider(rpcUrl: string, chainId: number, pollingIntervalMs = 250): JsonRpcProvider {
  const provider = new JsonRpcProvider(rpcUrl, Network.from(chainId), { staticNetwork: true, pollingInterval: pollingIntervalMs });
  return provider;
}
