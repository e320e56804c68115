import { Wallet } from 'ethers';
import { type AuthorizedJob, authorizeJob } from '../../src/assets/authorize';
import { containerSectionChecksum, FileFetchError, sha256Hex } from '../../src/assets/checksums';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { buildCatalogDdo, encryptFiles } from '../../tools/catalog/publish';
import type { Ddo } from '../../src/domain/ddo';
import { AccessDeniedError, NotFoundError, UnavailableError, ValidationError } from '../../src/domain/errors';
import type { AlgorithmRef, ContainerSpec, DatasetRef } from '../../src/domain/job';
import { algorithmFixture, datasetFixture, fixtureProvider, fixtureSecretUrls } from '../fixtures/ddo';
import { nodeContainer } from '../helpers/api';

const consumer = Wallet.createRandom().address;
const stranger = Wallet.createRandom().address;

/** Everything one case may change before authorizing. */
interface World {
  dataset: Ddo;
  algorithm: Ddo;
  catalogDataset: Ddo;
  owner: string;
  datasets: DatasetRef[];
  algorithmRef: AlgorithmRef;
  unknownImage: boolean;
  /** what the (fake) file server answers for each algorithm file: its content, or a fetch failure */
  algorithmFile: string | FileFetchError;
}

function world(): World {
  const dataset = datasetFixture();
  const algorithm = algorithmFixture();
  // the fixture lists the algorithm with empty checksums, which trust nothing: pin it as reviewed
  computeOf(dataset).publisherTrustedAlgorithms = [
    {
      did: algorithm.id,
      filesChecksum: sha256Hex('console.log(1)'),
      containerSectionChecksum: containerSectionChecksum(algorithm.metadata.algorithm!.container),
    },
  ];
  const catalogDataset = buildCatalogDdo(fixtureProvider.publicKey, {
    type: 'dataset',
    urls: ['https://example.invalid/c.csv'],
    allow: [consumer],
    trustedAlgorithms: [computeOf(dataset).publisherTrustedAlgorithms[0]!],
  });
  return {
    dataset,
    algorithm,
    catalogDataset,
    owner: consumer.toLowerCase(),
    datasets: [{ did: dataset.id, serviceId: 'compute-1' }],
    algorithmRef: { kind: 'published', did: algorithm.id, serviceId: 'algo-compute-1' },
    unknownImage: false,
    algorithmFile: 'console.log(1)',
  };
}

const computeOf = (ddo: Ddo) => ddo.services[0]!.compute!;
const raw = (container: Partial<ContainerSpec> = {}): AlgorithmRef => ({
  kind: 'raw',
  container: { ...nodeContainer, ...container },
  rawcode: 'console.log(1)',
});

type Expected =
  | { ok: (job: AuthorizedJob) => void }
  | {
      error: typeof NotFoundError | typeof AccessDeniedError | typeof ValidationError | typeof UnavailableError;
      resource?: string;
      code?: string;
      message?: RegExp;
      fields?: Record<string, string[]>;
    };

/** The fixture algorithm as its publisher reviewed it: one file holding `console.log(1)`. */
const reviewedFiles = sha256Hex('console.log(1)');
const reviewedContainer = (w: World): string => containerSectionChecksum(w.algorithm.metadata.algorithm!.container);
const pin = (w: World, entry: { filesChecksum?: string; containerSectionChecksum?: string }): void => {
  computeOf(w.dataset).publisherTrustedAlgorithms = [{ did: w.algorithm.id, ...entry }];
};
const withParameters = (ddoParams: Ddo['services'][number]['consumerParameters']) => (w: World) => {
  w.dataset.services[0]!.consumerParameters = ddoParams;
};

