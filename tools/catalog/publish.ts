import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Ddo, ddoSchema } from '../../src/domain/ddo';
import type { ContainerSpec } from '../../src/domain/job';
import { encrypt } from '../../src/assets/ecies';

/** What a publisher says about a catalog asset; everything else gets a sensible default. */
export interface CatalogAssetSpec {
  type: 'dataset' | 'algorithm';
  /** file locations; encrypted for the provider, never stored in clear */
  urls: string[];
  /** addresses allowed to use the asset (a catalog asset with none is usable by nobody) */
  allow: string[];
  deny?: string[];
  name?: string;
  /** default: a random did:op */
  did?: string;
  serviceId?: string;
  serviceType?: 'compute' | 'access';
  allowRawAlgorithm?: boolean;
  allowNetworkAccess?: boolean;
  /** algorithms this dataset trusts: `'*'`, or entries pinning both checksums (a bare DID pins nothing, so trusts nothing) */
  trustedAlgorithms?: (string | { did: string; filesChecksum?: string; containerSectionChecksum?: string })[];
  /** addresses (or '*') of algorithm publishers this dataset trusts */
  trustedPublishers?: string[];
  /** algorithms only */
  container?: ContainerSpec;
  /** the asset's owner (algorithms: matched against trustedPublishers) */
  owner?: string;
  /** 0 active, 5 unlisted; others are not consumable */
  state?: number;
}

export const randomDid = (): string => `did:op:${createHash('sha256').update(randomBytes(32)).digest('hex')}`;

/**
 * The ciphertext `/encrypt` would return for these files, as `0x` hex. The list names the asset it
 * belongs to (the provider refuses it anywhere else): a chain asset's `nftAddress` + `datatokenAddress`,
 * or a catalog asset's `did` + `serviceId`. Leave both out only to make ciphertext the provider refuses.
 */
export function encryptFiles(
  providerPublicKey: string,
  files: { datatokenAddress?: string; nftAddress?: string; did?: string; serviceId?: string; urls: string[] },
): string {
  const plain = {
    ...(files.datatokenAddress ? { datatokenAddress: files.datatokenAddress } : {}),
    ...(files.nftAddress ? { nftAddress: files.nftAddress } : {}),
    ...(files.did ? { did: files.did } : {}),
    ...(files.serviceId ? { serviceId: files.serviceId } : {}),
    files: files.urls.map((url) => ({ type: 'url', url, method: 'GET' })),
  };
  return `0x${encrypt(providerPublicKey, Buffer.from(JSON.stringify(plain), 'utf8')).toString('hex')}`;
}

/** A DDO v4 for the catalog with its files encrypted for the provider. Validated like the catalog reads it. */
export function buildCatalogDdo(providerPublicKey: string, spec: CatalogAssetSpec): Ddo {
  const now = new Date().toISOString();
  const did = spec.did ?? randomDid();
  const serviceId = spec.serviceId ?? 'compute';
  const ddo = {
    '@context': ['https://w3id.org/did/v1'],
    id: did,
    version: '4.1.0',
    metadata: {
      created: now,
      updated: now,
      type: spec.type,
      name: spec.name ?? `${spec.type} ${did.slice(8, 16)}`,
      description: '',
      author: '',
      license: 'proprietary',
      ...(spec.type === 'algorithm' && spec.container ? { algorithm: { language: spec.container.image, version: '1', container: spec.container } } : {}),
    },
    services: [
      {
        id: serviceId,
        type: spec.serviceType ?? 'compute',
        files: encryptFiles(providerPublicKey, { did, serviceId, urls: spec.urls }),
        timeout: 0,
        compute: {
          allowRawAlgorithm: spec.allowRawAlgorithm ?? false,
          allowNetworkAccess: spec.allowNetworkAccess ?? false,
          publisherTrustedAlgorithmPublishers: spec.trustedPublishers ?? [],
          publisherTrustedAlgorithms: (spec.trustedAlgorithms ?? []).map((t) => (typeof t === 'string' ? { did: t } : t)),
        },
      },
    ],
    credentials: {
      allow: [{ type: 'address', values: spec.allow }],
      deny: spec.deny && spec.deny.length > 0 ? [{ type: 'address', values: spec.deny }] : [],
    },
    ...(spec.owner !== undefined || spec.state !== undefined ? { nft: { ...(spec.owner ? { owner: spec.owner } : {}), state: spec.state ?? 0 } } : {}),
  };
  return ddoSchema.parse(ddo);
}

/** Writes the DDO into the catalog directory atomically (the catalog may be read at any moment). Returns the file. */
export async function writeCatalogDdo(dir: string, ddo: Ddo): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${ddo.id.replace(/^did:op:/, '')}.json`);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(ddo, null, 2)}\n`, { mode: 0o644 });
  await fs.rename(tmp, file);
  return file;
}
