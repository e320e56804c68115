import { createHash } from 'node:crypto';
import { getAddress } from 'ethers';

/** Ocean's DID of an on-chain asset: `did:op:` + sha256hex(checksumAddress(nft) + chainId). */
export const assetDid = (nftAddress: string, chainId: number): string =>
  `did:op:${createHash('sha256')
    .update(getAddress(nftAddress) + String(chainId))
    .digest('hex')}`;
