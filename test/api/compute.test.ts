import { getBytes, keccak256, toUtf8Bytes } from 'ethers';
import request from 'supertest';
import { nodeContainer, publishCatalogAsset, signRequest } from '../helpers/api';
import { type ApiHarness, apiHarness, DATASET_URL, expectNoSecretLeaked, randomWallet } from './harness';

const START = '/api/services/compute';
const jobIds = (body: unknown): string[] => (body as { jobId: string }[]).map((j) => j.jobId);

describe('API: compute start, status, stop, delete', () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness();
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    h.cleanup();
  });

  describe('start', () => {
    it('when a consumer signs a start for an allowed dataset and trusted algorithm, then 200 [job] and one workflow start with ids only', async () => {
      const body = await h.startBody(h.consumer);
      const res = await request(h.app).post(START).send(body).expect(200);
      expect(Array.isArray(res.body)).toBe(true);
      expect(res.body[0]).toMatchObject({
        jobId: expect.stringMatching(/^[0-9a-f]{32}$/),
        owner: h.consumer.address.toLowerCase(),
        status: 1,
        inputDID: [h.datasetDid],
        algoDID: h.algorithmDid,
        environment: 'free',
      });
      expect(h.jobs.started).toHaveLength(1);
      const input = h.jobs.started[0]!;
      expect(input).toMatchObject({
        owner: h.consumer.address.toLowerCase(),
        environmentId: 'free',
        datasets: [{ did: h.datasetDid, serviceId: 'compute' }],
        algorithm: { kind: 'published', did: h.algorithmDid },
      });
      expect(Date.now() - input.createdAt).toBeLessThan(10_000);
      expect(JSON.stringify(input)).not.toContain(body.signature);
      expect(JSON.stringify(input)).not.toContain(DATASET_URL);
    });

    it('when the nonce arrives as a number and the body has extra fields, then the start still works', async () => {
      const body = await h.startBody(h.consumer);
      await request(h.app)
        .post(START)
        .send({ ...body, nonce: Number(body.nonce), output: { metadataUri: 'x' } })
        .expect(200);
    });

    it('when the parameters come in the query string, then they are read from there', async () => {
      const body = await h.startBody(h.consumer);
      await request(h.app)
        .post(START)
        .query({ ...body, dataset: JSON.stringify(body.dataset), algorithm: JSON.stringify(body.algorithm) })
        .expect(200);
      expect(h.jobs.started).toHaveLength(1);
    });

    it('when the signature was made by someone else, then 401 and nothing starts', async () => {
      const body = await h.startBody(h.consumer);
      const forged = await signRequest(h.other, [h.consumer.address, h.datasetDid], body.nonce);
      const res = await request(h.app)
        .post(START)
        .send({ ...body, signature: forged })
        .expect(401);
      expect(res.body).toEqual({ error: expect.stringMatching(/signature/i) });
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when the signed message differs (another dataset), then 401', async () => {
      const body = await h.startBody(h.consumer);
      await request(h.app)
        .post(START)
        .send({ ...body, dataset: { documentId: h.rawDatasetDid, serviceId: 'compute' } })
        .expect(401);
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when a nonce is reused, then the second request is refused and starts nothing', async () => {
      const body = await h.startBody(h.consumer);
      await request(h.app).post(START).send(body).expect(200);
      const res = await request(h.app).post(START).send(body).expect(401);
      expect(res.body.error).toMatch(/nonce/i);
      expect(h.jobs.started).toHaveLength(1);
    });

    it('when 20 requests race with one nonce, then exactly one starts a job', async () => {
      const body = await h.startBody(h.consumer);
      const statuses = (await Promise.all(Array.from({ length: 20 }, () => request(h.app).post(START).send(body)))).map((r) => r.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(statuses.filter((s) => s === 401)).toHaveLength(19);
      expect(h.jobs.started).toHaveLength(1);
    });

    it('when the JSON is malformed, then 400 in the validation shape', async () => {
      const res = await request(h.app).post(START).set('Content-Type', 'application/json').send('{"consumerAddress": ').expect(400);
      expect(res.body).toEqual({ message: 'Validation error', errors: { body: ['malformed JSON'] }, success: false });
    });

    it('when fields are missing, then 400 naming each of them', async () => {
      const res = await request(h.app).post(START).send({ consumerAddress: h.consumer.address }).expect(400);
      expect(res.body.message).toBe('Validation error');
      expect(res.body.success).toBe(false);
      expect(Object.keys(res.body.errors).sort()).toEqual(['algorithm', 'dataset', 'environment', 'nonce', 'signature']);
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when the environment does not exist, then 400 "Compute environment does not exist" and nothing starts', async () => {
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(h.consumer, { environment: 'gpu-huge' }))
        .expect(400);
      expect(res.body).toEqual({ error: 'Compute environment does not exist' });
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when the dataset DID is unknown, then 404 naming the DID and nothing starts', async () => {
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(h.consumer, { dataset: 'did:op:0123abcd' }))
        .expect(404);
      expect(res.body.error).toContain('did:op:0123abcd');
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when the algorithm image is unknown to the environment, then 400 on the algorithm field and nothing starts', async () => {
      const algo = await publishCatalogAsset(h.catalogDir, h.provider, {
        type: 'algorithm',
        urls: [h.algorithmUrl],
        allow: [h.consumer.address],
        container: { ...nodeContainer, image: 'cobol' },
      });
      const dataset = await publishCatalogAsset(h.catalogDir, h.provider, {
        type: 'dataset',
        urls: [DATASET_URL],
        allow: [h.consumer.address],
        trustedAlgorithms: [h.pinned(algo)],
      });
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(h.consumer, { dataset, algorithm: { documentId: algo, serviceId: 'compute' } }))
        .expect(400);
      expect(res.body).toEqual({ message: 'Validation error', errors: { algorithm: ['unknown image cobol:20'] }, success: false });
      expect(h.jobs.started).toHaveLength(0);
    });

    it("when a raw algorithm is sent for a dataset without allowRawAlgorithm, then Ocean's no_raw_algo_allowed", async () => {
      const algorithm = { meta: { rawcode: 'console.log(1)', container: nodeContainer } };
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(h.consumer, { algorithm }))
        .expect(400);
      expect(res.body).toEqual({ error: { dataset: 'no_raw_algo_allowed' } });
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when a raw algorithm is sent for a dataset that allows it, then the job starts with the raw container', async () => {
      const algorithm = { meta: { rawcode: 'console.log(1)', container: nodeContainer } };
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(h.consumer, { dataset: h.rawDatasetDid, algorithm }))
        .expect(200);
      expect(res.body[0].algoDID).toBe('raw');
      expect(h.jobs.started[0]?.algorithm).toEqual({ kind: 'raw', container: nodeContainer, rawcode: 'console.log(1)' });
    });

    it("when the consumer is not on the catalog asset's allow-list, then refused and nothing starts", async () => {
      const stranger = randomWallet();
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(stranger))
        .expect(400);
      expect(res.body).toEqual({ error: { dataset: 'consumer_not_allowed' } });
      expect(h.jobs.started).toHaveLength(0);
    });

    it('when the orchestrator fails unexpectedly, then 503 with a bare message', async () => {
      h.jobs.start = () => Promise.reject(new Error(`connect ECONNREFUSED while fetching ${DATASET_URL}`));
      const res = await request(h.app)
        .post(START)
        .send(await h.startBody(h.consumer))
        .expect(503);
      expect(res.body).toEqual({ error: 'Service unavailable' });
      const logged = h.logger.entries.find((e) => e.msg === 'request failed');
      expect(logged?.fields).toMatchObject({ status: 503, message: 'connect ECONNREFUSED while fetching <url>' });
    });
  });

  describe('status, stop, delete', () => {
    const signedStop = async (wallet: ReturnType<typeof randomWallet>, jobId: string, nonce?: string) => {
      const n = nonce ?? (await h.nextNonce(wallet));
      return { consumerAddress: wallet.address, jobId, nonce: n, signature: await signRequest(wallet, [wallet.address, jobId, ''], n) };
    };

    it("when the owner asks for a job, then [job]; without jobId, then all their jobs and nobody else's", async () => {
      const mine = await h.startJob(h.consumer);
      const theirs = await h.startJob(h.other);
      const one = await request(h.app).get(START).query({ consumerAddress: h.consumer.address, jobId: mine }).expect(200);
      expect(jobIds(one.body)).toEqual([mine]);
      const all = await request(h.app).get(START).query({ consumerAddress: h.consumer.address.toLowerCase() }).expect(200);
      expect(jobIds(all.body)).toEqual([mine]);
      const filtered = await request(h.app).get(START).query({ consumerAddress: h.other.address, documentId: h.datasetDid }).expect(200);
      expect(jobIds(filtered.body)).toEqual([theirs]);
      // ocean.js ≥ 4 may ask for the jobs of one order (agreementId), in either case
      const second = await h.startJob(h.consumer);
      h.jobs.set(second, { agreementId: '0xabc1' });
      const byOrder = await request(h.app).get(START).query({ consumerAddress: h.consumer.address, agreementId: '0xABC1' }).expect(200);
      expect(jobIds(byOrder.body)).toEqual([second]);
      const otherOrder = await request(h.app).get(START).query({ consumerAddress: h.consumer.address, jobId: second, agreementId: '0xabc2' }).expect(200);
      expect(otherOrder.body).toEqual([]);
    });

    it("when someone asks for another owner's job id, then it is not visible (same answer as no such job)", async () => {
      const theirs = await h.startJob(h.other);
      const res = await request(h.app).get(START).query({ consumerAddress: h.consumer.address, jobId: theirs }).expect(200);
      expect(res.body).toEqual([]);
      const none = await request(h.app)
        .get(START)
        .query({ consumerAddress: h.consumer.address, jobId: 'f'.repeat(32) })
        .expect(200);
      expect(none.body).toEqual([]);
    });

    it('when status is asked without consumerAddress, then 400', async () => {
      await request(h.app)
        .get(START)
        .query({ jobId: 'f'.repeat(32) })
        .expect(400);
    });

    it('when the owner stops a job, then [job] with stopreq 1', async () => {
      const jobId = await h.startJob();
      h.jobs.set(jobId, { status: 40 });
      const res = await request(h.app)
        .put(START)
        .send(await signedStop(h.consumer, jobId))
        .expect(200);
      expect(res.body).toEqual([expect.objectContaining({ jobId, stopreq: 1 })]);
    });

    it("when someone tries to stop or delete another owner's job, then 404 without details and nothing happens", async () => {
      const theirs = await h.startJob(h.other);
      const stop = await request(h.app)
        .put(START)
        .send(await signedStop(h.consumer, theirs))
        .expect(404);
      expect(stop.body).toEqual({ error: 'Job not found' });
      const del = await request(h.app)
        .delete(START)
        .send(await signedStop(h.consumer, theirs))
        .expect(404);
      expect(del.body).toEqual({ error: 'Job not found' });
      expect(h.jobs.stopped).toEqual([]);
      expect(h.jobs.jobs.get(theirs)?.removed).toBe(0);
    });

    it('when ocean.js 3.4.6 stops a job (address + jobId signed without the nonce, as the Python Provider accepts), then it stops, and the nonce it sends is still used up', async () => {
      const jobId = await h.startJob();
      h.jobs.set(jobId, { status: 40 });
      const nonce = await h.nextNonce(h.consumer);
      const body = {
        consumerAddress: h.consumer.address,
        jobId,
        agreementId: '',
        nonce,
        signature: await h.consumer.signMessage(getBytes(keccak256(toUtf8Bytes(h.consumer.address + jobId)))),
      };
      const res = await request(h.app).put(START).send(body).expect(200);
      expect(res.body).toEqual([expect.objectContaining({ jobId, stopreq: 1 })]);
      await request(h.app).put(START).send(body).expect(401); // the same nonce again
      // the unbound form names this job only: it stops no other
      const other = await h.startJob();
      const next = await h.nextNonce(h.consumer);
      await request(h.app)
        .put(START)
        .send({ ...body, jobId: other, nonce: next })
        .expect(401);
      expect(h.jobs.stopped).toEqual([jobId]);
    });

    it('when the owner stops with a bad signature, then 401', async () => {
      const jobId = await h.startJob();
      const body = await signedStop(h.consumer, jobId);
      await request(h.app)
        .put(START)
        .send({ ...body, signature: await signRequest(h.other, [h.consumer.address, jobId, ''], body.nonce) })
        .expect(401);
      expect(h.jobs.stopped).toEqual([]);
    });

    it('when the owner deletes with a nonce, then 200 and the job reads removed', async () => {
      const jobId = await h.startJob();
      const res = await request(h.app)
        .delete(START)
        .send(await signedStop(h.consumer, jobId))
        .expect(200);
      expect(res.body).toEqual([expect.objectContaining({ jobId, removed: 1 })]);
      expect((await h.results.get(jobId))?.removed).toBe(true);
    });

    it('when client 3.3.0 deletes without a nonce, signing with stored + 1, then it is accepted, the nonce is consumed and a replay is refused', async () => {
      const jobId = await h.startJob();
      const stored = await h.nonces.get(h.consumer.address);
      const next = String(Number(stored) + 1);
      const { nonce: _unused, ...body } = await signedStop(h.consumer, jobId, next);
      await request(h.app).delete(START).query(body).expect(200);
      expect(await h.nonces.get(h.consumer.address)).toBe(next);
      // the same signed call again: it now signs the stored nonce, not the next one
      await request(h.app).delete(START).query(body).expect(401);
      const stale = { ...body, signature: await signRequest(h.consumer, [h.consumer.address, jobId, ''], stored!) };
      await request(h.app).delete(START).query(stale).expect(401);
    });
  });
});

