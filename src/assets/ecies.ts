import { createCipheriv, createDecipheriv, createECDH, hkdfSync, randomBytes } from 'node:crypto';
import { SigningKey } from 'ethers';
import { curve } from '../chain/secp256k1';

/**
 * ECIES over secp256k1 with the defaults of Python `eciespy` / npm `eciesjs`, which Ocean's Provider uses
 * for `/encrypt`: so ciphertext made by either decrypts here and the other way round.
 *
 * layout: ephemeral public key (65 bytes, uncompressed) ‖ nonce (16) ‖ GCM tag (16) ‖ AES-256-GCM ciphertext
 * key:    HKDF-SHA256(ephemeralPub ‖ sharedPoint, both uncompressed; no salt, empty info) → 32 bytes
 */
const PUBLIC_KEY_LENGTH = 65;
const NONCE_LENGTH = 16;
const TAG_LENGTH = 16;
const HEADER_LENGTH = PUBLIC_KEY_LENGTH + NONCE_LENGTH + TAG_LENGTH;

type KeyLike = string | Uint8Array;

const toBytes = (key: KeyLike): Buffer => (typeof key === 'string' ? Buffer.from(key.replace(/^0x/, ''), 'hex') : Buffer.from(key));

/** Accepts a 64-byte raw key (as Ethereum tools print it), 65-byte uncompressed or 33-byte compressed. */
function uncompressedPublicKey(key: KeyLike): Buffer {
  const raw = toBytes(key);
  const prefixed = raw.length === 64 ? Buffer.concat([Buffer.from([4]), raw]) : raw;
  return Buffer.from(SigningKey.computePublicKey(prefixed, false).slice(2), 'hex');
}

/** A private key as exactly 32 bytes: node's ECDH drops leading zero bytes (1 key in 256). */
function privateKey32(key: Buffer): Buffer {
  if (key.length > 32) throw new Error('secp256k1 private key longer than 32 bytes');
  return Buffer.concat([Buffer.alloc(32 - key.length), key]);
}

/**
 * The symmetric key both sides derive: HKDF-SHA256 over the sender's ephemeral public key and the
 * shared point d·Q, both uncompressed (eciespy's `encapsulate` / `decapsulate`). The point comes from
 * libsecp256k1 (../chain/secp256k1): node's ECDH gives only its x coordinate, and OpenSSL's generic curve
 * code took ≈1 ms of each decrypt, done at every job start and several times per job.
 */
export function deriveSharedKey(ephemeralPublic: Uint8Array, privateKey: Uint8Array, peerPublic: Uint8Array): Buffer {
  const sharedPoint = curve.publicKeyTweakMul(uncompressedPublicKey(peerPublic), privateKey32(Buffer.from(privateKey)), false);
  return Buffer.from(hkdfSync('sha256', Buffer.concat([uncompressedPublicKey(ephemeralPublic), sharedPoint]), Buffer.alloc(0), Buffer.alloc(0), 32));
}

/** Encrypts `data` for the holder of the private key matching `publicKey`. */
export function encrypt(publicKey: KeyLike, data: Uint8Array): Buffer {
  const receiver = uncompressedPublicKey(publicKey);
  const ephemeral = createECDH('secp256k1');
  ephemeral.generateKeys();
  const ephemeralPublic = ephemeral.getPublicKey();
  const key = deriveSharedKey(ephemeralPublic, ephemeral.getPrivateKey(), receiver);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([cipher.update(data), cipher.final()]);
  return Buffer.concat([ephemeralPublic, nonce, cipher.getAuthTag(), body]);
}

/** Decrypts ECIES ciphertext. Throws when it was not made for this key or was altered. */
export function decrypt(privateKey: KeyLike, data: Uint8Array): Buffer {
  const bytes = Buffer.from(data);
  if (bytes.length < HEADER_LENGTH) throw new Error('ECIES ciphertext is too short');
  const ephemeralPublic = uncompressedPublicKey(bytes.subarray(0, PUBLIC_KEY_LENGTH));
  const nonce = bytes.subarray(PUBLIC_KEY_LENGTH, PUBLIC_KEY_LENGTH + NONCE_LENGTH);
  const tag = bytes.subarray(PUBLIC_KEY_LENGTH + NONCE_LENGTH, HEADER_LENGTH);
  const body = bytes.subarray(HEADER_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', deriveSharedKey(ephemeralPublic, toBytes(privateKey), ephemeralPublic), nonce);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}
