import crypto from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { containerSectionChecksum, sha256Hex } from '../../src/assets/checksums';
import { encrypt } from '../../src/assets/ecies';
import { buildCatalogDdo, type CatalogAssetSpec, writeCatalogDdo } from '../../tools/catalog/publish';
import { type ProviderClient, ProviderHttpError } from '../../src/client/provider-client';
import type { Ddo } from '../../src/domain/ddo';
import { type JobView, workflowIdForJob } from '../../src/domain/job';
import { nodeContainer } from '../helpers/api';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { testState } from '../helpers/state';
import { historyText } from '../helpers/temporal';
import { nodeRaw, resultText } from './helpers';

/** Marks the private algorithm's code: it must never come back from the provider. */
const MARKER = `PRIVATE-ALGORITHM-${crypto.randomBytes(8).toString('hex')}`;

/** Reports what it sees where the contract says inputs are (§5: inputs by DID and index, DDOs, custom data). */
const seeingAlgorithm = [
  `// ${MARKER}`,
  "const fs = require('fs');",
  'const dids = JSON.parse(process.env.DIDS);',
  'const seen = dids.map((did) => {',
  "  const dir = '/data/inputs/' + did.replace('did:op:', '');",
  '  const files = fs.readdirSync(dir).sort();',
  "  return { did, files: Object.fromEntries(files.map((f) => [f, fs.readFileSync(dir + '/' + f, 'utf8')])), ddo: JSON.parse(fs.readFileSync('/data/ddos/' + did, 'utf8')).id };",
  '});',
  "const customFile = '/data/inputs/algoCustomData.json';",
  "const custom = fs.existsSync(customFile) ? JSON.parse(fs.readFileSync(customFile, 'utf8')) : null;",
  "fs.writeFileSync('/data/outputs/seen.json', JSON.stringify({ dids, seen, custom, transformation: process.env.TRANSFORMATION_DID }));",
].join('\n');

const FILES: Record<string, string> = {
  'secret-a0.csv': 'a0\n',
  'secret-a1.csv': 'a1\n',
  'secret-b0.csv': 'b0\n',
  'secret-c0.csv': 'c0\n',
  'secret-algo.js': seeingAlgorithm,
  'secret-pinned.js': "require('fs').writeFileSync('/data/outputs/pinned.txt', 'reviewed')",
};

