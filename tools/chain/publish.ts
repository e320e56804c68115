import { createHash } from 'node:crypto';
import { type Signer, ZeroAddress, hexlify, parseEther, toUtf8Bytes } from 'ethers';
import { encrypt } from '../../src/assets/ecies';
import { contractAt, send } from '../../src/chain/contracts';
import type { OceanContracts } from '../../src/chain/contracts-file';
import { contractInterface } from '../../src/chain/artifacts';

export interface PublishedTokens {
  nftAddress: string;
  datatokenAddress: string;
  blockNumber: number;
}

/**
 * Creates an NFT with one datatoken (ERC20Template 1) through the factory, as Ocean's publish flow
 * does; `signer` becomes the NFT owner, the datatoken's minter and its payment collector.
 */
export async function createNftWithDatatoken(
  signer: Signer,
  contracts: OceanContracts,
  opts: { name?: string; symbol?: string } = {},
): Promise<PublishedTokens> {
  const owner = await signer.getAddress();
  const factory = contractAt('ERC721Factory', contracts.ERC721Factory, signer);
  const name = opts.name ?? 'Data NFT';
  const symbol = opts.symbol ?? 'DNFT';
  const receipt = await send(
    factory,
    'createNftWithErc20',
    { name, symbol, templateIndex: 1, tokenURI: '', transferable: true, owner },
    {
      templateIndex: 1,
      strings: [`${name} DT`, `${symbol}DT`],
      addresses: [owner, owner, ZeroAddress, ZeroAddress],
      uints: [parseEther('1000000'), 0n],
      bytess: [],
    },
  );
  const iface = contractInterface('ERC721Factory');
  let nftAddress: string | undefined;
  let datatokenAddress: string | undefined;
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== contracts.ERC721Factory.toLowerCase()) continue;
    const parsed = iface.parseLog(log);
    if (parsed?.name === 'NFTCreated') nftAddress = String(parsed.args.getValue('newTokenAddress'));
    if (parsed?.name === 'TokenCreated') datatokenAddress = String(parsed.args.getValue('newTokenAddress'));
  }
  if (!nftAddress || !datatokenAddress) throw new Error('createNftWithErc20 emitted no NFTCreated/TokenCreated');
  return { nftAddress, datatokenAddress, blockNumber: receipt.blockNumber };
}

/** Mints datatokens (the signer must be a minter). */
export async function mintDatatokens(signer: Signer, datatoken: string, to: string, amount: bigint = parseEther('1')): Promise<void> {
  await send(contractAt('ERC20Template', datatoken, signer), 'mint', to, amount);
}

/**
 * Puts a DDO on chain with `setMetaData`, encrypted for the provider (flags 0x02) as Ocean's publish
 * flow does after `/encrypt`; `metaDataHash` is the sha256 of the plaintext.
 */
export async function setDdoOnChain(
  signer: Signer,
  nftAddress: string,
  ddo: object,
  opts: { providerPublicKey: string; providerUrl: string; providerAddress: string; state?: number },
): Promise<number> {
  const plain = toUtf8Bytes(JSON.stringify(ddo));
  const hash = `0x${createHash('sha256').update(plain).digest('hex')}`;
  const data = hexlify(encrypt(opts.providerPublicKey, plain));
  const receipt = await send(
    contractAt('ERC721Template', nftAddress, signer),
    'setMetaData',
    opts.state ?? 0,
    opts.providerUrl,
    opts.providerAddress,
    '0x02',
    data,
    hash,
    [],
  );
  return receipt.blockNumber;
}
