import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { AquariusResolver } from '../../src/assets/aquarius';
import { UnavailableError } from '../../src/domain/errors';
import { freePort } from '../../tools/temporal-server';
import { recordingLogger } from '../helpers/api';
import { type ApiHarness, apiHarness, expectNoSecretLeaked } from './harness';

describe('GET /api/aquarius/assets/ddo/:did (Aquarius-compatible)', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await apiHarness();
  });
  afterAll(() => h.cleanup());

  it('when the DID is a catalog asset, then its DDO comes back with the files still encrypted', async () => {
    const res = await request(h.app).get(`/api/aquarius/assets/ddo/${h.datasetDid}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: h.datasetDid,
      metadata: { type: 'dataset' },
      services: [{ id: 'compute', type: 'compute', files: expect.stringMatching(/^0x[0-9a-f]+$/) }],
    });
    expectNoSecretLeaked(h);
  });

  it('when the DID is unknown or not a DID, then 404 with a message that says the provider knows no such asset', async () => {
    const unknown = `did:op:${'a'.repeat(64)}`;
    const res = await request(h.app).get(`/api/aquarius/assets/ddo/${unknown}`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: `Asset DID ${unknown} not found: this provider knows no such asset (neither in its catalog nor on chain 8996)` });
    expect((await request(h.app).get('/api/aquarius/assets/ddo/not-a-did')).status).toBe(404);
  });
});

/** A real HTTP server standing for an Aquarius; each test says how it answers. */
describe('AquariusResolver against an HTTP server', () => {
  let server: http.Server;
  let base: string;
  let answer: (did: string, res: http.ServerResponse) => void;
  const did = `did:op:${'b'.repeat(64)}`;
  const ddo = { id: did, metadata: { type: 'dataset', name: 'remote' }, services: [{ id: 'compute', type: 'compute', files: '0xabcd' }] };
  const logger = recordingLogger();
  const resolver = (timeoutMs = 2000) => new AquariusResolver({ url: `${base}/`, logger, timeoutMs });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const prefix = '/api/aquarius/assets/ddo/';
      if (!req.url?.startsWith(prefix)) return void res.writeHead(400).end();
      answer(decodeURIComponent(req.url.slice(prefix.length)), res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  it('when Aquarius has the DDO, then it resolves (the base URL may end in a slash)', async () => {
    answer = (d, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...ddo, id: d, event: { tx: '0x1' } }));
    await expect(resolver().resolve(did)).resolves.toMatchObject({ id: did, services: [{ files: '0xabcd' }], event: { tx: '0x1' } });
  });

  it('when Aquarius answers 404, then the asset is unknown (null)', async () => {
    answer = (_d, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    await expect(resolver().resolve(did)).resolves.toBeNull();
  });

  it('when Aquarius answers 5xx, 429, or hangs past the timeout, or nobody listens, then UnavailableError (the job retries)', async () => {
    for (const status of [500, 502, 503, 429]) {
      answer = (_d, res) => res.writeHead(status).end('busy');
      await expect(resolver().resolve(did)).rejects.toThrow(UnavailableError);
    }
    answer = () => undefined; // never answers
    const started = Date.now();
    await expect(resolver(200).resolve(did)).rejects.toMatchObject({ code: 'aquarius_unavailable' });
    expect(Date.now() - started).toBeLessThan(2000);
    const closed = new AquariusResolver({ url: `http://127.0.0.1:${await freePort()}`, logger });
    await expect(closed.resolve(did)).rejects.toThrow(UnavailableError);
  });

  it('when Aquarius answers something that is not a valid DDO for that DID, then the asset is unknown', async () => {
    answer = (_d, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...ddo, id: `did:op:${'c'.repeat(64)}` }));
    await expect(resolver().resolve(did)).resolves.toBeNull();
    answer = (_d, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: did, services: [] }));
    await expect(resolver().resolve(did)).resolves.toBeNull();
    expect(await resolver().resolve('not-a-did')).toBeNull();
  });
});
