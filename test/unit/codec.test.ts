import crypto from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { loadConfig } from '../../src/config';
import { AesGcmPayloadCodec, dataConverterFor, KEY_ID_METADATA, PayloadDecryptionError } from '../../src/temporal/codec';

const newKey = (id: string) => ({ id, key: new Uint8Array(crypto.randomBytes(32)) });
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');
const job = { owner: '0xabc0000000000000000000000000000000000def', datasets: [{ did: 'did:op:secret-dataset' }] };

describe('AesGcmPayloadCodec', () => {
  const k1 = newKey('k1');
  const k2 = newKey('k2');

  it('when a payload is encoded and decoded, then it comes back identical and the stored form holds no plaintext', async () => {
    const codec = new AesGcmPayloadCodec([k1]);
    const original = defaultPayloadConverter.toPayload(job);
    const [encoded] = await codec.encode([original]);
    expect(text(encoded?.metadata?.encoding)).toBe('binary/encrypted');
    expect(text(encoded?.metadata?.[KEY_ID_METADATA])).toBe('k1');
    expect(text(encoded?.data)).not.toContain('did:op:secret-dataset');
    expect(text(encoded?.data)).not.toContain('json/plain');
    const [decoded] = await codec.decode([encoded as Payload]);
    expect(defaultPayloadConverter.fromPayload(decoded as Payload)).toEqual(job);
    expect(text(decoded?.metadata?.encoding)).toBe('json/plain');
  });

  it('when the same value is encoded twice, then the ciphertexts differ (fresh IV each time)', async () => {
    const codec = new AesGcmPayloadCodec([k1]);
    const p = defaultPayloadConverter.toPayload(job);
    const [a, b] = await codec.encode([p, p]);
    expect(Buffer.from(a?.data ?? []).equals(Buffer.from(b?.data ?? []))).toBe(false);
  });

  it('when the key is rotated (new key first, old kept), then new payloads carry the new id and old ones still decode', async () => {
    const [old] = await new AesGcmPayloadCodec([k1]).encode([defaultPayloadConverter.toPayload('written before rotation')]);
    const rotated = new AesGcmPayloadCodec([k2, k1]);
    expect(rotated.currentKeyId).toBe('k2');
    const [fresh] = await rotated.encode([defaultPayloadConverter.toPayload('written after')]);
    expect(text(fresh?.metadata?.[KEY_ID_METADATA])).toBe('k2');
    const [a, b] = await rotated.decode([old as Payload, fresh as Payload]);
    expect(defaultPayloadConverter.fromPayload(a as Payload)).toBe('written before rotation');
    expect(defaultPayloadConverter.fromPayload(b as Payload)).toBe('written after');
  });

  it('when a ciphertext byte is flipped, then decoding fails with PayloadDecryptionError naming the key id', async () => {
    const codec = new AesGcmPayloadCodec([k1]);
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload(job)]);
    const data = Buffer.from(encoded?.data ?? []);
    data[20] = (data[20] ?? 0) ^ 1;
    const tampered = { ...encoded, data };
    await expect(codec.decode([tampered])).rejects.toThrow(PayloadDecryptionError);
    await expect(codec.decode([tampered])).rejects.toThrow(/key id "k1".*failed authentication/);
  });

  it('when the key id in the metadata is swapped for another key of the ring, then decoding fails (the id is authenticated)', async () => {
    const codec = new AesGcmPayloadCodec([k1, k2]);
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload(job)]);
    const moved = { ...encoded, metadata: { ...encoded?.metadata, [KEY_ID_METADATA]: Buffer.from('k2') } };
    await expect(codec.decode([moved])).rejects.toThrow(/key id "k2".*failed authentication/);
  });

  it('when the ring holds a different key under the same id, then decoding fails with a message saying so', async () => {
    const [encoded] = await new AesGcmPayloadCodec([k1]).encode([defaultPayloadConverter.toPayload(job)]);
    await expect(new AesGcmPayloadCodec([newKey('k1')]).decode([encoded as Payload])).rejects.toThrow(/different key under that id/);
  });

  it('when a payload names a key id that is not in the ring, then decoding fails with a clear error listing the known ids', async () => {
    const [encoded] = await new AesGcmPayloadCodec([k1]).encode([defaultPayloadConverter.toPayload(job)]);
    const err = await new AesGcmPayloadCodec([k2]).decode([encoded as Payload]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadDecryptionError);
    expect((err as Error).message).toBe(
      'payload was encrypted with key id "k1", which is not in C2D_PAYLOAD_KEYS (ids: k2); add that key back after the current one to read it',
    );
  });

  it('when a payload was never encrypted (history from before encryption), then decode passes it through', async () => {
    const plain = defaultPayloadConverter.toPayload(job);
    const [decoded] = await new AesGcmPayloadCodec([k1]).decode([plain]);
    expect(decoded).toBe(plain);
  });

  it('when no keys are configured, then the data converter has no codec; with keys it has ours', () => {
    expect(dataConverterFor([]).payloadCodecs).toBeUndefined();
    expect(dataConverterFor([k1]).payloadCodecs?.[0]).toBeInstanceOf(AesGcmPayloadCodec);
  });
});

describe('C2D_PAYLOAD_KEYS', () => {
  const base = { C2D_DATA_DIR: '/tmp/c2d-codec-unit', C2D_PROVIDER_PRIVATE_KEY: `0x${'1'.repeat(64)}` };
  const b64 = (n: number): string => crypto.randomBytes(n).toString('base64');

  it('when two keys are given, then the ring keeps their order (the first encrypts)', () => {
    const config = loadConfig({ ...base, C2D_PAYLOAD_KEYS: ` new:${b64(32)} , old:${b64(32)}` });
    expect(config.codec.keys.map((k) => k.id)).toEqual(['new', 'old']);
    expect(config.codec.keys[0]?.key).toHaveLength(32);
  });

  it('when unset, then the ring is empty', () => {
    expect(loadConfig(base).codec.keys).toEqual([]);
  });

  it.each([
    ['a key of 16 bytes', `k:${b64(16)}`, /key k must be 32 bytes in base64/],
    ['no id', b64(32), /id:base64key/],
    ['a duplicate id', `k:${b64(32)},k:${b64(32)}`, /key id k appears twice/],
    ['a key that is not base64', `k:${'!'.repeat(44)}`, /key k must be 32 bytes/],
  ])('when given %s, then loading fails naming C2D_PAYLOAD_KEYS', (_what, value, message) => {
    expect(() => loadConfig({ ...base, C2D_PAYLOAD_KEYS: value })).toThrow(/C2D_PAYLOAD_KEYS/);
    expect(() => loadConfig({ ...base, C2D_PAYLOAD_KEYS: value })).toThrow(message);
  });

  it('when the codec token is short, then loading fails naming C2D_CODEC_TOKEN', () => {
    expect(() => loadConfig({ ...base, C2D_CODEC_TOKEN: 'short' })).toThrow(/C2D_CODEC_TOKEN/);
  });

  it('when no UI origins are set, then the dev Web UI on the configured UI port is allowed', () => {
    expect(loadConfig({ ...base, C2D_TEMPORAL_UI_PORT: '9233' }).codec.uiOrigins).toEqual(['http://127.0.0.1:9233', 'http://localhost:9233']);
  });
});
