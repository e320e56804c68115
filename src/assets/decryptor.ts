import { z } from 'zod';
import { type Ddo, type DdoService, type DecryptedFiles, encryptedFilesSchema } from '../domain/ddo';
import { AccessDeniedError } from '../domain/errors';
import { assetDid } from '../chain/did';
import type { FileDecryptor } from './authorize';
import { decrypt } from './ecies';

const NOT_OURS = 'compute_services_not_in_same_provider';

/** `/encrypt`'s file list with the catalog binding (did, serviceId) besides Ocean's (nftAddress, datatokenAddress). */
const boundFilesSchema = encryptedFilesSchema.extend({ did: z.string().optional(), serviceId: z.string().optional() });

const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** What a file list names as its asset: on chain its data NFT and datatoken, in a catalog its DID and service. */
export type FilesBinding = { kind: 'chain'; nftAddress: string; datatokenAddress: string } | { kind: 'catalog'; did: string; serviceId: string };

/**
 * The asset a decrypted (or to-be-encrypted) file list is bound to; null when it names none completely
 * (`nftAddress` without `datatokenAddress`, `did` without `serviceId`, or nothing): such ciphertext can be
 * pasted into any DDO, so it is refused everywhere (`c2d catalog rebind` re-encrypts old catalog files).
 */
export function filesBinding(files: { nftAddress?: unknown; datatokenAddress?: unknown; did?: unknown; serviceId?: unknown }): FilesBinding | null {
  const text = (v: unknown): v is string => typeof v === 'string' && v !== '';
  if (text(files.did) && text(files.serviceId)) return { kind: 'catalog', did: files.did, serviceId: files.serviceId };
  if (text(files.nftAddress) && text(files.datatokenAddress)) return { kind: 'chain', nftAddress: files.nftAddress, datatokenAddress: files.datatokenAddress };
  return null;
}

/**
 * Decrypts a service's `files` with the provider key (ciphertext from our `/encrypt`). What it returns
 * holds file locations: callers must keep it out of responses, logs and workflow history, which is
 * also why every failure here carries a fixed message and no detail of the plaintext.
 *
 * The list is accepted only for the asset and service it was encrypted for (docs/security.md,
 * "Ciphertext bound to its asset"): every binding it carries must match — `nftAddress` the DDO's (whose
 * DID must then be the NFT's), `datatokenAddress` the service's, `did` the DDO's id, `serviceId` the
 * service's id — and it must carry at least one complete binding.
 */
export class ProviderFileDecryptor implements FileDecryptor {
  constructor(private readonly providerPrivateKey: string) {}

  decryptServiceFiles(ddo: Ddo, service: DdoService, resource: string): Promise<DecryptedFiles> {
    // a refusal must be a rejected promise, never a synchronous throw
    return Promise.resolve().then(() => this.decryptNow(ddo, service, resource));
  }

  private decryptNow(ddo: Ddo, service: DdoService, resource: string): DecryptedFiles {
    let json: unknown;
    try {
      json = JSON.parse(decrypt(this.providerPrivateKey, Buffer.from(service.files.slice(2), 'hex')).toString('utf8'));
    } catch {
      throw new AccessDeniedError(resource, NOT_OURS, `${resource}: files of service ${service.id} were not encrypted for this provider`);
    }
    const parsed = boundFilesSchema.safeParse(json);
    if (!parsed.success) {
      throw new AccessDeniedError(resource, NOT_OURS, `${resource}: files of service ${service.id} are not a valid file list`);
    }
    const files = parsed.data;
    const foreign = (): AccessDeniedError => new AccessDeniedError(resource, NOT_OURS, `${resource}: files of service ${service.id} belong to another asset`);
    // every binding the list carries must hold, complete or not
    if (files.did !== undefined && !same(files.did, ddo.id)) throw foreign();
    if (files.serviceId !== undefined && files.serviceId !== service.id) throw foreign();
    if (files.nftAddress !== undefined && (!ddo.nftAddress || !same(files.nftAddress, ddo.nftAddress))) throw foreign();
    if (files.datatokenAddress !== undefined && (!service.datatokenAddress || !same(files.datatokenAddress, service.datatokenAddress))) throw foreign();
    const binding = filesBinding(files);
    if (!binding) {
      throw new AccessDeniedError(
        resource,
        NOT_OURS,
        `${resource}: files of service ${service.id} of ${ddo.id} are not bound to an asset (no nftAddress + datatokenAddress, no did + serviceId); the publisher must encrypt them again (catalog operators: c2d catalog rebind)`,
      );
    }
    // a chain binding holds only for the NFT's own DID: a DDO may not borrow another NFT's address
    if (binding.kind === 'chain' && !this.didOfNft(ddo, binding.nftAddress)) throw foreign();
    return files;
  }

  private didOfNft(ddo: Ddo, nftAddress: string): boolean {
    if (ddo.chainId === undefined) return false;
    try {
      return same(assetDid(nftAddress, ddo.chainId), ddo.id);
    } catch {
      return false; // not an address
    }
  }
}
