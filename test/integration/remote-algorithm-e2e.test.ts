import { Client, Connection } from '@temporalio/client';
import { trustedAlgorithm } from '../../tools/catalog/catalog-publisher';
import { type ProviderClient, ProviderHttpError } from '../../src/client/provider-client';
import { type JobView, workflowIdForJob } from '../../src/domain/job';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { testState } from '../helpers/state';
import { historyText } from '../helpers/temporal';
import { resultText } from './helpers';

const CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20' };
const ALGORITHM = [
  "const fs = require('fs');",
  "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
  "const rows = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split('\\n');",
  "fs.writeFileSync('/data/outputs/count.txt', `remote algorithm counted ${rows.length}`);",
].join('\n');

/**
 * A public (`access`) algorithm published on provider A runs in a job on provider B: B checks it against
 * the dataset's pinned checksums and fetches it through A's `download`, signed as B's environment
 * consumerAddress, which A's credentials let in. Two whole stacks (worker + API processes) on one Temporal.
 */
describe('a public algorithm held by another provider', () => {
  let a: Stack;
  let b: Stack;
  let files: Awaited<ReturnType<typeof serveFiles>>;
  let consumer: ProviderClient;
  let algorithm: string;
  let temporal: Client;
  const jobs: JobView[] = [];
  const bodies: string[] = [];
  const realFetch = globalThis.fetch;

  const datasetTrusting = (entry: { did: string; filesChecksum: string; containerSectionChecksum: string }) =>
    b.publish(consumer, { type: 'dataset', name: 'rows', urls: [files.url('rows-3b9c.csv')], compute: { publisherTrustedAlgorithms: [entry] } });

  beforeAll(async () => {
    globalThis.fetch = async (...args: Parameters<typeof fetch>) => {
      const res = await realFetch(...args);
      bodies.push(await res.clone().text());
      return res;
    };
    files = await serveFiles({ 'rows-3b9c.csv': 'r1\nr2\nr3\n', 'public-algo-3b9c.js': ALGORITHM });
    a = await startStack({ environments: [{ id: 'a', maxJobs: 1, ramGB: 0.5, maxJobDuration: 60 }] });
    b = await startStack({
      environments: [{ id: 'b', maxJobs: 2, ramGB: 0.5, maxJobDuration: 120 }],
      env: { C2D_AQUARIUS_URL: a.baseUrl, C2D_LOG_LEVEL: 'info' },
      // A is the provider the algorithm's serviceEndpoint names: on loopback here, so B allows it explicitly
      allowHosts: [new URL(a.baseUrl).host],
    });
    consumer = b.consumer();
    // A's publisher lets the consumer use the algorithm and B (its environments' consumerAddress) download it
    algorithm = await a.publish(a.consumer(), {
      type: 'algorithm',
      name: 'public count',
      serviceId: 'access',
      serviceType: 'access',
      serviceEndpoint: a.baseUrl,
      urls: [files.url('public-algo-3b9c.js')],
      container: CONTAINER,
      allow: [consumer.address, b.providerWallet.address],
    });
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }) });
  });

  afterAll(async () => {
    globalThis.fetch = realFetch;
    await temporal?.connection.close();
    await Promise.all([a?.stop(), b?.stop()]);
    files?.close();
  });

  it('when a dataset on B pins the algorithm A holds, then the job runs it, fetched through A, and finishes with its output', async () => {
    const dataset = await datasetTrusting(trustedAlgorithm(algorithm, CONTAINER, [ALGORITHM]));
    const started = await consumer.startJob({
      environment: 'b',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: { documentId: algorithm, serviceId: 'access' },
    });
    const done = await consumer.waitForJob(started.jobId, { timeoutMs: 60_000 });
    jobs.push(done);
    expect(done).toMatchObject({ status: 70, algoDID: algorithm, inputDID: [dataset] });
    expect(await resultText(consumer, done, 'count.txt')).toBe('remote algorithm counted 3');
    // B never decrypted A's files: every fetch of the algorithm went through A's download
    expect(files.hits.filter((h) => h === 'public-algo-3b9c.js').length).toBeGreaterThanOrEqual(2); // hashed at start, fetched again before the job runs
  });

  it('when the dataset pins other files than A hands out, then B refuses the start with algorithm_file_checksum_mismatch', async () => {
    const dataset = await datasetTrusting(trustedAlgorithm(algorithm, CONTAINER, ['reviewed, but not what A serves']));
    const err = await consumer
      .startJob({ environment: 'b', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: { documentId: algorithm, serviceId: 'access' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderHttpError);
    expect((err as ProviderHttpError).status).toBe(400);
    expect(JSON.parse((err as ProviderHttpError).body)).toEqual({ error: { algorithm: 'algorithm_file_checksum_mismatch' } });
  });

  it("when A's credentials do not let B download the algorithm, then B refuses the start (A's refusal is not a file)", async () => {
    const shut = await a.publish(a.consumer(), {
      type: 'algorithm',
      name: 'not for B',
      serviceId: 'access',
      serviceType: 'access',
      serviceEndpoint: a.baseUrl,
      urls: [files.url('public-algo-3b9c.js')],
      container: CONTAINER,
      allow: [consumer.address],
    });
    const before = files.hits.length;
    const dataset = await datasetTrusting(trustedAlgorithm(shut, CONTAINER, [ALGORITHM]));
    const err = await consumer
      .startJob({ environment: 'b', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: { documentId: shut, serviceId: 'access' } })
      .catch((e: unknown) => e);
    expect((err as ProviderHttpError).status).toBe(400);
    expect(JSON.parse((err as ProviderHttpError).body)).toEqual({ error: { algorithm: 'algorithm_file_checksum_mismatch' } });
    expect(files.hits.length).toBe(before); // A refused before asking the file server
  });

  it('when every test above is done, then no response, log line or workflow history holds the file location or a download signature', async () => {
    expect(jobs).toHaveLength(1);
    const histories = await Promise.all(jobs.map(async (j) => historyText(await temporal.workflow.getHandle(workflowIdForJob(j.jobId)).fetchHistory())));
    expect(histories.join('\n')).toContain(algorithm); // decoded: ids are readable, so the scan below means something
    const origin = files.url('').replace(/\/$/, '');
    const everything = { responses: bodies.join('\n'), logsA: a.output(), logsB: b.output(), histories: histories.join('\n') };
    expect(everything.logsB.length).toBeGreaterThan(0);
    for (const [where, text] of Object.entries(everything)) {
      for (const needle of [origin, 'public-algo-3b9c', 'rows-3b9c', 'signature=', '/api/services/download?']) {
        if (text.includes(needle)) throw new Error(`${where} holds ${needle}`);
      }
    }
  });
});
