import crypto from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import express from 'express';
import pino from 'pino';
import request from 'supertest';
import { codecRoutes, type CodecEndpointSettings } from '../../src/api/routes/codec';
import { redactedLogPaths } from '../../src/domain/logger';
import { AesGcmPayloadCodec } from '../../src/temporal/codec';
import { apiHarness } from '../api/harness';
import { recordingLogger } from '../helpers/api';

const TOKEN = crypto.randomBytes(24).toString('hex');
const UI = 'http://127.0.0.1:8233';
const codec = new AesGcmPayloadCodec([{ id: 'k1', key: new Uint8Array(crypto.randomBytes(32)) }]);
const b64 = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('base64');

/** An encrypted payload in the proto JSON form the Web UI sends. */
async function encryptedJson(value: unknown): Promise<{ metadata: Record<string, string>; data: string }> {
  const [p] = await codec.encode([defaultPayloadConverter.toPayload(value)]);
  return { metadata: Object.fromEntries(Object.entries(p?.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(p?.data) };
}

function appWith(settings: CodecEndpointSettings | undefined) {
  const logger = recordingLogger();
  const app = express().use(codecRoutes(settings, logger));
  return { app, logger };
}

const enabled: CodecEndpointSettings = { namespace: 'default', uiOrigins: [UI], codec, token: TOKEN };

describe('codec endpoint (Temporal remote codec protocol)', () => {
  it('when the UI posts encrypted payloads with the token, then it gets them decoded in the same JSON shape', async () => {
    const { app } = appWith(enabled);
    const payload = await encryptedJson({ owner: '0xowner', did: 'did:op:1' });
    const res = await request(app)
      .post('/codec/decode')
      .set({ Authorization: `Bearer ${TOKEN}`, 'X-Namespace': 'default', Origin: UI })
      .send({ payloads: [payload] })
      .expect(200);
    expect(res.headers['access-control-allow-origin']).toBe(UI);
    const [decoded] = res.body.payloads;
    expect(Buffer.from(decoded.metadata.encoding, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(decoded.data, 'base64').toString())).toEqual({ owner: '0xowner', did: 'did:op:1' });
  });

  it('when a payload is encoded through the endpoint, then decoding it gives the original back', async () => {
    const { app } = appWith(enabled);
    const plain = defaultPayloadConverter.toPayload('from the UI');
    const json = { metadata: { encoding: b64(plain.metadata?.encoding) }, data: b64(plain.data) };
    const encoded = await request(app)
      .post('/codec/encode')
      .set('Authorization', `Bearer ${TOKEN}`)
      .send({ payloads: [json] })
      .expect(200);
    expect(Buffer.from(encoded.body.payloads[0].metadata['encryption-key-id'], 'base64').toString()).toBe('k1');
    const decoded = await request(app).post('/codec/decode').set('Authorization', `Bearer ${TOKEN}`).send(encoded.body).expect(200);
    expect(decoded.body.payloads[0]).toEqual(json);
  });

  it('when the token rides in the path (a UI that cannot send headers), then it decodes and no log line carries the token', async () => {
    const { app, logger } = appWith(enabled);
    await request(app)
      .post(`/codec/${TOKEN}/decode`)
      .set('Origin', UI)
      .send({ payloads: [await encryptedJson('x')] })
      .expect(200);
    await request(app).post(`/codec/wrong-${TOKEN}/decode`).send({ payloads: [] }).expect(401);
    expect(logger.entries.length).toBeGreaterThan(0);
    expect(JSON.stringify(logger.entries)).not.toContain(TOKEN);
  });

  it.each([
    ['no token', {}],
    ['a wrong token', { Authorization: 'Bearer not-the-token-at-all' }],
    ['the token without the Bearer scheme', { Authorization: TOKEN }],
  ])('when a caller sends %s, then it gets 401 and nothing decoded', async (_what, headers: Record<string, string>) => {
    const { app } = appWith(enabled);
    const res = await request(app)
      .post('/codec/decode')
      .set(headers)
      .send({ payloads: [await encryptedJson('secret-value')] })
      .expect(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.body.error).toMatch(/C2D_CODEC_TOKEN/);
    expect(JSON.stringify(res.body)).not.toContain('secret-value');
  });

  it('when a page of another origin sends a preflight, then it is refused without CORS headers; the UI origin gets them', async () => {
    const { app } = appWith(enabled);
    const evil = await request(app)
      .options('/codec/decode')
      .set({ Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace' })
      .expect(403);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(evil.body.error).toMatch(/C2D_CODEC_UI_ORIGINS/);
    const ui = await request(app)
      .options('/codec/decode')
      .set({ Origin: UI, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace' })
      .expect(204);
    expect(ui.headers['access-control-allow-origin']).toBe(UI);
    expect(ui.headers['access-control-allow-headers']).toMatch(/X-Namespace/);
    expect(ui.headers['access-control-allow-methods']).toMatch(/POST/);
  });

  it('when another origin posts even with the right token, then it is refused', async () => {
    const { app } = appWith(enabled);
    const res = await request(app)
      .post('/codec/decode')
      .set({ Origin: 'http://evil.example', Authorization: `Bearer ${TOKEN}` })
      .send({ payloads: [await encryptedJson('x')] })
      .expect(403);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('when no token is configured, then the endpoint refuses everyone with 403 saying how to enable it', async () => {
    for (const settings of [undefined, { ...enabled, token: undefined }, { ...enabled, codec: undefined }]) {
      const { app } = appWith(settings);
      const res = await request(app).post('/codec/decode').set('Authorization', `Bearer ${TOKEN}`).send({ payloads: [] }).expect(403);
      expect(res.body.error).toBe('the codec endpoint is disabled: set C2D_PAYLOAD_KEYS and C2D_CODEC_TOKEN on the API');
    }
  });

  it('when the request names another namespace, then it is refused', async () => {
    const { app } = appWith(enabled);
    const res = await request(app)
      .post('/codec/decode')
      .set({ Authorization: `Bearer ${TOKEN}`, 'X-Namespace': 'other' })
      .send({ payloads: [] })
      .expect(403);
    expect(res.body.error).toBe('this codec serves namespace default, not other');
  });

  it('when a payload names an unknown key id, then the answer is 422 with the codec message', async () => {
    const { app } = appWith({ ...enabled, codec: new AesGcmPayloadCodec([{ id: 'k2', key: new Uint8Array(crypto.randomBytes(32)) }]) });
    const res = await request(app)
      .post('/codec/decode')
      .set('Authorization', `Bearer ${TOKEN}`)
      .send({ payloads: [await encryptedJson('x')] })
      .expect(422);
    expect(res.body.error).toMatch(/key id "k1", which is not in C2D_PAYLOAD_KEYS/);
  });

  it('when the body is not the protocol shape or not JSON, then the answer is 400 saying what is expected', async () => {
    const { app } = appWith(enabled);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    expect(
      (
        await request(app)
          .post('/codec/decode')
          .set(auth)
          .send({ payloads: [{ data: '***' }] })
          .expect(400)
      ).body.error,
    ).toMatch(/payloads/);
    expect((await request(app).post('/codec/decode').set(auth).send({ nope: 1 }).expect(400)).body.error).toMatch(/payloads/);
    expect(
      (
        await request(app)
          .post('/codec/decode')
          .set({ ...auth, 'Content-Type': 'application/json' })
          .send('{broken')
          .expect(400)
      ).body.error,
    ).toBe('the body must be JSON');
  });

  it('when called with GET, then 405', async () => {
    const { app } = appWith(enabled);
    await request(app).get('/codec/decode').expect(405);
  });
});

describe('the codec token and the whole API', () => {
  it('when a path under /codec carries a token but names no operation, then the codec answers 404 and no log line carries the token', async () => {
    const h = await apiHarness();
    try {
      for (const p of [`/codec/${TOKEN}`, `/codec/${TOKEN}/decod`, `/codec/${TOKEN}/decode/more`]) {
        const res = await request(h.app).post(p).send({ payloads: [] }).expect(404);
        expect(res.body.error).toMatch(/POST \/codec\/decode/);
      }
      await request(h.app).get('/api/services/computeEnvironments').expect(200); // the request log still logs other routes
      expect(h.logger.entries.length).toBeGreaterThan(0);
      expect(JSON.stringify(h.logger.entries)).not.toContain(TOKEN);
    } finally {
      h.cleanup();
    }
  });

  it('when a module logs a token, a signature or an authorization header by mistake, then the production logger redacts it', () => {
    const lines: string[] = [];
    const logger = pino({ redact: { paths: [...redactedLogPaths], censor: '[redacted]' } }, { write: (l: string) => lines.push(l) });
    logger.info({ token: TOKEN, request: { authorization: `Bearer ${TOKEN}`, signature: TOKEN }, codecToken: TOKEN }, 'oops');
    expect(lines.join('')).not.toContain(TOKEN);
    expect(lines.join('')).toContain('[redacted]');
  });
});
