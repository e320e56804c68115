import { Readable } from 'node:stream';
import { getBytes, keccak256, toBeArray, toUtf8Bytes, type Wallet } from 'ethers';
import request from 'supertest';
import { recoverCommandSigner } from '../../src/api/auth';
import { nodeContainer, signRequest } from '../helpers/api';
import { type ApiHarness, apiHarness, CHAIN_ID, expectNoSecretLeaked, randomWallet } from './harness';

/** ocean.js ≥ 4's signature: keccak256(address + nonce + command), signed as the bytes toBeArray gives (no leading zeros). */
const signCommand = (wallet: Wallet, nonce: string, command: string): Promise<string> =>
  wallet.signMessage(toBeArray(keccak256(toUtf8Bytes(wallet.address + nonce + command))));

const RAW = { meta: { rawcode: "console.log('v2')", container: nodeContainer } };

describe("API: ocean-node's compute API (ocean.js ≥ 4) beside the Python Provider's", () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness({
      environments: [
        {
          id: 'free',
          desc: 'free env',
          maxJobs: 3,
          cpuNumber: 2,
          ramGB: 2,
          diskGB: 4,
          free: { maxJobDuration: 60, maxJobs: 1, resources: [{ id: 'cpu', max: 1 }] },
        },
        { id: 'paid', desc: 'paid only', maxJobs: 1 },
      ],
    });
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    h.cleanup();
  });

  const freeStart = async (wallet: Wallet, extra: Record<string, unknown> = {}) => {
    const nonce = await h.nextNonce(wallet);
    const datasets = [{ documentId: h.rawDatasetDid, serviceId: 'compute' }];
    return {
      consumerAddress: wallet.address,
      signature: await signCommand(wallet, nonce, 'freeStartCompute'),
      nonce,
      environment: 'free',
      datasets,
      dataset: datasets[0],
      algorithm: RAW,
      ...extra,
    };
  };
  /** the job ends 70 with one stored output, out.txt = 'out' */
  const finishWithOutput = async (jobId: string): Promise<void> => {
    const results = await h.results.save(
      jobId,
      h.consumer.address,
      [{ filename: 'out.txt', type: 'output', open: () => Readable.from([Buffer.from('out')]) }],
      Date.now() + 3600_000,
    );
    h.jobs.set(jobId, { status: 70, results });
  };
  const startFree = async (): Promise<string> => {
    const res = await request(h.app)
      .post('/api/services/freeCompute')
      .send(await freeStart(h.consumer));
    if (res.status !== 200) throw new Error(`free start: ${res.status} ${JSON.stringify(res.body)}`);
    return (res.body as { jobId: string }[])[0]!.jobId;
  };

  describe('signatures over address + nonce + command', () => {
    test('when the hash starts with a zero byte, then the form ocean.js signs (leading zeros dropped) verifies, as does the full one', async () => {
      const wallet = randomWallet();
      let nonce = 1;
      while (getBytes(keccak256(toUtf8Bytes(`${wallet.address}${nonce}stopCompute`)))[0] !== 0) nonce++;
      const hash = keccak256(toUtf8Bytes(`${wallet.address}${nonce}stopCompute`));
      expect(toBeArray(hash)).toHaveLength(31);
      expect(recoverCommandSigner(wallet.address, String(nonce), 'stopCompute', await wallet.signMessage(toBeArray(hash)))).toBe(wallet.address);
      expect(recoverCommandSigner(wallet.address, String(nonce), 'stopCompute', await wallet.signMessage(getBytes(hash)))).toBe(wallet.address);
      // another command, another nonce or another signer does not verify
      const sig = await wallet.signMessage(toBeArray(hash));
      expect(recoverCommandSigner(wallet.address, String(nonce), 'startCompute', sig)).toBeNull();
      expect(recoverCommandSigner(wallet.address, String(nonce + 1), 'stopCompute', sig)).toBeNull();
      expect(recoverCommandSigner(h.consumer.address, String(nonce), 'stopCompute', sig)).toBeNull();
    });
  });

  describe('freeCompute', () => {
    test('when a consumer signs a free start, then 200 [job] in ocean-node vocabulary and a free v2 job with its resources starts', async () => {
      const body = await freeStart(h.consumer, { resources: [{ id: 'cpu', amount: 1 }], queueMaxWaitTime: 30, maxJobDuration: 20, metadata: { key: 'x' } });
      const res = await request(h.app).post('/api/services/freeCompute').send(body).expect(200);
      expect(res.body).toEqual([
        expect.objectContaining({ owner: h.consumer.address.toLowerCase(), status: 1, statusText: 'Job queued', results: [], api: 'v2' }),
      ]);
      expect(h.jobs.started).toEqual([
        expect.objectContaining({
          api: 'v2',
          free: true,
          environmentId: 'free',
          datasets: [{ did: h.rawDatasetDid, serviceId: 'compute' }],
          algorithm: expect.objectContaining({ kind: 'raw', rawcode: "console.log('v2')" }),
          resources: [{ id: 'cpu', amount: 1 }],
          queueMaxWaitTime: 30,
          maxJobDuration: 20,
        }),
      ]);
      // the signed nonce is used up: the same request again is refused
      await request(h.app).post('/api/services/freeCompute').send(body).expect(401);
    });

    test("when the signature is the Python Provider's form, or over another command, then 401 and nothing starts", async () => {
      const body = await freeStart(h.consumer);
      await request(h.app)
        .post('/api/services/freeCompute')
        .send({ ...body, signature: await signRequest(h.consumer, [h.consumer.address, h.rawDatasetDid], body.nonce) })
        .expect(401);
      await request(h.app)
        .post('/api/services/freeCompute')
        .send({ ...body, signature: await signCommand(h.consumer, body.nonce, 'startCompute') })
        .expect(401);
      expect(h.jobs.started).toHaveLength(0);
    });

    test('when the environment has no free limits, or the start asks for what this provider does not do, then 400 saying which', async () => {
      const noFree = await request(h.app)
        .post('/api/services/freeCompute')
        .send(await freeStart(h.consumer, { environment: 'paid' }))
        .expect(400);
      expect(JSON.stringify(noFree.body)).toContain('offers no free compute');
      const unsupported = await request(h.app)
        .post('/api/services/freeCompute')
        .send(await freeStart(h.consumer, { output: '0x04ab', policyServer: { a: 1 } }))
        .expect(400);
      expect(JSON.stringify(unsupported.body)).toContain('does not support output, policyServer');
      const noDatasets = await request(h.app)
        .post('/api/services/freeCompute')
        .send(await freeStart(h.consumer, { datasets: [] }))
        .expect(400);
      expect(JSON.stringify(noDatasets.body)).toContain('datasets');
      expect(h.jobs.started).toHaveLength(0);
    });
  });

  describe('shared routes answer each client generation in its own terms', () => {
    test("when ocean.js ≥ 4 asks for environments, then its root document (Authorization header) leads it to ocean-node's array with resources, inUse, fees and free limits; 3.x gets the object by chain id", async () => {
      // the same request from both generations: the root document each reads names a different form
      const rootV2 = await request(h.app).get('/').set('Authorization', 'undefined').expect(200);
      const rootLegacy = await request(h.app).get('/').expect(200);
      expect(rootV2.body.serviceEndpoints.computeEnvironments).toEqual(['GET', '/api/services/computeEnvironments?api=v2']);
      expect(rootLegacy.body.serviceEndpoints.computeEnvironments).toEqual(['GET', '/api/services/computeEnvironments']);
      expect({ ...rootV2.body.serviceEndpoints, computeEnvironments: null }).toEqual({ ...rootLegacy.body.serviceEndpoints, computeEnvironments: null });
      const v2 = await request(h.app).get('/api/services/computeEnvironments?api=v2').expect(200);
      expect(v2.body).toEqual([
        expect.objectContaining({
          id: 'free',
          consumerAddress: h.provider.address,
          resources: [
            { id: 'cpu', description: 'cores', total: 6, min: 1, max: 2, inUse: 0 },
            { id: 'ram', description: 'GB', total: 6, min: 1, max: 2, inUse: 0 },
            { id: 'disk', description: 'GB', total: 12, min: 1, max: 4, inUse: 0 },
          ],
          free: expect.objectContaining({ maxJobDuration: 60, maxJobs: 1, resources: [{ id: 'cpu', max: 1 }] }),
          fees: {},
        }),
        expect.objectContaining({ id: 'paid' }),
      ]);
      expect(v2.body[1]).not.toHaveProperty('free');
      const legacy = await request(h.app).get('/api/services/computeEnvironments').expect(200);
      expect(Object.keys(legacy.body)).toEqual([String(CHAIN_ID)]);
      expect((legacy.body as Record<number, { id: string }[]>)[CHAIN_ID]!.map((e) => e.id)).toEqual(['free', 'paid']);
    });

    test('when a consumer lists jobs of both generations, then each is shown in the vocabulary of the client that started it', async () => {
      const v2 = await startFree();
      const legacy = await h.startJob();
      h.jobs.set(v2, { status: 70 });
      const res = await request(h.app).get('/api/services/compute').query({ consumerAddress: h.consumer.address }).expect(200);
      const byId = Object.fromEntries((res.body as { jobId: string; status: number; statusText: string; results: unknown }[]).map((j) => [j.jobId, j]));
      expect(byId[v2]).toMatchObject({ status: 70, statusText: 'Job finished', results: [] });
      expect(byId[legacy]).toMatchObject({ status: 1, statusText: 'Warming up', results: '' });
      // pulling the algorithm's image: ocean-node's 10 (ours stays 20, configuring, for 3.x)
      h.jobs.set(v2, { status: 20, pullingImage: true });
      h.jobs.set(legacy, { status: 20, pullingImage: true });
      const pulling = await request(h.app).get('/api/services/compute').query({ consumerAddress: h.consumer.address }).expect(200);
      const statuses = Object.fromEntries(
        (pulling.body as { jobId: string; status: number; statusText: string }[]).map((j) => [j.jobId, [j.status, j.statusText]]),
      );
      expect(statuses).toEqual({ [v2]: [10, 'Pulling algorithm image'], [legacy]: [20, 'Configuring volumes'] });
      // the pull failed: ocean-node's 11 (ours 32 for 3.x)
      h.jobs.set(v2, { status: 32, pullingImage: undefined, imagePullFailed: true });
      h.jobs.set(legacy, { status: 32, pullingImage: undefined, imagePullFailed: true });
      const failed = await request(h.app).get('/api/services/compute').query({ consumerAddress: h.consumer.address }).expect(200);
      expect(
        Object.fromEntries((failed.body as { jobId: string; status: number; statusText: string }[]).map((j) => [j.jobId, [j.status, j.statusText]])),
      ).toEqual({
        [v2]: [11, 'Pulling algorithm image failed'],
        [legacy]: [32, 'Algorithm provisioning failed'],
      });
    });

    test('when ocean.js ≥ 4 stops a job, downloads a result and streams the log, then its signatures (address + nonce + command) are accepted', async () => {
      const jobId = await startFree();
      const log = h.backend.startLog(jobId);
      h.jobs.set(jobId, { status: 40 });
      let nonce = await h.nextNonce(h.consumer);
      const logs = request(h.app)
        .get('/api/services/computeStreamableLogs')
        .query({ jobId, consumerAddress: h.consumer.address, nonce, signature: await signCommand(h.consumer, nonce, 'getComputeStreamableLogs') });
      const streamed = logs.then((r) => r);
      log.end('line 1\n');
      expect((await streamed).status).toBe(200);
      expect((await streamed).text).toBe('line 1\n');

      await finishWithOutput(jobId);
      nonce = await h.nextNonce(h.consumer);
      const result = await request(h.app)
        .get('/api/services/computeResult')
        .query({ consumerAddress: h.consumer.address, jobId, index: 0, nonce, signature: await signCommand(h.consumer, nonce, 'getComputeResult') })
        .expect(200);
      expect(String(result.text ?? (result.body as Buffer).toString())).toBe('out');

      nonce = await h.nextNonce(h.consumer);
      const stopped = await request(h.app)
        .put('/api/services/compute')
        .query({ consumerAddress: h.consumer.address, nonce, signature: await signCommand(h.consumer, nonce, 'stopCompute'), jobId })
        .expect(200);
      expect(stopped.body).toEqual([expect.objectContaining({ jobId, status: 70, statusText: 'Job finished' })]);
      // a signature over another command is no stop
      nonce = await h.nextNonce(h.consumer);
      await request(h.app)
        .put('/api/services/compute')
        .query({ consumerAddress: h.consumer.address, nonce, signature: await signCommand(h.consumer, nonce, 'getComputeResult'), jobId })
        .expect(401);
    });
  });

  describe('auth tokens', () => {
    const token = async (wallet: Wallet): Promise<string> => {
      const nonce = await h.nextNonce(wallet);
      const res = await request(h.app)
        .post('/api/services/auth/token')
        .send({ address: wallet.address, nonce, signature: await signCommand(wallet, nonce, 'createAuthToken') })
        .expect(200);
      return (res.body as { token: string }).token;
    };

    test('when a consumer holds a token, then it starts, streams, downloads and stops with the token alone (no signature, no nonce)', async () => {
      const jwt = await token(h.consumer);
      const datasets = [{ documentId: h.rawDatasetDid, serviceId: 'compute' }];
      const started = await request(h.app)
        .post('/api/services/freeCompute')
        .set('Authorization', jwt)
        .send({ consumerAddress: h.consumer.address, environment: 'free', datasets, algorithm: RAW })
        .expect(200);
      const jobId = (started.body as { jobId: string }[])[0]!.jobId;
      h.backend.startLog(jobId).end('from the log\n');
      h.jobs.set(jobId, { status: 40 });
      const logs = await request(h.app)
        .get('/api/services/computeStreamableLogs')
        .set('Authorization', jwt)
        .query({ jobId, consumerAddress: h.consumer.address })
        .expect(200);
      expect(logs.text).toBe('from the log\n');
      await finishWithOutput(jobId);
      // ocean.js builds the result URL without nonce or signature; Bearer works as well as the raw token
      await request(h.app)
        .get('/api/services/computeResult')
        .set('Authorization', `Bearer ${jwt}`)
        .query({ consumerAddress: h.consumer.address, jobId, index: 0 })
        .expect(200);
      await request(h.app).put('/api/services/compute').set('Authorization', jwt).query({ consumerAddress: h.consumer.address, jobId }).expect(200);
      // no token and no signature: told what to send
      const bare = await request(h.app).put('/api/services/compute').query({ consumerAddress: h.consumer.address, jobId }).expect(401);
      expect(JSON.stringify(bare.body)).toContain('auth token');
    });

    test("when a token is someone else's, forged, or invalidated, then 401; invalidating voids it and its older ones only", async () => {
      const mine = await token(h.consumer);
      const theirs = await token(h.other);
      const asConsumer = (jwt: string) =>
        request(h.app)
          .get('/api/services/compute')
          .set('Authorization', jwt)
          .query({ consumerAddress: h.consumer.address, jobId: '0'.repeat(32) });
      const stop = (jwt: string) =>
        request(h.app)
          .put('/api/services/compute')
          .set('Authorization', jwt)
          .query({ consumerAddress: h.consumer.address, jobId: '0'.repeat(32) });
      expect((await stop(theirs)).status).toBe(401);
      expect((await stop(`${mine.slice(0, -2)}xx`)).status).toBe(401);
      expect((await stop(mine)).status).toBe(404); // a live token: no such job
      const newer = await token(h.consumer);
      // ocean.js 8.6.2 signs its invalidation over address + nonce alone
      const nonce = await h.nextNonce(h.consumer);
      await request(h.app)
        .post('/api/services/auth/token/invalidate')
        .send({ address: h.consumer.address, nonce, token: mine, signature: await signRequest(h.consumer, [h.consumer.address], nonce) })
        .expect(200, { success: true });
      expect((await stop(mine)).status).toBe(401);
      expect((await stop(newer)).status).toBe(404);
      expect((await asConsumer(mine)).status).toBe(200); // status needs no auth at all, as in ocean-node
    });

    test('when a token is asked for with a bad signature, then 401 and no token', async () => {
      const nonce = await h.nextNonce(h.consumer);
      const res = await request(h.app)
        .post('/api/services/auth/token')
        .send({ address: h.consumer.address, nonce, signature: await signCommand(h.other, nonce, 'createAuthToken') })
        .expect(401);
      expect(JSON.stringify(res.body)).not.toContain('token":');
    });
  });
});
