import type { Ddo, DdoService, DecryptedFiles } from '../domain/ddo';
import type { ContainerSpec, JobInput } from '../domain/job';
import type { AssetResolver } from './resolver';

/** Decrypts a service's `files` ciphertext (ours, from /encrypt) and checks it belongs to that service. */
export interface FileDecryptor {
  /** Throws AccessDeniedError(resource, 'compute_services_not_in_same_provider') when it is not ours. */
  decryptServiceFiles(ddo: Ddo, service: DdoService, resource: string): Promise<DecryptedFiles>;
}

export interface AuthorizeDeps {
  resolver: AssetResolver;
  decryptor: FileDecryptor;
  /** the environment's backend: null when it can run the container, else why not */
  checkContainer: (container: ContainerSpec) => string | null;
}

export interface AuthorizedDataset {
  did: string;
  ddo: Ddo;
  service: DdoService;
  serviceIndex: number;
}

export interface AuthorizedJob {
  datasets: AuthorizedDataset[];
  algorithm:
    | { kind: 'published'; did: string; ddo: Ddo; service: DdoService; serviceIndex: number; container: ContainerSpec }
    | { kind: 'raw'; container: ContainerSpec };
  /** every dataset's compute service allows network access */
  allowNetwork: boolean;
}

/**
 * Resolves every asset of a job and applies the publisher's rules (private by default, trust lists,
 * raw algorithms, credentials, asset state, container). Used twice: by the API before starting a job
 * (so a refused job is a 4xx and starts nothing) and by the job's first activity (assets may have
 * changed meanwhile). Throws NotFoundError / ValidationError / AccessDeniedError with Ocean's codes.
 */
export type AuthorizeJob = (deps: AuthorizeDeps, input: Pick<JobInput, 'owner' | 'datasets' | 'algorithm'>) => Promise<AuthorizedJob>;
