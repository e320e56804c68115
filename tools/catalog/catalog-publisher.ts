import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ProviderClient } from '../../src/client/provider-client';

export interface CatalogAssetSpec {
  type: 'dataset' | 'algorithm';
  name: string;
  /** file locations; encrypted through the provider's /encrypt, so only the provider can read them */
  urls: string[];
  serviceId?: string;
  serviceType?: 'compute' | 'access';
  /** the provider that holds the files (Ocean's `serviceEndpoint`): other providers fetch a public algorithm through its `download` */
  serviceEndpoint?: string;
  /** the dataset's compute options (trust lists, raw algorithms, network) */
  compute?: {
    allowRawAlgorithm?: boolean;
    allowNetworkAccess?: boolean;
    publisherTrustedAlgorithms?: { did: string; filesChecksum?: string; containerSectionChecksum?: string }[];
    publisherTrustedAlgorithmPublishers?: string[];
  };
  /** addresses allowed to use the asset (catalog assets need a non-empty allow-list) */
  allow: string[];
  deny?: string[];
  /** algorithms: the container the algorithm runs in */
  container?: { entrypoint: string; image: string; tag: string; checksum?: string };
  /** extra top-level DDO fields (e.g. nft) */
  extra?: Record<string, unknown>;
}

export const sha256Hex = (data: string | Buffer): string => crypto.createHash('sha256').update(data).digest('hex');

/** The container checksum `publishToCatalog` writes when the spec gives none. */
export const containerChecksumOf = (container: { image: string; tag: string; checksum?: string }): string =>
  container.checksum ?? `sha256:${sha256Hex(`${container.image}:${container.tag}`)}`;

/**
 * A `publisherTrustedAlgorithms` entry that pins an algorithm to what its publisher reviewed: the
 * content of each of its files, in order (`filesChecksum`), and its container (`containerSectionChecksum`).
 * Both are checked before every job; an entry without them trusts nothing.
 */
export function trustedAlgorithm(
  did: string,
  container: { entrypoint: string; image: string; tag: string; checksum?: string },
  files: (string | Buffer)[],
): { did: string; filesChecksum: string; containerSectionChecksum: string } {
  return {
    did,
    filesChecksum: files.map((f) => sha256Hex(f)).join(''),
    containerSectionChecksum: sha256Hex(container.entrypoint + containerChecksumOf(container)),
  };
}

/**
 * Publishes an asset the way a private deployment does without a chain: a DDO JSON file in the
 * provider's catalog directory, its files encrypted by the provider. Returns the DID.
 */
export async function publishToCatalog(client: ProviderClient, catalogDir: string, chainId: number, spec: CatalogAssetSpec): Promise<string> {
  const did = `did:op:${crypto.randomBytes(32).toString('hex')}`;
  const now = new Date().toISOString();
  const container = spec.container && { ...spec.container, checksum: containerChecksumOf(spec.container) };
  const serviceId = spec.serviceId ?? (spec.type === 'dataset' ? 'compute' : 'algo');
  const ddo = {
    '@context': ['https://w3id.org/did/v1'],
    id: did,
    version: '4.1.0',
    chainId,
    metadata: {
      created: now,
      updated: now,
      type: spec.type,
      name: spec.name,
      author: 'publisher',
      license: 'CC-BY',
      ...(container ? { algorithm: { language: container.image, version: '1.0.0', container } } : {}),
    },
    services: [
      {
        id: serviceId,
        type: spec.serviceType ?? 'compute',
        // bound to this DID and service: the provider refuses the ciphertext pasted anywhere else
        files: await client.encryptFiles(
          spec.urls.map((url) => ({ url })),
          chainId,
          { did, serviceId },
        ),
        timeout: 0,
        ...(spec.serviceEndpoint ? { serviceEndpoint: spec.serviceEndpoint } : {}),
        ...(spec.compute
          ? {
              compute: {
                allowRawAlgorithm: false,
                allowNetworkAccess: false,
                publisherTrustedAlgorithmPublishers: [],
                publisherTrustedAlgorithms: [],
                ...spec.compute,
              },
            }
          : {}),
      },
    ],
    credentials: { allow: [{ type: 'address', values: spec.allow }], deny: spec.deny?.length ? [{ type: 'address', values: spec.deny }] : [] },
    ...spec.extra,
  };
  fs.mkdirSync(catalogDir, { recursive: true });
  const file = path.join(catalogDir, `${spec.type}-${did.slice(8, 24)}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(ddo, null, 2));
  fs.renameSync(`${file}.tmp`, file); // the catalog never sees half a file
  return did;
}
