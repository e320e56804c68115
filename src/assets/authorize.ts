import { type ComputeOptions, computeOptionsSchema, consumableStates, type Ddo, type DdoService, type DecryptedFiles, type FileObject } from '../domain/ddo';
import { AccessDeniedError, NotFoundError, UnavailableError, ValidationError } from '../domain/errors';
import type { AlgorithmRef, ContainerSpec, DatasetRef, JobInput } from '../domain/job';
import { AddressRefusedError, checkUrl, type FetchPolicy, STRICT_POLICY } from '../net/guarded-fetch';
import { containerSectionChecksum, DEFAULT_FETCH_LIMITS, FileFetchError, sha256OfFile } from './checksums';
import type { AssetResolver } from './resolver';
import { requireValidUserdata } from './userdata';

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
  /** sha256 hex of a decrypted file's content, for `filesChecksum`; default: download it over http(s) within limits */
  hashFile?: (file: FileObject) => Promise<string>;
  /** public (`access`) algorithms published on another provider, fetched through its `download` endpoint; absent: refused */
  remoteFiles?: RemoteFileSource;
  /** what file URLs may reach besides public addresses (C2D_ALLOWED_PRIVATE_HOSTS); default: public only */
  fetchPolicy?: FetchPolicy;
}

/**
 * Files of a public algorithm that another provider (its service's `serviceEndpoint`) holds: fetched
 * through that provider's `download`, signed with this provider's key, as a consumer would.
 */
