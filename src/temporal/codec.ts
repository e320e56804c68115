import crypto from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import protobuf from 'protobufjs';
import type { PayloadKey } from '../config';

/** `encoding` of a payload this codec encrypted; anything else passes through decode untouched (histories from before encryption). */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** metadata key naming the key that encrypted the payload: which key of the ring decrypts it */
export const KEY_ID_METADATA = 'encryption-key-id';
/** metadata key naming our cipher and layout, so another layout can be told apart later */
export const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Temporal's Payload message (temporal.api.common.v1.Payload, fields 1 and 2): what is encrypted is the whole original payload, metadata included. */
const PayloadMessage = new protobuf.Type('Payload').add(new protobuf.MapField('metadata', 1, 'string', 'bytes')).add(new protobuf.Field('data', 2, 'bytes'));
new protobuf.Root().define('c2d.codec').add(PayloadMessage);

/** Thrown when a payload cannot be decrypted: unknown key id, or tampered with / wrong key. The message says which key and what to do. */
export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';
}

const utf8 = (bytes: Uint8Array | null | undefined): string | undefined => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

/**
 * AES-256-GCM payload codec. Encrypts every payload with the first key of the ring and writes that
 * key's id into the payload's metadata; decrypts with whichever key of the ring the id names. Rotation:
 * put the new key first and keep the old ones after it until no history needs them.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;
  private readonly current: PayloadKey;

  constructor(keys: readonly PayloadKey[]) {
    const [first] = keys;
    if (!first) throw new Error('AesGcmPayloadCodec needs at least one key');
    for (const k of keys) if (k.key.length !== 32) throw new Error(`payload key ${k.id} must be 32 bytes`);
    this.current = first;
    this.keys = new Map(keys.map((k) => [k.id, Buffer.from(k.key)]));
  }

  /** id of the key new payloads are encrypted with */
  get currentKeyId(): string {
    return this.current.id;
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the interface is async; errors must arrive as rejections
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the interface is async; errors must arrive as rejections
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decrypt(p));
  }

  private encrypt(payload: Payload): Payload {
    const plain = PayloadMessage.encode({ metadata: payload.metadata ?? {}, data: payload.data ?? new Uint8Array() }).finish();
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', Buffer.from(this.current.key), iv);
    // the key id is authenticated too: moving a ciphertext under another id fails like any tampering
    cipher.setAAD(Buffer.from(this.current.id, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return {
      metadata: {
        encoding: Buffer.from(ENCRYPTED_ENCODING),
        [KEY_ID_METADATA]: Buffer.from(this.current.id),
        [CIPHER_METADATA]: Buffer.from(CIPHER),
      },
      data: Buffer.concat([iv, body, cipher.getAuthTag()]),
    };
  }

  private decrypt(payload: Payload): Payload {
    if (utf8(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const keyId = utf8(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadDecryptionError(`an encrypted payload carries no ${KEY_ID_METADATA}: it was not written by this codec`);
    const key = this.keys.get(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `payload was encrypted with key id "${keyId}", which is not in C2D_PAYLOAD_KEYS (ids: ${[...this.keys.keys()].join(', ')}); add that key back after the current one to read it`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`encrypted payload (key id "${keyId}") is truncated`);
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(keyId, 'utf8'));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      const decoded = PayloadMessage.decode(plain) as unknown as { metadata?: Record<string, Uint8Array>; data?: Uint8Array };
      return { metadata: decoded.metadata ?? {}, data: decoded.data ?? new Uint8Array() };
    } catch (err) {
      throw new PayloadDecryptionError(
        `encrypted payload (key id "${keyId}") failed authentication: it was altered, or C2D_PAYLOAD_KEYS holds a different key under that id`,
        { cause: err },
      );
    }
  }
}

/** The codec of a keyring, or undefined when the ring is empty (payloads stay in clear). */
export const payloadCodecFor = (keys: readonly PayloadKey[]): AesGcmPayloadCodec | undefined => (keys.length > 0 ? new AesGcmPayloadCodec(keys) : undefined);

/** The data converter client and worker share: our codec when keys are set, the SDK's defaults otherwise. */
export function dataConverterFor(keys: readonly PayloadKey[]): DataConverter {
  const codec = payloadCodecFor(keys);
  return codec ? { payloadCodecs: [codec] } : {};
}

/** What operators are told at startup when encryption is off. */
export const CLEAR_PAYLOADS_WARNING = 'C2D_PAYLOAD_KEYS is empty: job inputs and results are stored in Temporal history in clear';
