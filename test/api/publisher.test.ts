import type http from 'node:http';
import request from 'supertest';
import { containerSectionChecksum, sha256Hex } from '../../src/assets/checksums';
import { buildCatalogDdo, type CatalogAssetSpec, writeCatalogDdo } from '../../tools/catalog/publish';
import type { Ddo } from '../../src/domain/ddo';
import { serveFiles } from '../../tools/local-stack';
import { nodeContainer, signRequest } from '../helpers/api';
import { type ApiHarness, ALGORITHM_URL, apiHarness, DATASET_URL, expectNoSecretLeaked, randomWallet } from './harness';

const START = '/api/services/compute';
const ALGO_CODE = "console.log('reviewed')";

type Files = Awaited<ReturnType<typeof serveFiles>>;

/** One start request: which assets, whose signature; `tweak` changes a DDO before it is written. */
interface Case {
  dataset?: Partial<CatalogAssetSpec> & { tweak?: (ddo: Ddo, h: ApiHarness, files: Files) => void };
  algorithm?: Partial<CatalogAssetSpec> & { tweak?: (ddo: Ddo, h: ApiHarness, files: Files) => void };
  /** instead of a published algorithm */
  raw?: Partial<typeof nodeContainer>;
  additional?: (Partial<CatalogAssetSpec> & { serviceId?: string })[];
  userdata?: Record<string, unknown>;
  /** sign as this address, in this letter case */
  consumerCase?: 'lower' | 'upper';
}

type Expected = { status: 200 } | { status: 400; error: Record<string, string> } | { status: 400; errors: Record<string, string[]> };

/** trusts the algorithm as its publisher reviewed it (both checksums pinned; its file is served by the local file server) */
const trustAlgo = (did: string) => ({
  trustedAlgorithms: [{ did, filesChecksum: sha256Hex(ALGO_CODE), containerSectionChecksum: containerSectionChecksum(nodeContainer) }],
});
const publisherOf = '0x00000000000000000000000000000000000a1e00';
const strangerAddress = '0x00000000000000000000000000000000000bad00';

