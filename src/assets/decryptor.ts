import { type Ddo, type DdoService, type DecryptedFiles, encryptedFilesSchema } from '../domain/ddo';
import { AccessDeniedError } from '../domain/errors';
import type { FileDecryptor } from './authorize';
import { decrypt } from './ecies';

const NOT_OURS = 'compute_services_not_in_same_provider';

const sameAddress = (a: string | undefined, b: string | undefined): boolean => !a || !b || a.toLowerCase() === b.toLowerCase();

/**
 * Decrypts a service's `files` with the provider key (ciphertext from our `/encrypt`). What it returns
 * holds file locations: callers must keep it out of responses, logs and workflow history, which is
 * also why every failure here carries a fixed message and no detail of the plaintext.
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
    const parsed = encryptedFilesSchema.safeParse(json);
    if (!parsed.success) {
      throw new AccessDeniedError(resource, NOT_OURS, `${resource}: files of service ${service.id} are not a valid file list`);
    }
    const files = parsed.data;
    if (!sameAddress(files.datatokenAddress, service.datatokenAddress) || !sameAddress(files.nftAddress, ddo.nftAddress)) {
      throw new AccessDeniedError(resource, NOT_OURS, `${resource}: files of service ${service.id} belong to another asset`);
    }
    return files;
  }
}
