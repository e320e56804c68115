import crypto from 'node:crypto';
import { ethers as ethers5 } from 'ethers-v5';
import { Wallet } from 'ethers';
import { ProviderClient } from '../../src/client/provider-client';
import { waitFor } from '../integration/helpers';
import { startChain, type TestChain } from '../helpers/chain';
import { type Stack, serveFiles, startStack } from '../helpers/stack';

/** The calls of @oceanprotocol/lib 3.4.6 this test makes, as its types declare them (ethers 5 signers). */
interface ComputeJob {
  jobId: string;
  owner: string;
  status: number;
  stopreq?: number;
  removed?: number;
  results: { filename: string }[] | '';
}
interface Provider346 {
  getComputeEnvironments(providerUri: string): Promise<Record<number, { id: string; consumerAddress: string }[]>>;
  computeStart(providerUri: string, consumer: ethers5.Signer, computeEnv: string, dataset: object, algorithm: object): Promise<ComputeJob | ComputeJob[]>;
  computeStatus(providerUri: string, consumerAddress: string, jobId?: string): Promise<ComputeJob | ComputeJob[]>;
  getComputeResultUrl(providerUri: string, consumer: ethers5.Signer, jobId: string, index: number): Promise<string>;
  computeStop(did: string, consumerAddress: string, jobId: string, providerUri: string, signer: ethers5.Signer): Promise<ComputeJob | ComputeJob[]>;
  computeDelete(did: string, consumer: ethers5.Signer, jobId: string, providerUri: string): Promise<ComputeJob | ComputeJob[]>;
}
// Loaded the way a consumer loads it, unmodified.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ProviderInstance } = require('@oceanprotocol/lib-346') as { ProviderInstance: Provider346 };

const FINAL = [31, 32, 41, 42, 61, 62, 70];
const CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` };

/**
 * @oceanprotocol/lib 3.4.6 (the version Pontus-X's nautilus pins), unmodified, through the compute flow
 * beside 3.3.0 and 8.x on the same provider: environments, start, status, result, a stop signed its own
 * way (address + jobId, without the nonce), delete. Catalog assets: the orders are 3.3.0's test's part.
 */
describe('@oceanprotocol/lib 3.4.6 drives this provider unmodified', () => {
  let chain: TestChain;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let url: string;
  let consumer: ethers5.Wallet;
  let dataset: string;

  beforeAll(async () => {
    // the lib asks the signer's chain for its id before it signs
    chain = await startChain();
    data = await serveFiles({ 'lines.txt': 'one\ntwo\nthree\n' });
    stack = await startStack({ environments: [{ id: 'lib346', maxJobs: 2, ramGB: 0.5, maxJobDuration: 600 }] });
    url = `${stack.baseUrl}/`;
    const key = `0x${crypto.randomBytes(32).toString('hex')}`;
    consumer = new ethers5.Wallet(key, new ethers5.providers.JsonRpcProvider(chain.rpcUrl, chain.chainId));
    dataset = await stack.publish(new ProviderClient(stack.baseUrl, new Wallet(key)), {
      type: 'dataset',
      name: 'lines',
      urls: [data.url('lines.txt')],
      compute: { allowRawAlgorithm: true },
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    await chain?.stop();
  });

  const one = (jobs: ComputeJob | ComputeJob[]): ComputeJob => (Array.isArray(jobs) ? jobs[0]! : jobs);
  const statusOf = async (jobId: string): Promise<ComputeJob> => one(await ProviderInstance.computeStatus(url, consumer.address, jobId));
  const start = async (rawcode: string): Promise<ComputeJob> =>
    one(
      await ProviderInstance.computeStart(url, consumer, 'lib346', { documentId: dataset, serviceId: 'compute' }, { meta: { rawcode, container: CONTAINER } }),
    );

  test('when it runs a job, then it reads it to 70, downloads the output, stops a second job and deletes the first', async () => {
    const envs = await ProviderInstance.getComputeEnvironments(url);
    expect(envs[stack.chainId]?.map((e) => e.id)).toEqual(['lib346']);

    const job = await start("const fs = require('fs'); fs.writeFileSync('/data/outputs/out.txt', 'counted'); console.log('done');");
    expect(job.owner).toBe(consumer.address.toLowerCase());
    const done = await waitFor(
      'the job to end',
      async () => {
        const j = await statusOf(job.jobId);
        return FINAL.includes(j.status) ? j : null;
      },
      60_000,
      200,
    );
    expect(done.status).toBe(70);
    const index = (done.results as { filename: string }[]).findIndex((r) => r.filename === 'out.txt');
    const res = await fetch(await ProviderInstance.getComputeResultUrl(url, consumer, job.jobId, index));
    expect(await res.text()).toBe('counted');

    const running = await start('setInterval(() => {}, 1000);');
    await waitFor('the algorithm to run', async () => ((await statusOf(running.jobId)).status === 40 ? true : null), 60_000, 200);
    // 3.4.6 signs its stop over address + jobId alone
    expect(one(await ProviderInstance.computeStop(dataset, consumer.address, running.jobId, url, consumer)).jobId).toBe(running.jobId);
    const stopped = await waitFor(
      'the stop',
      async () => {
        const j = await statusOf(running.jobId);
        return FINAL.includes(j.status) ? j : null;
      },
      60_000,
      200,
    );
    expect(stopped).toMatchObject({ status: 70, stopreq: 1 });

    await ProviderInstance.computeDelete(dataset, consumer, job.jobId, url);
    expect((await statusOf(job.jobId)).removed).toBe(1);
  }, 180_000);
});