const cases: [string, Case, Expected][] = [
  // trust rules, each way of being allowed
  ['a dataset that lists the algorithm DID', {}, { status: 200 }],
  ['a dataset that lists the algorithm publisher', { dataset: { trustedAlgorithms: [], trustedPublishers: [publisherOf] } }, { status: 200 }],
  [
    'a dataset that lists the publisher in another letter case',
    { dataset: { trustedAlgorithms: [], trustedPublishers: [publisherOf.toUpperCase().replace('0X', '0x')] } },
    { status: 200 },
  ],
  ['a dataset that trusts every algorithm (* DID)', { dataset: { trustedAlgorithms: ['*'] } }, { status: 200 }],
  ['a dataset that trusts every publisher (*)', { dataset: { trustedAlgorithms: [], trustedPublishers: ['*'] } }, { status: 200 }],
  ['a raw algorithm on a dataset that allows raw algorithms', { dataset: { allowRawAlgorithm: true }, raw: {} }, { status: 200 }],
  // trust rules, each way of being refused
  ['a dataset that trusts nothing (private by default)', { dataset: { trustedAlgorithms: [] } }, { status: 400, error: { dataset: 'not_trusted_algo' } }],
  ['a dataset that trusts another DID', { dataset: { trustedAlgorithms: ['did:op:0ther'] } }, { status: 400, error: { dataset: 'not_trusted_algo' } }],
  [
    'a dataset that trusts another publisher',
    { dataset: { trustedAlgorithms: [], trustedPublishers: [strangerAddress] } },
    { status: 400, error: { dataset: 'not_trusted_algo_publisher' } },
  ],
  [
    'a dataset that lists the DID but another publisher (both lists apply)',
    { dataset: { trustedPublishers: [strangerAddress] } },
    { status: 400, error: { dataset: 'not_trusted_algo_publisher' } },
  ],
  ['a raw algorithm on a dataset that does not allow them', { raw: {} }, { status: 400, error: { dataset: 'no_raw_algo_allowed' } }],
  [
    'a raw algorithm without an entrypoint',
    { dataset: { allowRawAlgorithm: true }, raw: { entrypoint: '' } },
    { status: 400, error: { algorithm: 'missing_entrypoint_image_checksum' } },
  ],
  [
    'a raw algorithm whose checksum lacks sha256:',
    { dataset: { allowRawAlgorithm: true }, raw: { checksum: 'abc' } },
    { status: 400, error: { algorithm: 'checksum_prefix' } },
  ],
  [
    'a published algorithm whose checksum lacks sha256:',
    { algorithm: { tweak: (d) => void (d.metadata.algorithm!.container.checksum = 'abc') } },
    { status: 400, error: { algorithm: 'checksum_prefix' } },
  ],
  ['a main dataset reached through its access service', { dataset: { serviceType: 'access' } }, { status: 400, error: { dataset: 'main_service_compute' } }],
  [
    'an algorithm whose files were encrypted for another provider',
    {
      algorithm: {
        tweak: (d) =>
          void (d.services[0]!.files = buildCatalogDdo(randomWallet().signingKey.publicKey, {
            type: 'algorithm',
            urls: [ALGORITHM_URL],
            allow: [],
          }).services[0]!.files),
      },
    },
    { status: 400, error: { algorithm: 'compute_services_not_in_same_provider' } },
  ],
  [
    'a dataset whose files were encrypted for another provider',
    {
      dataset: {
        tweak: (d) =>
          void (d.services[0]!.files = buildCatalogDdo(randomWallet().signingKey.publicKey, {
            type: 'dataset',
            urls: [DATASET_URL],
            allow: [],
          }).services[0]!.files),
      },
    },
    { status: 400, error: { dataset: 'compute_services_not_in_same_provider' } },
  ],
  ['an "algorithm" that is a dataset', { algorithm: { tweak: (d) => void (d.metadata.type = 'dataset') } }, { status: 400, error: { algorithm: 'not_algo' } }],
  // checksums of the listed algorithm (its file is served by a real local server)
  [
    'a listed algorithm matching both pinned checksums',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { files: sha256Hex(ALGO_CODE), container: true }) } },
    { status: 200 },
  ],
  [
    'a listed algorithm whose file differs from the pinned checksum',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { files: sha256Hex('console.log("before")'), container: true }) } },
    { status: 400, error: { algorithm: 'algorithm_file_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose container section differs from the pinned checksum',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { containerChecksum: containerSectionChecksum({ ...nodeContainer, entrypoint: 'node other.js' }) }) } },
    { status: 400, error: { algorithm: 'algorithm_container_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose entry has both checksums empty',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { files: '', containerChecksum: '' }) } },
    { status: 400, error: { algorithm: 'algorithm_container_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose entry has an empty files checksum',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { files: '', container: true }) } },
    { status: 400, error: { algorithm: 'algorithm_file_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose entry leaves both checksums out (a bare DID trusts nothing)',
    { dataset: { tweak: (d, _h, f) => pin(d, f, {}) } },
    { status: 400, error: { algorithm: 'algorithm_container_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose entry pins only the container',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { container: true }) } },
    { status: 400, error: { algorithm: 'algorithm_file_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose entry has an empty container checksum',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { files: sha256Hex(ALGO_CODE), containerChecksum: '' }) } },
    { status: 400, error: { algorithm: 'algorithm_container_checksum_mismatch' } },
  ],
  [
    'a listed algorithm whose file is gone',
    { dataset: { tweak: (d, _h, f) => pin(d, f, { files: sha256Hex(ALGO_CODE), container: true, file: 'gone.js' }) } },
    { status: 400, error: { algorithm: 'algorithm_file_checksum_mismatch' } },
  ],
  // credentials (type address, any letter case) and state, for datasets and algorithms
  ['a dataset that denies the consumer', { dataset: { deny: ['CONSUMER'] } }, { status: 400, error: { dataset: 'consumer_not_allowed' } }],
  [
    'a dataset that denies the consumer, who signs in lower case',
    { dataset: { deny: ['CONSUMER'] }, consumerCase: 'lower' },
    { status: 400, error: { dataset: 'consumer_not_allowed' } },
  ],
  ['a dataset whose allow-list lists the consumer in upper case', { dataset: { allow: ['CONSUMER_UPPER'] } }, { status: 200 }],
  ['a dataset whose allow-list lacks the consumer', { dataset: { allow: [strangerAddress] } }, { status: 400, error: { dataset: 'consumer_not_allowed' } }],
  ['an algorithm that denies the consumer', { algorithm: { deny: ['CONSUMER'] } }, { status: 400, error: { algorithm: 'consumer_not_allowed' } }],
  [
    'an algorithm whose allow-list lacks the consumer',
    { algorithm: { allow: [strangerAddress] } },
    { status: 400, error: { algorithm: 'consumer_not_allowed' } },
  ],
  ['a dataset in state 5 (unlisted)', { dataset: { state: 5 } }, { status: 200 }],
  ['a dataset in state 4 (revoked)', { dataset: { state: 4 } }, { status: 400, error: { dataset: 'asset_not_consumable' } }],
  ['a dataset in state 1 (end of life)', { dataset: { state: 1 } }, { status: 400, error: { dataset: 'asset_not_consumable' } }],
  ['an algorithm in state 2 (deprecated)', { algorithm: { state: 2 } }, { status: 400, error: { algorithm: 'asset_not_consumable' } }],
  // additional datasets: each checked on its own
  ['an additional dataset through its access service', { additional: [{ serviceType: 'access', serviceId: 'access' }] }, { status: 200 }],
  ['an additional dataset that trusts nothing', { additional: [{ trustedAlgorithms: [] }] }, { status: 400, error: { 'datasets[1]': 'not_trusted_algo' } }],
  [
    'a second additional dataset that denies the consumer',
    { additional: [{}, { deny: ['CONSUMER'] }] },
    { status: 400, error: { 'datasets[2]': 'consumer_not_allowed' } },
  ],
  ['an additional dataset in state 4', { additional: [{ state: 4 }] }, { status: 400, error: { 'datasets[1]': 'asset_not_consumable' } }],
  [
    'an additional dataset that refuses raw algorithms',
    { dataset: { allowRawAlgorithm: true }, raw: {}, additional: [{}] },
    { status: 400, error: { 'datasets[1]': 'no_raw_algo_allowed' } },
  ],
  // userdata against consumerParameters
  [
    'userdata missing a required parameter of the dataset',
    { dataset: { tweak: (d) => void (d.services[0]!.consumerParameters = [{ name: 'rows', type: 'number', required: true }]) } },
    { status: 400, errors: { 'dataset.userdata.rows': ['required'] } },
  ],
  [
    'userdata with a select value not among the options',
    {
      dataset: { tweak: (d) => void (d.services[0]!.consumerParameters = [{ name: 'mode', type: 'select', options: [{ fast: 'Fast' }] }]) },
      userdata: { mode: 'slow' },
    },
    { status: 400, errors: { 'dataset.userdata.mode': ['must be one of fast'] } },
  ],
  [
    'userdata that fits the dataset parameters',
    { dataset: { tweak: (d) => void (d.services[0]!.consumerParameters = [{ name: 'rows', type: 'number', required: true }]) }, userdata: { rows: 3 } },
    { status: 200 },
  ],
];