describe('API: a job that needs network on an environment without it', () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness({
      environments: [
        { id: 'free', maxJobs: 3 },
        { id: 'offline', maxJobs: 3, algorithmNetwork: false },
      ],
    });
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    h.cleanup();
  });

  const datasetAllowingNetwork = (allowNetworkAccess: boolean) =>
    publishCatalogAsset(h.catalogDir, h.provider, {
      type: 'dataset',
      urls: [DATASET_URL],
      allow: [h.consumer.address],
      allowNetworkAccess,
      trustedAlgorithms: [h.pinned(h.algorithmDid)],
    });

  it('when every dataset allows network and the environment declares algorithmNetwork false, then 400 network_unavailable saying what to change, and nothing starts', async () => {
    const dataset = await datasetAllowingNetwork(true);
    const res = await request(h.app)
      .post(START)
      .send(await h.startBody(h.consumer, { dataset, environment: 'offline' }))
      .expect(400);
    expect(res.body.error).toMatch(/offline gives algorithms no network access.*choose an environment that offers network/);
    expect(h.jobs.started).toHaveLength(0);
  });

  it('when one dataset does not allow network, then the job starts on that environment (its algorithm gets none anyway)', async () => {
    const withNetwork = await datasetAllowingNetwork(true);
    const without = await datasetAllowingNetwork(false);
    const body = await h.startBody(h.consumer, { dataset: withNetwork, environment: 'offline' });
    await request(h.app)
      .post(START)
      .send({ ...body, additionalDatasets: [{ documentId: without, serviceId: 'compute' }] })
      .expect(200);
    expect(h.jobs.started).toHaveLength(1);
  });

  it('when the environment offers network (the default), then a job whose datasets all allow it starts', async () => {
    const dataset = await datasetAllowingNetwork(true);
    await request(h.app)
      .post(START)
      .send(await h.startBody(h.consumer, { dataset, environment: 'free' }))
      .expect(200);
    expect(h.jobs.started).toHaveLength(1);
  });
});
