import { type BaseWallet, HDNodeWallet, type JsonRpcProvider, Mnemonic, parseEther } from 'ethers';
import { encryptFiles } from '../../tools/catalog/publish';
import { assetDid } from '../../src/chain/did';
import { createNftWithDatatoken, mintDatatokens, setDdoOnChain } from '../../tools/chain/publish';
import { deployOceanContracts } from '../../tools/chain/deploy';
import type { OceanContracts } from '../../src/chain/contracts-file';
import { HARDHAT_MNEMONIC, type HardhatNode, startHardhatNode } from '../../tools/chain/hardhat-node';
import { rpcProvider } from '../../src/chain/rpc';
import { freePort } from '../../tools/temporal-server';

export interface TestChain {
  node: HardhatNode;
  rpcUrl: string;
  chainId: number;
  provider: JsonRpcProvider;
  contracts: OceanContracts;
  /** hardhat's funded accounts, connected; [0] deployed the contracts */
  signers: HDNodeWallet[];
  stop(): Promise<void>;
}

/** A hardhat node of its own on a free port with Ocean's contracts deployed. */
export async function startChain(opts: { chainId?: number; accounts?: number } = {}): Promise<TestChain> {
  const chainId = opts.chainId ?? 8996;
  const node = await startHardhatNode({ port: await freePort(), chainId });
  const provider = rpcProvider(node.rpcUrl, chainId, 50);
  try {
    const mnemonic = Mnemonic.fromPhrase(HARDHAT_MNEMONIC);
    const signers = Array.from({ length: opts.accounts ?? 6 }, (_, i) => HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`).connect(provider));
    const deployer = signers[0];
    if (!deployer) throw new Error('no accounts');
    const contracts = await deployOceanContracts(deployer);
    return {
      node,
      rpcUrl: node.rpcUrl,
      chainId,
      provider,
      contracts,
      signers,
      stop: async () => {
        provider.destroy();
        await node.stop();
      },
    };
  } catch (err) {
    provider.destroy();
    await node.stop();
    throw err;
  }
}

export interface OnChainAssetSpec {
  type?: 'dataset' | 'algorithm';
  urls?: string[];
  timeout?: number;
  /** datatokens minted to each of these addresses (1 each) */
  mintTo?: string[];
  compute?: Record<string, unknown>;
  name?: string;
  /** default compute; an `access` service gets the id `access` and no compute options */
  serviceType?: 'compute' | 'access';
  /** the provider holding the files (default: one on 8030, never called) */
  serviceEndpoint?: string;
}

export interface OnChainAsset {
  did: string;
  nftAddress: string;
  datatokenAddress: string;
  ddo: Record<string, unknown> & { services: Record<string, unknown>[] };
}

/** Ocean's publish flow on the test chain: NFT + datatoken, files encrypted for `providerWallet`, DDO set encrypted. */
export async function publishOnChainAsset(
  chain: TestChain,
  publisher: BaseWallet,
  providerWallet: BaseWallet,
  spec: OnChainAssetSpec = {},
): Promise<OnChainAsset> {
  const { nftAddress, datatokenAddress } = await createNftWithDatatoken(publisher, chain.contracts);
  const did = assetDid(nftAddress, chain.chainId);
  const now = new Date().toISOString();
  const type = spec.type ?? 'dataset';
  const ddo = {
    '@context': ['https://w3id.org/did/v1'],
    id: did,
    version: '4.1.0',
    nftAddress,
    chainId: chain.chainId,
    metadata: {
      created: now,
      updated: now,
      type,
      name: spec.name ?? `${type} on chain`,
      description: 'test asset',
      author: 'test',
      license: 'MIT',
      ...(type === 'algorithm'
        ? {
            algorithm: {
              language: 'js',
              version: '1',
              container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` },
            },
          }
        : {}),
    },
    services: [
      {
        id: spec.serviceType ?? 'compute',
        type: spec.serviceType ?? 'compute',
        files: encryptFiles(providerWallet.signingKey.publicKey, { datatokenAddress, nftAddress, urls: spec.urls ?? ['http://127.0.0.1:1/data.txt'] }),
        datatokenAddress,
        serviceEndpoint: spec.serviceEndpoint ?? 'http://127.0.0.1:8030',
        timeout: spec.timeout ?? 0,
        ...(spec.serviceType === 'access'
          ? {}
          : {
              compute: spec.compute ?? {
                allowRawAlgorithm: false,
                allowNetworkAccess: false,
                publisherTrustedAlgorithmPublishers: ['*'],
                publisherTrustedAlgorithms: [],
              },
            }),
      },
    ],
  };
  await setDdoOnChain(publisher, nftAddress, ddo, {
    providerPublicKey: providerWallet.signingKey.publicKey,
    providerUrl: 'http://127.0.0.1:8030',
    providerAddress: providerWallet.address,
  });
  for (const to of spec.mintTo ?? []) await mintDatatokens(publisher, datatokenAddress, to, parseEther('1'));
  return { did, nftAddress, datatokenAddress, ddo };
}