/** Pins the algorithm in the dataset's trust list with the given checksums; points the algorithm at the local file server. */
function pin(dataset: Ddo, files: Files, opts: { files?: string; container?: boolean; containerChecksum?: string; file?: string }): void {
  const algorithmDid = dataset.services[0]!.compute!.publisherTrustedAlgorithms[0]!.did;
  pending.set(algorithmDid, files.url(opts.file ?? 'algo.js'));
  dataset.services[0]!.compute!.publisherTrustedAlgorithms = [
    {
      did: algorithmDid,
      ...(opts.files !== undefined ? { filesChecksum: opts.files } : {}),
      ...(opts.container ? { containerSectionChecksum: containerSectionChecksum(nodeContainer) } : {}),
      ...(opts.containerChecksum !== undefined ? { containerSectionChecksum: opts.containerChecksum } : {}),
    },
  ];
}
/** algorithm DID → the URL its file should have (set by `pin`, read when the algorithm is written) */
const pending = new Map<string, string>();

describe("API: the publisher's rules, through POST /compute", () => {
  let h: ApiHarness;
  let files: Files;

  beforeAll(async () => {
    files = await serveFiles({ 'algo.js': ALGO_CODE });
  });
  afterAll(() => files.close());
  beforeEach(async () => {
    h = await apiHarness({ allowHosts: [files.host] });
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    expect(h.bodies.join('\n')).not.toContain(files.url(''));
    h.cleanup();
  });

  const resolveAddresses = (list: string[] | undefined): string[] | undefined =>
    list?.map((a) => (a === 'CONSUMER' ? h.consumer.address : a === 'CONSUMER_UPPER' ? `0x${h.consumer.address.slice(2).toUpperCase()}` : a));

  function write(spec: CatalogAssetSpec, tweak?: (ddo: Ddo, h: ApiHarness, files: Files) => void): Ddo {
    const ddo = buildCatalogDdo(h.provider.signingKey.publicKey, { ...spec, allow: resolveAddresses(spec.allow) ?? [], deny: resolveAddresses(spec.deny) });
    tweak?.(ddo, h, files);
    return ddo;
  }

  it.each(cases)('when %s, then the start answers as the contract says', async (_name, c, expected) => {
    const allow = [h.consumer.address];
    const algorithm = write(
      { type: 'algorithm', urls: [files.url('algo.js')], allow, container: nodeContainer, owner: publisherOf, ...c.algorithm },
      c.algorithm?.tweak,
    );
    const dataset = write({ type: 'dataset', urls: [DATASET_URL], allow, ...trustAlgo(algorithm.id), ...c.dataset }, c.dataset?.tweak);
    const pinnedUrl = pending.get(algorithm.id);
    if (pinnedUrl) {
      const withFile = buildCatalogDdo(h.provider.signingKey.publicKey, {
        type: 'algorithm',
        did: algorithm.id,
        urls: [pinnedUrl],
        allow,
        container: nodeContainer,
        owner: publisherOf,
      });
      algorithm.services[0]!.files = withFile.services[0]!.files;
    }
    const additional: Ddo[] = [];
    for (const spec of c.additional ?? []) additional.push(write({ type: 'dataset', urls: [DATASET_URL], allow, ...trustAlgo(algorithm.id), ...spec }));
    for (const ddo of [algorithm, dataset, ...additional]) await writeCatalogDdo(h.catalogDir, ddo);

    const signer = h.consumer;
    const address = c.consumerCase === 'lower' ? signer.address.toLowerCase() : signer.address;
    const nonce = await h.nextNonce(signer);
    const body = {
      consumerAddress: address,
      signature: await signRequest(signer, [address, dataset.id], nonce),
      nonce,
      environment: 'free',
      dataset: { documentId: dataset.id, serviceId: dataset.services[0]!.id, ...(c.userdata ? { userdata: c.userdata } : {}) },
      algorithm: c.raw
        ? { meta: { rawcode: 'console.log(1)', container: { ...nodeContainer, ...c.raw } } }
        : { documentId: algorithm.id, serviceId: 'compute' },
      ...(additional.length > 0 ? { additionalDatasets: additional.map((d) => ({ documentId: d.id, serviceId: d.services[0]!.id })) } : {}),
    };
    const res = await request(h.app).post(START).send(body);
    expect({ status: res.status, body: res.body as unknown }).toMatchObject(
      expected.status === 200
        ? { status: 200 }
        : 'error' in expected
          ? { status: 400, body: { error: expected.error } }
          : { status: 400, body: { message: 'Validation error', errors: expected.errors } },
    );
    if (expected.status === 200) {
      expect(h.jobs.started).toHaveLength(1);
      expect(h.jobs.started[0]!.datasets.map((d) => d.did)).toEqual([dataset.id, ...additional.map((d) => d.id)]);
    } else {
      expect(h.jobs.started).toHaveLength(0);
    }
  });
});