export interface RemoteFileSource {
  /** Ocean's `filesChecksum` of the service's files, fetched through the remote provider */
  filesChecksum(ddo: Ddo, service: DdoService, transferTxId: string | undefined): Promise<string>;
  /** a signed download of one file, for the configuration step; the returned URL is a secret (it carries a signature) */
  signedFile(ddo: Ddo, service: DdoService, transferTxId: string | undefined, fileIndex: number): Promise<FileObject>;
  /** one file's content, fetched through the remote provider; FileFetchError('file exceeds the size limit') past `maxBytes` */
  fetchFile(ddo: Ddo, service: DdoService, transferTxId: string | undefined, fileIndex: number, maxBytes: number): Promise<Buffer>;
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
    | {
        kind: 'published';
        did: string;
        ddo: Ddo;
        service: DdoService;
        serviceIndex: number;
        container: ContainerSpec;
        /** a public algorithm held by another provider (its files are fetched through that provider's `download`) */
        remote?: boolean;
        /** a remote algorithm's files as hashed through its provider, when a trust entry pinned them */
        filesChecksum?: string;
      }
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

const DEFAULT_COMPUTE_OPTIONS: ComputeOptions = computeOptionsSchema.parse({});

const sameAddress = (a: string | undefined, b: string | undefined): boolean => !!a && !!b && a.toLowerCase() === b.toLowerCase();

/** Ocean's error resource key: the main dataset is `dataset`, the others `datasets[i]` (i ≥ 1). */
const datasetResource = (index: number): string => (index === 0 ? 'dataset' : `datasets[${index}]`);

const computeOptions = (service: DdoService): ComputeOptions => service.compute ?? DEFAULT_COMPUTE_OPTIONS;

export async function resolveAsset(resolver: AssetResolver, did: string, resource: string): Promise<Ddo> {
  const ddo = await resolver.resolve(did);
  if (!ddo) throw new NotFoundError('did_not_found', `${resource}: asset ${did} not found`, resource);
  return ddo;
}

export function findService(ddo: Ddo, serviceId: string, resource: string): { service: DdoService; serviceIndex: number } {
  const serviceIndex = ddo.services.findIndex((s) => s.id === serviceId);
  const service = ddo.services[serviceIndex];
  if (!service) throw new NotFoundError('service_not_found', `${resource}: service ${serviceId} not found in ${ddo.id}`, resource);
  return { service, serviceIndex };
}

export function requireConsumableState(ddo: Ddo, resource: string): void {
  const state = ddo.nft?.state;
  if (state !== undefined && !consumableStates.includes(state)) {
    throw new AccessDeniedError(resource, 'asset_not_consumable', `${resource}: asset ${ddo.id} is in state ${state}, not consumable`);
  }
}

/**
 * Catalog assets (no datatoken, so no order to check) are granted by their allow-list alone, which
 * must then be non-empty. For on-chain assets an empty allow-list lets everyone in; the order is
 * checked elsewhere. A non-empty allow-list that holds only kinds we cannot check still refuses.
 */
export function requireCredentials(ddo: Ddo, service: DdoService, consumer: string, resource: string): void {
  const allow = ddo.credentials?.allow ?? [];
  const deny = ddo.credentials?.deny ?? [];
  const listed = (list: typeof allow): boolean => list.some((c) => c.type === 'address' && c.values.some((v) => sameAddress(v, consumer)));
  const allowNonEmpty = allow.some((c) => c.values.length > 0);
  if (listed(deny)) throw new AccessDeniedError(resource, 'consumer_not_allowed', `${resource}: consumer is denied by the asset's credentials`);
  if (allowNonEmpty && !listed(allow)) throw new AccessDeniedError(resource, 'consumer_not_allowed', `${resource}: consumer is not in the asset's allow-list`);
  if (!service.datatokenAddress && !allowNonEmpty) {
    throw new AccessDeniedError(resource, 'consumer_not_allowed', `${resource}: catalog asset ${ddo.id} has no allow-list, so nobody may use it`);
  }
}

/** Ocean's container section rules (also behind `POST /validateContainer`). */
export function requireContainer(container: ContainerSpec): void {
  if (!container.entrypoint || !container.image || !container.checksum) {
    throw new AccessDeniedError('algorithm', 'missing_entrypoint_image_checksum', 'algorithm: container needs entrypoint, image and checksum');
  }
  if (!container.checksum.startsWith('sha256:')) {
    throw new AccessDeniedError('algorithm', 'checksum_prefix', 'algorithm: container checksum must start with sha256:');
  }
}

/** The algorithm as the trust rules see it; `filesChecksum` is computed once, only when an entry asks for it. */
interface AlgorithmIdentity {
  did: string;
  owner: string | undefined;
  container: ContainerSpec;
  filesChecksum: () => Promise<string>;
}

/**
 * Private by default: with both trust lists empty nothing runs. Each non-empty list must let the
 * algorithm through (as Ocean's Provider does); `*` in a list lets every published algorithm through it.
 * An entry that names the DID pins the algorithm to what the publisher reviewed: both checksums must
 * equal the algorithm as it is now (the contract's rule, as Ocean's node compares them). An empty or
 * absent checksum equals nothing, so a DID-only entry trusts nothing: publishers pin both (the catalog
 * publisher's `trustedAlgorithm` computes them). A `*` entry pins nothing. With several entries for the
 * DID, one must match both.
 */
async function requireTrustedAlgorithm(compute: ComputeOptions, algorithm: AlgorithmIdentity, resource: string): Promise<void> {
  const trustedAlgorithms = compute.publisherTrustedAlgorithms;
  const trustedPublishers = compute.publisherTrustedAlgorithmPublishers;
  if (trustedAlgorithms.length === 0 && trustedPublishers.length === 0) {
    throw new AccessDeniedError(resource, 'not_trusted_algo', `${resource}: no algorithm is trusted by this dataset`);
  }
  if (trustedPublishers.length > 0 && !trustedPublishers.some((p) => p === '*' || sameAddress(p, algorithm.owner))) {
    throw new AccessDeniedError(resource, 'not_trusted_algo_publisher', `${resource}: the algorithm's publisher is not trusted`);
  }
  if (trustedAlgorithms.length === 0) return;
  const listed = trustedAlgorithms.filter((t) => t.did.toLowerCase() === algorithm.did.toLowerCase());
  if (listed.length === 0) {
    if (trustedAlgorithms.some((t) => t.did === '*')) return;
    throw new AccessDeniedError(resource, 'not_trusted_algo', `${resource}: algorithm ${algorithm.did} is not trusted`);
  }
  const container = containerSectionChecksum(algorithm.container);
  const matches = (pinned: string | undefined, actual: string): boolean => pinned !== undefined && pinned !== '' && pinned.toLowerCase() === actual;
  const containerOk = listed.filter((t) => matches(t.containerSectionChecksum, container));
  if (containerOk.length === 0) {
    throw new AccessDeniedError('algorithm', 'algorithm_container_checksum_mismatch', `algorithm: container section differs from the one ${resource} trusts`);
  }
  const files = await algorithm.filesChecksum();
  if (!containerOk.some((t) => matches(t.filesChecksum, files))) {
    throw new AccessDeniedError('algorithm', 'algorithm_file_checksum_mismatch', `algorithm: files differ from the ones ${resource} trusts`);
  }
}

/** Hashes the algorithm's files once; a file that cannot be fetched is reported by index and reason, never by URL. */
function lazyFilesChecksum(files: () => Promise<DecryptedFiles>, hashFile: (file: FileObject) => Promise<string>): () => Promise<string> {
  let memo: Promise<string> | undefined;
  const compute = async (): Promise<string> => {
    let out = '';
    for (const [index, file] of (await files()).files.entries()) {
      try {
        out += await hashFile(file);
      } catch (err) {
        if (!(err instanceof FileFetchError)) throw err;
        if (err.refused) throw new AccessDeniedError('algorithm', 'file_url_refused', `algorithm: the URL of file ${index} is ${err.reason}`);
        const message = `algorithm file ${index}: cannot be fetched to verify its checksum (${err.reason})`;
        if (err.transient) throw new UnavailableError('algorithm_file_unavailable', message, { cause: err });
        throw new AccessDeniedError('algorithm', 'algorithm_file_checksum_mismatch', message);
      }
    }
    return out;
  };
  return () => (memo ??= compute());
}

/** A remote algorithm that cannot be fetched to be hashed: refused (4xx) when the other provider refuses, retryable (503) when it is down. */
async function remoteChecksum(run: () => Promise<string>): Promise<string> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof FileFetchError)) throw err;
    if (err.refused) throw new AccessDeniedError('algorithm', 'file_url_refused', `algorithm: the serviceEndpoint of its provider is ${err.reason}`);
    const message = `algorithm: the provider holding this public algorithm did not hand out its files to verify their checksum (${err.reason})`;
    if (err.transient) throw new UnavailableError('algorithm_file_unavailable', message, { cause: err });
    throw new AccessDeniedError('algorithm', 'algorithm_file_checksum_mismatch', message);
  }
}