const cases: [string, (w: World) => void, Expected][] = [
  [
    'a trusted published algorithm on an on-chain dataset',
    () => {},
    {
      ok: (job) => {
        expect(job.datasets[0]?.serviceIndex).toBe(0);
        expect(job.algorithm.kind).toBe('published');
        expect(job.algorithm.container.image).toBe('node');
        expect(job.allowNetwork).toBe(false);
      },
    },
  ],
  [
    'an unknown dataset DID',
    (w) => {
      w.datasets[0]!.did = 'did:op:feedbeef';
    },
    { error: NotFoundError, resource: 'dataset', message: /did:op:feedbeef/ },
  ],
  [
    'an unknown additional dataset DID',
    (w) => {
      w.datasets.push({ did: 'did:op:0bad', serviceId: 'x' });
    },
    { error: NotFoundError, resource: 'datasets[1]', message: /did:op:0bad/ },
  ],
  [
    'an unknown algorithm DID',
    (w) => {
      w.algorithmRef = { kind: 'published', did: 'did:op:0a1f', serviceId: 'x' };
    },
    { error: NotFoundError, resource: 'algorithm', message: /did:op:0a1f/ },
  ],
  [
    'an unknown service id',
    (w) => {
      w.datasets[0]!.serviceId = 'nope';
    },
    { error: NotFoundError, resource: 'dataset' },
  ],
  [
    'a main dataset service of type access',
    (w) => {
      w.datasets[0]!.serviceId = 'access-1';
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'main_service_compute' },
  ],
  [
    'an additional dataset through its access service',
    (w) => {
      w.datasets.push({ did: w.dataset.id, serviceId: 'access-1' });
    },
    {
      ok: (job) => {
        expect(job.datasets.map((d) => d.serviceIndex)).toEqual([0, 1]);
        expect(job.allowNetwork).toBe(false);
      },
    },
  ],
  [
    'dataset files encrypted for another provider',
    (w) => {
      w.dataset.services[0]!.files = encryptFiles(Wallet.createRandom().signingKey.publicKey, { urls: ['https://example.invalid/x'] });
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'compute_services_not_in_same_provider' },
  ],
  [
    'algorithm files encrypted for another provider',
    (w) => {
      w.algorithm.services[0]!.files = encryptFiles(Wallet.createRandom().signingKey.publicKey, { urls: ['https://example.invalid/x'] });
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'compute_services_not_in_same_provider' },
  ],
  [
    'a public (access) algorithm whose files are encrypted for another provider',
    (w) => {
      w.algorithm.services[0]!.type = 'access';
      w.algorithm.services[0]!.files = encryptFiles(Wallet.createRandom().signingKey.publicKey, { urls: ['https://example.invalid/x'] });
    },
    {
      error: AccessDeniedError,
      resource: 'algorithm',
      code: 'compute_services_not_in_same_provider',
      message: /another provider.*publish it \(or a copy\) on this provider/,
    },
  ],
  [
    'a private (compute) algorithm named as an additional dataset',
    (w) => {
      w.datasets.push({ did: w.algorithm.id, serviceId: 'algo-compute-1' });
    },
    { error: AccessDeniedError, resource: 'datasets[1]', code: 'private_algorithm_as_dataset' },
  ],
  [
    'a private (compute) algorithm named as the main dataset',
    (w) => {
      w.datasets[0] = { did: w.algorithm.id, serviceId: 'algo-compute-1' };
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'private_algorithm_as_dataset' },
  ],
  [
    'a dataset in state 5 (unlisted)',
    (w) => {
      w.dataset.nft!.state = 5;
    },
    { ok: () => {} },
  ],
  [
    'a dataset in state 4 (revoked)',
    (w) => {
      w.dataset.nft!.state = 4;
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'asset_not_consumable' },
  ],
  [
    'an algorithm in state 1 (end of life)',
    (w) => {
      w.algorithm.nft!.state = 1;
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'asset_not_consumable' },
  ],
  [
    'a catalog dataset whose allow-list holds the consumer',
    (w) => {
      w.datasets[0] = { did: w.catalogDataset.id, serviceId: 'compute' };
    },
    { ok: () => {} },
  ],
  [
    'a catalog dataset whose allow-list holds the consumer in lower case',
    (w) => {
      w.catalogDataset.credentials!.allow[0]!.values = [consumer.toLowerCase()];
      w.owner = consumer;
      w.datasets[0] = { did: w.catalogDataset.id, serviceId: 'compute' };
    },
    { ok: () => {} },
  ],
  [
    'a catalog dataset whose allow-list lacks the consumer',
    (w) => {
      w.catalogDataset.credentials!.allow[0]!.values = [stranger];
      w.datasets[0] = { did: w.catalogDataset.id, serviceId: 'compute' };
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'consumer_not_allowed' },
  ],
  [
    'a catalog dataset with an empty allow-list',
    (w) => {
      w.catalogDataset.credentials!.allow = [];
      w.datasets[0] = { did: w.catalogDataset.id, serviceId: 'compute' };
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'consumer_not_allowed' },
  ],
  [
    'a catalog dataset that allows and also denies the consumer',
    (w) => {
      w.catalogDataset.credentials!.deny = [{ type: 'address', values: [consumer] }];
      w.datasets[0] = { did: w.catalogDataset.id, serviceId: 'compute' };
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'consumer_not_allowed' },
  ],
  [
    'an on-chain dataset that denies the consumer',
    (w) => {
      w.dataset.credentials = { allow: [], deny: [{ type: 'address', values: [consumer] }] };
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'consumer_not_allowed' },
  ],
  [
    'an on-chain dataset with an allow-list lacking the consumer',
    (w) => {
      w.dataset.credentials = { allow: [{ type: 'address', values: [stranger] }], deny: [] };
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'consumer_not_allowed' },
  ],
  [
    'an algorithm whose own allow-list lacks the consumer',
    (w) => {
      w.algorithm.credentials = { allow: [{ type: 'address', values: [stranger] }], deny: [] };
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'consumer_not_allowed' },
  ],
  [
    'a raw algorithm on a dataset that does not allow raw algorithms',
    (w) => {
      w.algorithmRef = raw();
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'no_raw_algo_allowed' },
  ],
  [
    'a raw algorithm on a dataset that allows raw algorithms',
    (w) => {
      computeOf(w.dataset).allowRawAlgorithm = true;
      w.algorithmRef = raw();
    },
    { ok: (job) => expect(job.algorithm).toEqual({ kind: 'raw', container: nodeContainer }) },
  ],
  [
    'a raw algorithm refused by an additional compute dataset',
    (w) => {
      computeOf(w.dataset).allowRawAlgorithm = true;
      w.datasets.push({ did: w.catalogDataset.id, serviceId: 'compute' });
      w.algorithmRef = raw();
    },
    { error: AccessDeniedError, resource: 'datasets[1]', code: 'no_raw_algo_allowed' },
  ],
  [
    'a raw algorithm without code or url',
    (w) => {
      computeOf(w.dataset).allowRawAlgorithm = true;
      w.algorithmRef = { kind: 'raw', container: nodeContainer };
    },
    { error: ValidationError },
  ],
  [
    'a raw algorithm whose container has no entrypoint',
    (w) => {
      computeOf(w.dataset).allowRawAlgorithm = true;
      w.algorithmRef = raw({ entrypoint: '' });
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'missing_entrypoint_image_checksum' },
  ],
  [
    'a raw algorithm whose checksum is not sha256',
    (w) => {
      computeOf(w.dataset).allowRawAlgorithm = true;
      w.algorithmRef = raw({ checksum: 'md5:abc' });
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'checksum_prefix' },
  ],
  [
    'a published algorithm whose checksum is not sha256',
    (w) => {
      w.algorithm.metadata.algorithm!.container.checksum = 'abc';
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'checksum_prefix' },
  ],
  [
    'a published asset that is not an algorithm',
    (w) => {
      w.algorithmRef = { kind: 'published', did: w.dataset.id, serviceId: 'compute-1' };
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'not_algo' },
  ],
  [
    'a dataset that trusts nothing (private by default)',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [];
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'not_trusted_algo' },
  ],
  [
    'a dataset that trusts another algorithm',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [{ did: 'did:op:0ther' }];
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'not_trusted_algo' },
  ],
  [
    'a dataset that trusts every algorithm (*)',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [{ did: '*' }];
    },
    { ok: () => {} },
  ],
  [
    "a dataset that trusts the algorithm's publisher",
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [];
      computeOf(w.dataset).publisherTrustedAlgorithmPublishers = [w.algorithm.nft!.owner!.toLowerCase()];
    },
    { ok: () => {} },
  ],
  [
    'a dataset that trusts every publisher (*)',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [];
      computeOf(w.dataset).publisherTrustedAlgorithmPublishers = ['*'];
    },
    { ok: () => {} },
  ],
  [
    'a dataset that trusts only another publisher',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [];
      computeOf(w.dataset).publisherTrustedAlgorithmPublishers = [stranger];
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'not_trusted_algo_publisher' },
  ],
  [
    'a dataset that trusts the DID but not the publisher (both lists must agree)',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithmPublishers = [stranger];
    },
    { error: AccessDeniedError, resource: 'dataset', code: 'not_trusted_algo_publisher' },
  ],
  [
    'an additional dataset that does not trust the algorithm',
    (w) => {
      w.datasets.push({ did: w.catalogDataset.id, serviceId: 'compute' });
      computeOf(w.catalogDataset).publisherTrustedAlgorithms = [];
    },
    { error: AccessDeniedError, resource: 'datasets[1]', code: 'not_trusted_algo' },
  ],
  [
    'an image the environment cannot run',
    (w) => {
      w.unknownImage = true;
    },
    { error: ValidationError },
  ],
  [
    'datasets that all allow network access',
    (w) => {
      computeOf(w.dataset).allowNetworkAccess = true;
    },
    { ok: (job) => expect(job.allowNetwork).toBe(true) },
  ],
  [
    'one of two datasets allowing network access',
    (w) => {
      computeOf(w.dataset).allowNetworkAccess = true;
      w.datasets.push({ did: w.catalogDataset.id, serviceId: 'compute' });
    },
    { ok: (job) => expect(job.allowNetwork).toBe(false) },
  ],
  [
    'a listed algorithm whose files and container match both checksums',
    (w) => pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) }),
    { ok: () => {} },
  ],
  [
    'a listed algorithm pinned with upper-case checksums',
    (w) => pin(w, { filesChecksum: reviewedFiles.toUpperCase(), containerSectionChecksum: reviewedContainer(w).toUpperCase() }),
    { ok: () => {} },
  ],
  [
    'a listed algorithm whose file changed after listing',
    (w) => {
      pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) });
      w.algorithmFile = 'console.log(2)';
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' },
  ],
  [
    'a listed algorithm whose container changed after listing',
    (w) => {
      pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) });
      w.algorithm.metadata.algorithm!.container.entrypoint = 'node $ALGO --evil';
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'a listed algorithm whose file is gone (404)',
    (w) => {
      pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) });
      w.algorithmFile = new FileFetchError('HTTP 404', false);
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_file_checksum_mismatch', message: /^algorithm file 0: .*HTTP 404/ },
  ],
  [
    'a listed algorithm whose file server is down',
    (w) => {
      pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) });
      w.algorithmFile = new FileFetchError('connection failed (ECONNREFUSED)', true);
    },
    { error: UnavailableError, code: 'algorithm_file_unavailable' },
  ],
  [
    'a listed algorithm with both checksums empty (as the fixture ships it)',
    (w) => pin(w, { filesChecksum: '', containerSectionChecksum: '' }),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'a listed algorithm with an empty files checksum',
    (w) => pin(w, { filesChecksum: '', containerSectionChecksum: reviewedContainer(w) }),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' },
  ],
  [
    'a listed algorithm with an empty container checksum',
    (w) => pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: '' }),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'a listed algorithm with an empty files checksum and no container field (absent is as strict as empty)',
    (w) => pin(w, { filesChecksum: '' }),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'a listed algorithm whose entry leaves both checksum fields out (a bare DID trusts nothing)',
    (w) => pin(w, {}),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'a listed algorithm pinned by its container only (the files are not pinned, so nothing matches)',
    (w) => pin(w, { containerSectionChecksum: reviewedContainer(w) }),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' },
  ],
  [
    'a listed algorithm pinned by its files only',
    (w) => pin(w, { filesChecksum: reviewedFiles }),
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'two entries for the algorithm, the second matching',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [
        { did: w.algorithm.id, filesChecksum: sha256Hex('an older version'), containerSectionChecksum: reviewedContainer(w) },
        { did: w.algorithm.id, filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) },
      ];
    },
    { ok: () => {} },
  ],
  [
    'two entries for the algorithm, neither matching its files',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [
        { did: w.algorithm.id, filesChecksum: sha256Hex('an older version'), containerSectionChecksum: reviewedContainer(w) },
        { did: w.algorithm.id, filesChecksum: '', containerSectionChecksum: reviewedContainer(w) },
      ];
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' },
  ],
  [
    'an empty-checksum entry for the algorithm next to a wildcard (the entry for the DID decides)',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [{ did: w.algorithm.id, filesChecksum: '', containerSectionChecksum: '' }, { did: '*' }];
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_container_checksum_mismatch' },
  ],
  [
    'a wildcard entry next to a pinned entry of another algorithm',
    (w) => {
      computeOf(w.dataset).publisherTrustedAlgorithms = [{ did: 'did:op:0ther', filesChecksum: 'ff' }, { did: '*' }];
      w.algorithmFile = 'anything';
    },
    { ok: () => {} },
  ],
  [
    'a pinned algorithm trusted by the publisher list as well (both lists, AND)',
    (w) => {
      pin(w, { filesChecksum: reviewedFiles, containerSectionChecksum: reviewedContainer(w) });
      computeOf(w.dataset).publisherTrustedAlgorithmPublishers = [w.algorithm.nft!.owner!];
      w.algorithmFile = 'changed';
    },
    { error: AccessDeniedError, resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' },
  ],
  [
    'userdata missing a required dataset parameter',
    (w) => {
      withParameters([{ name: 'rows', type: 'number', required: true }])(w);
    },
    { error: ValidationError, fields: { 'dataset.userdata.rows': ['required'] } },
  ],
  [
    'userdata of the wrong types',
    (w) => {
      withParameters([
        { name: 'rows', type: 'number' },
        { name: 'flag', type: 'boolean' },
        { name: 'label', type: 'text' },
        { name: 'mode', type: 'select', options: [{ fast: 'Fast' }, { exact: 'Exact' }] },
      ])(w);
      w.datasets[0]!.userdata = { rows: 'many', flag: 'yes', label: 3, mode: 'slow' };
    },
    {
      error: ValidationError,
      fields: {
        'dataset.userdata.rows': ['must be a number'],
        'dataset.userdata.flag': ['must be true or false'],
        'dataset.userdata.label': ['must be text'],
        'dataset.userdata.mode': ['must be one of fast, exact'],
      },
    },
  ],
  [
    'userdata that fits every parameter (numbers and booleans as text too)',
    (w) => {
      withParameters([
        { name: 'rows', type: 'number', required: true },
        { name: 'flag', type: 'boolean' },
        { name: 'mode', type: 'select', options: [{ fast: 'Fast' }] },
      ])(w);
      w.datasets[0]!.userdata = { rows: '12', flag: 'true', mode: 'fast', extra: 'kept' };
    },
    { ok: () => {} },
  ],
  [
    'algorithm userdata missing a parameter the algorithm metadata requires',
    (w) => {
      w.algorithm.metadata.algorithm!.consumerParameters = [{ name: 'threshold', type: 'number', required: true }];
    },
    { error: ValidationError, fields: { 'algorithm.userdata.threshold': ['required'] } },
  ],
  [
    "algorithm userdata that fits the algorithm's parameters",
    (w) => {
      w.algorithm.metadata.algorithm!.consumerParameters = [{ name: 'threshold', type: 'number', required: true }];
      w.algorithmRef = { kind: 'published', did: w.algorithm.id, serviceId: 'algo-compute-1', userdata: { threshold: 0.5 } };
    },
    { ok: () => {} },
  ],
];