describe('publisher control, end to end', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let temporal: Client;
  const served: Record<string, string> = { ...FILES };
  const bodies: string[] = [];
  const jobIds: string[] = [];
  const realFetch = globalThis.fetch;
  const publisher = '0x00000000000000000000000000000000000a1e00';
  let algorithm: Ddo;

  /** A catalog asset whose file objects may carry a checksum (what /encrypt would hold). */
  async function publish(spec: Omit<CatalogAssetSpec, 'allow' | 'urls'> & { files: { name: string; checksum?: string }[] }): Promise<Ddo> {
    const ddo = buildCatalogDdo(stack.providerWallet.signingKey.publicKey, { ...spec, urls: [], allow: [client.address] });
    const plain = {
      did: ddo.id,
      serviceId: ddo.services[0]!.id,
      files: spec.files.map((f) => ({ type: 'url', method: 'GET', url: data.url(f.name), ...(f.checksum ? { checksum: f.checksum } : {}) })),
    };
    ddo.services[0]!.files = `0x${encrypt(stack.providerWallet.signingKey.publicKey, Buffer.from(JSON.stringify(plain))).toString('hex')}`;
    await writeCatalogDdo(stack.catalogDir, ddo);
    return ddo;
  }

  type StartRequest = Parameters<ProviderClient['startJob']>[0];
  const run = async (req: StartRequest): Promise<JobView> => (await runAll([req]))[0]!;
  /** Starts one after another (each start uses the wallet's next nonce), then waits for all together. */
  const runAll = async (reqs: StartRequest[]): Promise<JobView[]> => {
    const started: JobView[] = [];
    for (const req of reqs) started.push(await client.startJob(req));
    jobIds.push(...started.map((j) => j.jobId));
    return Promise.all(started.map((j) => client.waitForJob(j.jobId, { timeoutMs: 60_000 })));
  };
  const algo = (ddo: Ddo, algocustomdata?: Record<string, unknown>) => ({
    documentId: ddo.id,
    serviceId: ddo.services[0]!.id,
    ...(algocustomdata ? { algocustomdata } : {}),
  });
  const ds = (ddo: Ddo) => ({ documentId: ddo.id, serviceId: ddo.services[0]!.id });
  /** a trust entry pinning an algorithm to the file its publisher reviewed (as served now) and its container */
  const reviewed = (ddo: Ddo, file: string) => ({
    did: ddo.id,
    filesChecksum: sha256Hex(FILES[file]!),
    containerSectionChecksum: containerSectionChecksum(ddo.metadata.algorithm!.container),
  });

  beforeAll(async () => {
    // every answer the provider gives this test is kept, to scan for file locations at the end
    globalThis.fetch = async (...args: Parameters<typeof fetch>) => {
      const res = await realFetch(...args);
      bodies.push(await res.clone().text());
      return res;
    };
    data = await serveFiles(served);
    stack = await startStack({ environments: [{ id: 'pub', maxJobs: 4, ramGB: 0.5, maxJobDuration: 120 }], env: { C2D_LOG_LEVEL: 'debug' } });
    client = stack.consumer();
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }) });
    algorithm = await publish({
      type: 'algorithm',
      name: 'seeing',
      files: [{ name: 'secret-algo.js' }],
      container: nodeContainer,
      owner: publisher,
      serviceType: 'compute',
    });
  });

  afterAll(async () => {
    globalThis.fetch = realFetch;
    await stack?.stop();
    data?.close();
    await temporal?.connection.close();
  });

  it('when a job has three datasets (one through its access service), then each is where the contract says, with its DDO and custom data', async () => {
    const a = await publish({
      type: 'dataset',
      files: [{ name: 'secret-a0.csv', checksum: sha256Hex(FILES['secret-a0.csv']!) }, { name: 'secret-a1.csv' }],
      trustedAlgorithms: [reviewed(algorithm, 'secret-algo.js')],
    });
    const b = await publish({ type: 'dataset', files: [{ name: 'secret-b0.csv' }], trustedAlgorithms: [reviewed(algorithm, 'secret-algo.js')] });
    const c = await publish({ type: 'dataset', files: [{ name: 'secret-c0.csv' }], serviceType: 'access', serviceId: 'access' });
    const done = await run({ environment: 'pub', dataset: ds(a), additionalDatasets: [ds(b), ds(c)], algorithm: algo(algorithm, { threshold: 3 }) });
    expect(done).toMatchObject({ status: 70, inputDID: [a.id, b.id, c.id], algoDID: algorithm.id });
    const seen = JSON.parse(await resultText(client, done, 'seen.json')) as {
      dids: string[];
      seen: { did: string; files: Record<string, string>; ddo: string }[];
      custom: unknown;
      transformation: string;
    };
    expect(seen.dids).toEqual([a.id, b.id, c.id]);
    expect(seen.seen).toEqual([
      { did: a.id, files: { '0': 'a0\n', '1': 'a1\n' }, ddo: a.id },
      { did: b.id, files: { '0': 'b0\n' }, ddo: b.id },
      { did: c.id, files: { '0': 'c0\n' }, ddo: c.id },
    ]);
    expect(seen.custom).toEqual({ threshold: 3 });
    expect(seen.transformation).toBe(algorithm.id);
  });

  it('when a private (compute) algorithm has run, then no route gives its code back', async () => {
    const dataset = await publish({ type: 'dataset', files: [{ name: 'secret-b0.csv' }], trustedAlgorithms: [reviewed(algorithm, 'secret-algo.js')] });
    const done = await run({ environment: 'pub', dataset: ds(dataset), algorithm: algo(algorithm) });
    expect(done.status).toBe(70);
    const results = done.results === '' ? [] : done.results;
    expect(results.map((r) => r.filename).sort()).toEqual(['algorithm.log', 'configure.log', 'publish.log', 'seen.json']);
    for (const index of results.keys()) expect(await (await client.result(done.jobId, index)).text()).not.toContain(MARKER);
    expect((await client.result(done.jobId, results.length)).status).toBe(404);
    // routes a consumer might try to fetch the asset itself through: none serves it
    for (const [method, route, body] of [
      ['GET', `/api/services/download?documentId=${algorithm.id}&serviceId=compute&fileIndex=0&consumerAddress=${client.address}`],
      ['POST', '/api/services/download', { documentId: algorithm.id, serviceId: 'compute', fileIndex: 0, consumerAddress: client.address }],
      ['GET', `/api/services/computeResult?consumerAddress=${client.address}&jobId=${done.jobId}&index=-1&nonce=99999&signature=0x${'0'.repeat(130)}`],
    ] as const) {
      const res = await client.request(method, route, body);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(await res.text()).not.toContain(MARKER);
    }
    // fileinfo describes the file (its size), never its content or location
    const info = await client.request('POST', '/api/services/fileinfo', { did: algorithm.id, serviceId: 'compute' });
    expect(info.status).toBe(200);
    const infoText = await info.text();
    expect(JSON.parse(infoText)).toEqual([{ index: 0, valid: true, contentLength: null, contentType: 'application/octet-stream' }]); // the test server sends no length
    for (const needle of [MARKER, data.url('secret-algo.js')]) expect(infoText).not.toContain(needle);
    // nor can another algorithm read it as a dataset and copy it to its outputs
    const raw = await publish({ type: 'dataset', files: [{ name: 'secret-c0.csv' }], allowRawAlgorithm: true });
    const copier = nodeRaw(
      "const fs = require('fs'); for (const d of JSON.parse(process.env.DIDS)) fs.cpSync('/data/inputs/' + d.slice(8), '/data/outputs/' + d.slice(8), { recursive: true });",
    );
    for (const datasets of [[ds(raw), { documentId: algorithm.id, serviceId: 'compute' }], [{ documentId: algorithm.id, serviceId: 'compute' }]]) {
      const [first, ...more] = datasets;
      const refused = await client.startJob({ environment: 'pub', dataset: first!, additionalDatasets: more, algorithm: copier }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ProviderHttpError);
      expect((refused as ProviderHttpError).status).toBe(400);
      expect(JSON.parse((refused as ProviderHttpError).body)).toEqual({ error: { [more.length ? 'datasets[1]' : 'dataset']: 'private_algorithm_as_dataset' } });
    }
    expect(bodies.join('\n')).not.toContain(MARKER);
    expect(stack.output()).not.toContain(MARKER);
  });

  it('when datasets allow the algorithm by publisher, by wildcard or raw code, then each job runs', async () => {
    const byPublisher = await publish({ type: 'dataset', files: [{ name: 'secret-a0.csv' }], trustedPublishers: [publisher] });
    const byWildcardDid = await publish({ type: 'dataset', files: [{ name: 'secret-a0.csv' }], trustedAlgorithms: ['*'] });
    const byWildcardPublisher = await publish({ type: 'dataset', files: [{ name: 'secret-a0.csv' }], trustedPublishers: ['*'] });
    const raw = await publish({ type: 'dataset', files: [{ name: 'secret-a0.csv' }], allowRawAlgorithm: true });
    const jobs = await runAll([
      { environment: 'pub', dataset: ds(byPublisher), algorithm: algo(algorithm) },
      { environment: 'pub', dataset: ds(byWildcardDid), algorithm: algo(algorithm) },
      { environment: 'pub', dataset: ds(byWildcardPublisher), algorithm: algo(algorithm) },
      { environment: 'pub', dataset: ds(raw), algorithm: nodeRaw("require('fs').writeFileSync('/data/outputs/seen.json', JSON.stringify({ raw: true }))") },
    ]);
    expect(jobs.map((j) => j.status)).toEqual([70, 70, 70, 70]);
    for (const job of jobs.slice(0, 3)) expect(JSON.parse(await resultText(client, job, 'seen.json'))).toMatchObject({ seen: [{ files: { '0': 'a0\n' } }] });
    expect(JSON.parse(await resultText(client, jobs[3]!, 'seen.json'))).toEqual({ raw: true });
  });

  it("when a trusted algorithm's file changes after the publisher pinned it, then the next start is refused", async () => {
    const pinned = await publish({ type: 'algorithm', name: 'pinned', files: [{ name: 'secret-pinned.js' }], container: nodeContainer });
    const dataset = await publish({ type: 'dataset', files: [{ name: 'secret-a0.csv' }], trustedAlgorithms: [reviewed(pinned, 'secret-pinned.js')] });
    dataset.services[0]!.compute!.publisherTrustedAlgorithms = [
      { did: pinned.id, filesChecksum: sha256Hex(FILES['secret-pinned.js']!), containerSectionChecksum: containerSectionChecksum(nodeContainer) },
    ];
    await writeCatalogDdo(stack.catalogDir, dataset);
    const ok = await run({ environment: 'pub', dataset: ds(dataset), algorithm: algo(pinned) });
    expect(ok.status).toBe(70);
    expect(await resultText(client, ok, 'pinned.txt')).toBe('reviewed');

    served['secret-pinned.js'] =
      "require('fs').writeFileSync('/data/outputs/pinned.txt', require('fs').readFileSync('/data/inputs/' + JSON.parse(process.env.DIDS)[0].slice(8) + '/0'))";
    const refused = await client.startJob({ environment: 'pub', dataset: ds(dataset), algorithm: algo(pinned) }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProviderHttpError);
    expect((refused as ProviderHttpError).status).toBe(400);
    expect(JSON.parse((refused as ProviderHttpError).body)).toEqual({ error: { algorithm: 'algorithm_file_checksum_mismatch' } });
  });

  it('when an input does not match its checksum or is missing, then the job ends in 31 (32 for the algorithm) with a reason naming the input, never its URL', async () => {
    const changedAlgorithm = await publish({
      type: 'algorithm',
      name: 'changed',
      files: [{ name: 'secret-algo.js', checksum: `sha256:${sha256Hex('the reviewed code')}` }],
      container: nodeContainer,
    });
    const changed = await publish({
      type: 'dataset',
      files: [{ name: 'secret-b0.csv', checksum: sha256Hex('what the publisher listed') }],
      trustedAlgorithms: [reviewed(algorithm, 'secret-algo.js')],
    });
    const missing = await publish({ type: 'dataset', files: [{ name: 'secret-gone.csv' }], trustedAlgorithms: [reviewed(algorithm, 'secret-algo.js')] });
    const main = await publish({ type: 'dataset', files: [{ name: 'secret-a0.csv' }], trustedAlgorithms: [reviewed(algorithm, 'secret-algo.js')] });
    const trustsChanged = await publish({
      type: 'dataset',
      files: [{ name: 'secret-a0.csv' }],
      trustedAlgorithms: [reviewed(changedAlgorithm, 'secret-algo.js')],
    });
    const [bad, gone, badAlgorithm] = (await runAll([
      { environment: 'pub', dataset: ds(main), additionalDatasets: [ds(changed)], algorithm: algo(algorithm) },
      { environment: 'pub', dataset: ds(missing), algorithm: algo(algorithm) },
      { environment: 'pub', dataset: ds(trustsChanged), algorithm: algo(changedAlgorithm) },
    ])) as [JobView, JobView, JobView];
    expect(bad.status).toBe(31);
    expect(bad.terminationDetails?.reason).toMatch(/dataset 1 file 0: checksum mismatch/);
    expect(await resultText(client, bad, 'configure.log')).toContain('dataset 1 file 0: checksum mismatch');
    expect(bad.results === '' ? [] : bad.results.map((r) => r.type)).not.toContain('output');
    expect(gone.status).toBe(31);
    expect(gone.terminationDetails?.reason).toMatch(/dataset 0 file 0: HTTP 404/);
    expect(badAlgorithm.status).toBe(32);
    expect(badAlgorithm.terminationDetails?.reason).toMatch(/algorithm file 0: checksum mismatch/);
  });

  it('when every test above is done, then no response, log line or workflow history holds a file location', async () => {
    expect(jobIds.length).toBeGreaterThanOrEqual(10);
    const histories = await Promise.all(jobIds.map(async (id) => historyText(await temporal.workflow.getHandle(workflowIdForJob(id)).fetchHistory())));
    expect(histories.join('\n')).toContain(algorithm.id); // decoded: ids are readable, so the scan below means something
    const origin = data.url('').replace(/\/$/, '');
    const everything = { responses: bodies.join('\n'), logs: stack.output(), histories: histories.join('\n') };
    expect(everything.logs.length).toBeGreaterThan(0);
    for (const [where, text] of Object.entries(everything)) {
      for (const needle of [origin, ...Object.keys(FILES), 'secret-gone.csv']) {
        if (text.includes(needle)) throw new Error(`${where} holds ${needle}`);
      }
    }
  });
});
