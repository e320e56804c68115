import request from 'supertest';
import { decrypt } from '../../src/assets/ecies';
import { type ApiHarness, apiHarness, CHAIN_ID, expectNoSecretLeaked } from './harness';

describe('API: root, nonce, environments, encrypt', () => {
  let h: ApiHarness;
  beforeEach(async () => {
    h = await apiHarness();
  });
  afterEach(() => {
    expectNoSecretLeaked(h);
    h.cleanup();
  });

  it('when a client asks for the root document, then it names the provider and every endpoint by its Ocean name', async () => {
    const res = await request(h.app).get('/').expect(200);
    expect(res.body).toMatchObject({
      software: 'Provider',
      version: '9.9.9-test',
      chainIds: [CHAIN_ID],
      providerAddresses: { [CHAIN_ID]: h.provider.address },
    });
    expect(res.body.serviceEndpoints).toMatchObject({
      nonce: ['GET', '/api/services/nonce'],
      encrypt: ['POST', '/api/services/encrypt'],
      computeEnvironments: ['GET', '/api/services/computeEnvironments'],
      computeStart: ['POST', '/api/services/compute'],
      computeStatus: ['GET', '/api/services/compute'],
      computeStop: ['PUT', '/api/services/compute'],
      computeDelete: ['DELETE', '/api/services/compute'],
      computeResult: ['GET', '/api/services/computeResult'],
      computeLogs: ['GET', '/api/services/computeLogs'],
    });
    expect(JSON.stringify(res.body)).not.toContain(h.provider.privateKey.slice(2));
    expect(res.headers['access-control-allow-origin']).toBe('*');
  });

  it('when the path starts with a double slash (client 3.3.0), then it routes like a single one', async () => {
    const res = await request(h.app).get(`//api/services/nonce?userAddress=${h.consumer.address}`).expect(200);
    expect(res.body).toEqual({ nonce: 0 });
  });

  it('when a consumer makes a signed call, then the nonce endpoint reports the nonce it used', async () => {
    expect((await request(h.app).get('/api/services/nonce').query({ userAddress: h.consumer.address })).body).toEqual({ nonce: 0 });
    await h.startJob();
    expect((await request(h.app).get('/api/services/nonce').query({ userAddress: h.consumer.address.toLowerCase() })).body).toEqual({ nonce: 1 });
  });

  it('when the nonce is asked without an address, then it is a validation error', async () => {
    const res = await request(h.app).get('/api/services/nonce').expect(400);
    expect(res.body).toEqual({ message: 'Validation error', errors: { userAddress: [expect.any(String)] }, success: false });
  });

  it('when environments are listed, then they come keyed by chain id in the wire shape, with running jobs counted', async () => {
    const jobId = await h.startJob();
    h.jobs.set(jobId, { status: 40 });
    const res = await request(h.app).get('/api/services/computeEnvironments').expect(200);
    expect(Object.keys(res.body)).toEqual([String(CHAIN_ID)]);
    const [env] = res.body[CHAIN_ID];
    expect(env).toMatchObject({
      id: 'free',
      desc: 'free env',
      currentJobs: 1,
      maxJobs: 3,
      consumerAddress: h.provider.address,
      priceMin: 0,
      feeToken: '',
      cpuNumber: 1,
      ramGB: 1,
      diskGB: 1,
      gpuNumber: 0,
      storageExpiry: 604800,
      maxJobDuration: 3600,
    });
    expect(typeof env.lastSeen).toBe('number');
    expect(env).not.toHaveProperty('process');
  });

  it('when bytes are posted to encrypt, then 201 text/plain 0x hex comes back that only the provider key decrypts', async () => {
    const plain = JSON.stringify({ did: 'did:op:1234', serviceId: 'compute', files: [{ type: 'url', url: 'https://example.org/public.csv', method: 'GET' }] });
    const res = await request(h.app).post('/api/services/encrypt?chainId=8996').set('Content-Type', 'application/octet-stream').send(plain).expect(201);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/^0x[0-9a-f]+$/);
    expect(decrypt(h.provider.privateKey, Buffer.from(res.text.slice(2), 'hex')).toString('utf8')).toBe(plain);
  });

  it('when a file list naming no asset is posted to encrypt, then 400 says how to bind it and nothing is encrypted', async () => {
    for (const unbound of [
      { files: [{ type: 'url', url: 'https://example.org/x.csv', method: 'GET' }] },
      { nftAddress: '0x0000000000000000000000000000000000000001', files: [{ type: 'url', url: 'https://example.org/x.csv', method: 'GET' }] },
      { did: 'did:op:1234', files: [{ type: 'url', url: 'https://example.org/x.csv', method: 'GET' }] },
    ]) {
      const res = await request(h.app).post('/api/services/encrypt?chainId=8996').set('Content-Type', 'application/octet-stream').send(JSON.stringify(unbound));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({
        errors: { files: ['a file list must name its asset: nftAddress and datatokenAddress (on chain), or did and serviceId (catalog)'] },
      });
    }
    // a DDO (setMetaData's payload) is not a file list: encrypted as it is
    const ddo = JSON.stringify({ id: 'did:op:1', services: [{ files: '0x00' }] });
    await request(h.app).post('/api/services/encrypt?chainId=8996').set('Content-Type', 'application/octet-stream').send(ddo).expect(201);
  });

  it('when encrypt is asked for another chain or with nothing, then it is a validation error', async () => {
    await request(h.app).post('/api/services/encrypt?chainId=1').set('Content-Type', 'application/octet-stream').send('x').expect(400);
    const res = await request(h.app).post('/api/services/encrypt').set('Content-Type', 'application/octet-stream').expect(400);
    expect(res.body.errors).toHaveProperty('body');
  });

  it('when HEAD hits a signed route, then 405; when a browser preflights, then CORS answers', async () => {
    await request(h.app).head('/api/services/computeResult').expect(405);
    await request(h.app).head('/api/services/compute').expect(405);
    const pre = await request(h.app)
      .options('/api/services/compute')
      .set('Origin', 'https://market.example')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type')
      .expect(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
    expect(pre.headers['access-control-allow-methods']).toContain('POST');
    expect(pre.headers['access-control-allow-headers']).toBe('content-type');
  });

  it('when a route does not exist, then 404 in the handled-error shape', async () => {
    const res = await request(h.app).get('/api/services/nope').expect(404);
    expect(res.body).toEqual({ error: 'Not found' });
  });

  it('when requests are logged, then each has a constant message with route and status, and no query', async () => {
    await request(h.app).get('/api/services/nonce').query({ userAddress: h.consumer.address }).expect(200);
    const entry = h.logger.entries.find((e) => e.msg === 'request handled');
    expect(entry?.fields).toMatchObject({ route: '/api/services/nonce', method: 'GET', status: 200 });
    expect(JSON.stringify(h.logger.entries)).not.toContain(h.consumer.address);
  });
});