describe('authorizeJob', () => {
  it.each(cases)('when %s, then the rules answer as Ocean does', async (_name, mutate, expected) => {
    const w = world();
    mutate(w);
    const ddos = new Map([w.dataset, w.algorithm, w.catalogDataset].map((d) => [d.id, d]));
    const checked: ContainerSpec[] = [];
    const deps = {
      resolver: { resolve: (did: string) => Promise.resolve(ddos.get(did) ?? null) },
      decryptor: new ProviderFileDecryptor(fixtureProvider.privateKey),
      checkContainer: (c: ContainerSpec) => {
        checked.push(c);
        return w.unknownImage ? `unknown image ${c.image}` : null;
      },
      hashFile: (file: { url: string }) => {
        // the algorithm fixture's only file; a dataset file is never hashed
        expect(file.url).toBe(fixtureSecretUrls[1]);
        return w.algorithmFile instanceof FileFetchError ? Promise.reject(w.algorithmFile) : Promise.resolve(sha256Hex(w.algorithmFile));
      },
    };
    const outcome = await authorizeJob(deps, { owner: w.owner, datasets: w.datasets, algorithm: w.algorithmRef }).then(
      (job) => ({ job }),
      (error: unknown) => ({ error }),
    );
    if ('ok' in expected) {
      if ('error' in outcome) throw outcome.error;
      expected.ok(outcome.job);
      expect(checked).toHaveLength(1);
      return;
    }
    if (!('error' in outcome)) throw new Error('expected a refusal');
    expect(outcome.error).toBeInstanceOf(expected.error);
    const err = outcome.error as AccessDeniedError;
    if (expected.resource) expect(err.resource).toBe(expected.resource);
    if (expected.code) expect(err.code).toBe(expected.code);
    if (expected.message) expect(err.message).toMatch(expected.message);
    if (expected.fields) expect((outcome.error as ValidationError).fields).toEqual(expected.fields);
    for (const url of fixtureSecretUrls) expect(err.message).not.toContain(url);
  });

  describe('a public (access) algorithm another provider holds', () => {
    const remoteWorld = () => {
      const w = world();
      w.algorithm.services[0]!.type = 'access';
      w.algorithm.services[0]!.serviceEndpoint = 'http://provider-a.example.invalid';
      w.algorithm.services[0]!.files = encryptFiles(Wallet.createRandom().signingKey.publicKey, { urls: ['https://example.invalid/x'] });
      const asked: { did: string; transferTxId: string | undefined }[] = [];
      const remoteFiles = {
        filesChecksum: (ddo: Ddo, _service: unknown, transferTxId: string | undefined) => {
          asked.push({ did: ddo.id, transferTxId });
          return Promise.resolve(reviewedFiles);
        },
        signedFile: () => Promise.reject(new Error('not used by authorization')),
        fetchFile: () => Promise.reject(new Error('not used by authorization')),
      };
      const deps = {
        resolver: { resolve: (did: string) => Promise.resolve([w.dataset, w.algorithm].find((d) => d.id === did) ?? null) },
        decryptor: new ProviderFileDecryptor(fixtureProvider.privateKey),
        checkContainer: () => null,
        hashFile: () => Promise.reject(new Error('a remote algorithm is never fetched directly')),
        remoteFiles,
      };
      return { w, deps, asked };
    };

    it('when the dataset pins what the other provider hands out, then the algorithm is authorized as remote, hashed through that provider with the order named', async () => {
      const { w, deps, asked } = remoteWorld();
      const job = await authorizeJob(deps, {
        owner: w.owner,
        datasets: w.datasets,
        algorithm: { kind: 'published', did: w.algorithm.id, serviceId: 'algo-compute-1', transferTxId: '0xabc' },
      });
      expect(job.algorithm).toMatchObject({ kind: 'published', did: w.algorithm.id, remote: true, filesChecksum: reviewedFiles });
      expect(asked).toEqual([{ did: w.algorithm.id, transferTxId: '0xabc' }]);
    });

    it('when the other provider hands out other files than pinned, then algorithm_file_checksum_mismatch', async () => {
      const { w, deps } = remoteWorld();
      deps.remoteFiles.filesChecksum = () => Promise.resolve(sha256Hex('something else'));
      const err = await authorizeJob(deps, { owner: w.owner, datasets: w.datasets, algorithm: w.algorithmRef }).catch((e: unknown) => e);
      expect(err).toMatchObject({ resource: 'algorithm', code: 'algorithm_file_checksum_mismatch' });
    });

    it('when the other provider is down, then a retryable algorithm_file_unavailable; when it refuses, then algorithm_file_checksum_mismatch naming its answer', async () => {
      const { w, deps } = remoteWorld();
      deps.remoteFiles.filesChecksum = () => Promise.reject(new FileFetchError('connection failed (ECONNREFUSED)', true));
      expect(await authorizeJob(deps, { owner: w.owner, datasets: w.datasets, algorithm: w.algorithmRef }).catch((e: unknown) => e)).toBeInstanceOf(
        UnavailableError,
      );
      const refusing = remoteWorld();
      refusing.deps.remoteFiles.filesChecksum = () => Promise.reject(new FileFetchError('HTTP 400', false));
      const err = await authorizeJob(refusing.deps, { owner: refusing.w.owner, datasets: refusing.w.datasets, algorithm: refusing.w.algorithmRef }).catch(
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ resource: 'algorithm', code: 'algorithm_file_checksum_mismatch', message: expect.stringContaining('HTTP 400') });
    });

    it('when a private (compute) algorithm is encrypted for another provider, then it is refused even with a remote source', async () => {
      const { w, deps, asked } = remoteWorld();
      w.algorithm.services[0]!.type = 'compute';
      const err = await authorizeJob(deps, { owner: w.owner, datasets: w.datasets, algorithm: w.algorithmRef }).catch((e: unknown) => e);
      expect(err).toMatchObject({ resource: 'algorithm', code: 'compute_services_not_in_same_provider' });
      expect(asked).toEqual([]);
    });
  });

  it("when the image is unknown, then the error names the algorithm field with the backend's reason", async () => {
    const w = world();
    const deps = {
      resolver: { resolve: (did: string) => Promise.resolve([w.dataset, w.algorithm].find((d) => d.id === did) ?? null) },
      decryptor: new ProviderFileDecryptor(fixtureProvider.privateKey),
      checkContainer: () => 'unknown image node:20',
      hashFile: () => Promise.resolve(reviewedFiles),
    };
    const error = await authorizeJob(deps, { owner: w.owner, datasets: w.datasets, algorithm: w.algorithmRef }).catch((e: unknown) => e);
    expect((error as ValidationError).fields).toEqual({ algorithm: ['unknown image node:20'] });
  });
});