describe('API: fileinfo and validateContainer', () => {
  let h: ApiHarness;
  let files: Files;

  beforeAll(async () => {
    files = await serveFiles({ 'rows.csv': 'a,b\n1,2\n' });
    // a file server that states lengths, as most do (serveFiles streams without one)
    files.server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url === '/rows.csv') res.setHeader('content-length', '8');
    });
  });
  afterAll(() => files.close());
  beforeEach(async () => {
    h = await apiHarness({ allowHosts: [files.host] });
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    expect(h.bodies.join('\n') + JSON.stringify(h.logger.entries)).not.toContain(files.url(''));
    h.cleanup();
  });

  it('when a dataset service is probed, then each file says its index, validity, length and type, and never its URL', async () => {
    const ddo = buildCatalogDdo(h.provider.signingKey.publicKey, {
      type: 'dataset',
      urls: [files.url('rows.csv'), files.url('missing.csv')],
      allow: [h.consumer.address],
    });
    await writeCatalogDdo(h.catalogDir, ddo);
    const expected = [
      { index: 0, valid: true, contentLength: '8', contentType: 'application/octet-stream' },
      { index: 1, valid: false, contentLength: null, contentType: null },
    ];
    const post = await request(h.app).post('/api/services/fileinfo').send({ did: ddo.id, serviceId: 'compute' }).expect(200);
    expect(post.body).toEqual(expected);
    const get = await request(h.app).get('/api/services/fileinfo').query({ documentId: ddo.id, serviceId: 'compute' }).expect(200);
    expect(get.body).toEqual(expected);
  });

  it.each([
    ['an unknown DID', 404, { did: 'did:op:feed', serviceId: 'compute' }],
    ['an unknown service', 404, { did: 'DATASET', serviceId: 'nope' }],
    ['no DID', 400, { serviceId: 'compute' }],
  ])('when fileinfo is asked for %s, then it answers %s', async (_name, status, params: { did?: string; serviceId: string }) => {
    const res = await request(h.app)
      .post('/api/services/fileinfo')
      .send({ ...params, did: params.did === 'DATASET' ? h.datasetDid : params.did })
      .expect(status);
    expect(JSON.stringify(res.body)).not.toContain('example.invalid');
  });

  it('when the root document is read, then it names fileinfo and validateContainer', async () => {
    const res = await request(h.app).get('/').expect(200);
    expect(res.body.serviceEndpoints).toMatchObject({
      fileinfo: ['POST', '/api/services/fileinfo'],
      validateContainer: ['POST', '/api/services/validateContainer'],
    });
  });

  it.each([
    ['a complete container', 200, nodeContainer, { valid: true }],
    ['a container wrapped as {container}', 200, { container: nodeContainer }, { valid: true }],
    ['a container without an entrypoint', 400, { ...nodeContainer, entrypoint: '' }, { error: { algorithm: 'missing_entrypoint_image_checksum' } }],
    [
      'a container without an image',
      400,
      { entrypoint: 'node $ALGO', tag: '20', checksum: nodeContainer.checksum },
      { error: { algorithm: 'missing_entrypoint_image_checksum' } },
    ],
    ['a container whose checksum lacks sha256:', 400, { ...nodeContainer, checksum: 'md5:00' }, { error: { algorithm: 'checksum_prefix' } }],
  ])('when validateContainer gets %s, then it answers %s', async (_name, status, body: object, answer) => {
    const res = await request(h.app).post('/api/services/validateContainer').send(body).expect(status);
    expect(res.body).toEqual(answer);
  });
});