/**
 * Refuses (4xx) a URL the guarded fetcher would refuse, before a job starts: an address that is not
 * public and not allowed. A name that does not resolve now, or a URL that is malformed, is left to the
 * configure step (status 31/32). The message names the rule, never the URL.
 */
async function requireFetchableUrl(url: string, policy: FetchPolicy, resource: string, what: string): Promise<void> {
  try {
    await checkUrl(url, policy);
  } catch (err) {
    if (err instanceof AddressRefusedError) throw new AccessDeniedError(resource, 'file_url_refused', `${resource}: ${what} is ${err.message}`);
  }
}

async function requireFetchableFiles(files: DecryptedFiles, policy: FetchPolicy, resource: string): Promise<void> {
  for (const [index, file] of files.files.entries()) await requireFetchableUrl(file.url, policy, resource, `the URL of file ${index}`);
}

const memoize = <T>(f: () => Promise<T>): (() => Promise<T>) => {
  let memo: Promise<T> | undefined;
  return () => (memo ??= f());
};

async function authorizeDataset(deps: AuthorizeDeps, owner: string, ref: DatasetRef, index: number): Promise<AuthorizedDataset> {
  const resource = datasetResource(index);
  const ddo = await resolveAsset(deps.resolver, ref.did, resource);
  const { service, serviceIndex } = findService(ddo, ref.serviceId, resource);
  if (index === 0 && service.type !== 'compute') {
    throw new AccessDeniedError(resource, 'main_service_compute', `${resource}: service ${service.id} is not a compute service`);
  }
  // A private algorithm only ever runs as a job's algorithm: read as a dataset, another algorithm could copy it out.
  if (ddo.metadata.type === 'algorithm' && service.type === 'compute') {
    throw new AccessDeniedError(
      resource,
      'private_algorithm_as_dataset',
      `${resource}: ${ddo.id} is a private (compute) algorithm; it can run as the algorithm of a job, never be read as a dataset`,
    );
  }
  requireConsumableState(ddo, resource);
  requireCredentials(ddo, service, owner, resource);
  requireValidUserdata(service.consumerParameters, ref.userdata, `${resource}.userdata`);
  // Decrypting proves the files are ours to fetch; the plaintext is dropped here and decrypted again at run time.
  await requireFetchableFiles(await deps.decryptor.decryptServiceFiles(ddo, service, resource), deps.fetchPolicy ?? STRICT_POLICY, resource);
  return { did: ddo.id, ddo, service, serviceIndex };
}

