import { Client, Connection } from '@temporalio/client';
import type { ProviderClient } from '../../src/client/provider-client';
import { testState } from '../helpers/state';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { nodeRaw } from './helpers';

/** Refused requests get the contract's 4xx shapes and start nothing in Temporal. */
describe('bad compute starts, end to end', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let temporal: Client;

  beforeAll(async () => {
    data = await serveFiles({ 'a.csv': 'a\n1\n' });
    stack = await startStack({ environments: [{ id: 'bad', maxJobs: 1, ramGB: 0.25 }] });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'a', urls: [data.url('a.csv')], compute: { allowRawAlgorithm: true } });
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }) });
  });

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    await temporal?.connection.close();
  });

  const startRaw = async (over: Record<string, unknown>) => {
    const auth = await client.sign(client.address, (over.documentId as string | undefined) ?? dataset);
    return client.request('POST', '/api/services/compute', {
      consumerAddress: client.address,
      ...auth,
      environment: 'bad',
      dataset: { documentId: over.documentId ?? dataset, serviceId: 'compute' },
      algorithm: nodeRaw('1'),
      ...over,
    });
  };

  it.each([
    ['an unknown environment', { environment: 'nope' }, 400],
    ['an unknown DID', { documentId: `did:op:${'0'.repeat(64)}` }, 404],
    [
      'an unknown image',
      { algorithm: { meta: { rawcode: '1', container: { entrypoint: 'x $ALGO', image: 'cobol', tag: '1', checksum: `sha256:${'a'.repeat(64)}` } } } },
      400,
    ],
    ['a bad signature', { signature: `0x${'11'.repeat(65)}` }, 401],
  ])('when the start names %s, then it is a %i and no workflow exists for the consumer', async (_what, over, status) => {
    const res = await startRaw(over);
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error?: unknown; errors?: unknown };
    expect(body.error ?? body.errors).toBeTruthy();
    expect(JSON.stringify(body)).not.toContain(data.url('a.csv'));
    expect(await (await client.request('GET', `/api/services/compute?consumerAddress=${client.address}`)).json()).toEqual([]);
    let count = 0;
    for await (const _ of temporal.workflow.list({ query: `C2DOwner = '${client.address.toLowerCase()}'` })) count++;
    expect(count).toBe(0);
  });

  it('when a nonce is reused, then the second start is refused and only one job exists', async () => {
    const auth = await client.sign(client.address, dataset);
    const body = {
      consumerAddress: client.address,
      ...auth,
      environment: 'bad',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw('1'),
    };
    const [a, b] = await Promise.all([client.request('POST', '/api/services/compute', body), client.request('POST', '/api/services/compute', body)]);
    expect([a.status, b.status].sort()).toEqual([200, 401]);
    const jobs = (await (await client.request('GET', `/api/services/compute?consumerAddress=${client.address}`)).json()) as unknown[];
    expect(jobs).toHaveLength(1);
  });

  it("when another consumer asks for, stops or downloads someone's job, then they see nothing of it", async () => {
    const job = await client.startJob({
      environment: 'bad',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw("require('fs').writeFileSync('/data/outputs/o', 'mine')"),
    });
    const done = await client.waitForJob(job.jobId);
    const intruder = stack.consumer();
    expect(await (await intruder.request('GET', `/api/services/compute?consumerAddress=${intruder.address}&jobId=${job.jobId}`)).json()).toEqual([]);
    expect(
      (
        await intruder.request('PUT', '/api/services/compute', {
          consumerAddress: intruder.address,
          jobId: job.jobId,
          ...(await intruder.sign(intruder.address, job.jobId, '')),
        })
      ).status,
    ).toBe(404);
    expect((await intruder.result(job.jobId, 0)).status).toBe(404);
    expect((await client.result(done.jobId, 0)).status).toBe(200);
  });
});