async function authorizeAlgorithm(deps: AuthorizeDeps, owner: string, ref: AlgorithmRef, datasets: AuthorizedDataset[]): Promise<AuthorizedJob['algorithm']> {
  const computeDatasets = datasets.map((d, i) => ({ d, resource: datasetResource(i) })).filter(({ d }) => d.service.type === 'compute');
  if (ref.kind === 'raw') {
    for (const { d, resource } of computeDatasets) {
      if (!computeOptions(d.service).allowRawAlgorithm)
        throw new AccessDeniedError(resource, 'no_raw_algo_allowed', `${resource}: raw algorithms are not allowed`);
    }
    if (!ref.rawcode && !ref.url) throw new ValidationError({ 'algorithm.meta': ['needs rawcode or url'] });
    if (!ref.rawcode && ref.url) await requireFetchableUrl(ref.url, deps.fetchPolicy ?? STRICT_POLICY, 'algorithm', 'meta.url');
    requireContainer(ref.container);
    return { kind: 'raw', container: ref.container };
  }
  const resource = 'algorithm';
  const ddo = await resolveAsset(deps.resolver, ref.did, resource);
  const { service, serviceIndex } = findService(ddo, ref.serviceId, resource);
  const container = ddo.metadata.algorithm?.container;
  if (ddo.metadata.type !== 'algorithm' || !container) throw new AccessDeniedError(resource, 'not_algo', `${resource}: ${ddo.id} is not an algorithm`);
  requireConsumableState(ddo, resource);
  requireCredentials(ddo, service, owner, resource);
  requireContainer(container);
  requireValidUserdata([...(ddo.metadata.algorithm?.consumerParameters ?? []), ...(service.consumerParameters ?? [])], ref.userdata, `${resource}.userdata`);
  // Decrypting tells ours (private or public) from a public algorithm another provider holds; done once, after the cheap rules.
  const located = memoize(async (): Promise<{ files: DecryptedFiles } | { remote: RemoteFileSource }> => {
    try {
      return { files: await deps.decryptor.decryptServiceFiles(ddo, service, resource) };
    } catch (err) {
      if (!(err instanceof AccessDeniedError && err.code === 'compute_services_not_in_same_provider' && service.type === 'access')) throw err;
      if (deps.remoteFiles && service.serviceEndpoint) return { remote: deps.remoteFiles };
      throw new AccessDeniedError(
        resource,
        err.code,
        `${resource}: the files of public algorithm ${ddo.id} are encrypted for another provider${service.serviceEndpoint ? '' : ', and its service names no serviceEndpoint to fetch them through'}: publish it (or a copy) on this provider`,
      );
    }
  });
  const localChecksum = lazyFilesChecksum(
    async () => {
      const l = await located();
      if (!('files' in l)) throw new Error('unreachable: remote files are hashed through their provider');
      return l.files;
    },
    deps.hashFile ?? ((f) => sha256OfFile(f, DEFAULT_FETCH_LIMITS, deps.fetchPolicy ?? STRICT_POLICY)),
  );
  let remoteHashed: string | undefined;
  const filesChecksum = memoize(async () => {
    const l = await located();
    if (!('remote' in l)) return localChecksum();
    return (remoteHashed = await remoteChecksum(() => l.remote.filesChecksum(ddo, service, ref.transferTxId)));
  });
  const identity: AlgorithmIdentity = { did: ddo.id, owner: ddo.nft?.owner, container, filesChecksum };
  for (const { d, resource: datasetRes } of computeDatasets) {
    await requireTrustedAlgorithm(computeOptions(d.service), identity, datasetRes);
  }
  // Private (`compute`) algorithms must decrypt here; public (`access`) ones here or at the provider their service names.
  const where = await located();
  const remote = 'remote' in where;
  const policy = deps.fetchPolicy ?? STRICT_POLICY;
  if (remote) await requireFetchableUrl(service.serviceEndpoint ?? '', policy, resource, 'the serviceEndpoint of its provider');
  else await requireFetchableFiles(where.files, policy, resource);
  return {
    kind: 'published',
    did: ddo.id,
    ddo,
    service,
    serviceIndex,
    container,
    ...(remote ? { remote, ...(remoteHashed ? { filesChecksum: remoteHashed } : {}) } : {}),
  };
}

function requireRunnable(deps: AuthorizeDeps, container: ContainerSpec): void {
  const problem = deps.checkContainer(container);
  if (problem !== null) throw new ValidationError({ algorithm: [problem] });
}

export const authorizeJob: AuthorizeJob = async (deps, input) => {
  if (input.datasets.length === 0) throw new ValidationError({ dataset: ['required'] });
  const datasets: AuthorizedDataset[] = [];
  for (const [index, ref] of input.datasets.entries()) datasets.push(await authorizeDataset(deps, input.owner, ref, index));
  const algorithm = await authorizeAlgorithm(deps, input.owner, input.algorithm, datasets);
  requireRunnable(deps, algorithm.container);
  const allowNetwork = datasets.every((d) => d.service.compute?.allowNetworkAccess === true);
  return { datasets, algorithm, allowNetwork };
};
