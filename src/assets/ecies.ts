import { createCipheriv, createDecipheriv, createECDH, type ECDH, hkdfSync, randomBytes } from 'node:crypto';
import { SigningKey } from 'ethers';

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
 * shared point, both uncompressed (eciespy's `encapsulate` / `decapsulate`).
 */
export function deriveSharedKey(ephemeralPublic: Uint8Array, privateKey: Uint8Array, peerPublic: Uint8Array): Buffer {
  // node's ECDH.computeSecret yields only the x coordinate, but the KDF needs the whole point.
  const sharedPoint = Buffer.from(new SigningKey(privateKey32(Buffer.from(privateKey))).computeSharedSecret(uncompressedPublicKey(peerPublic)).slice(2), 'hex');
  return Buffer.from(hkdfSync('sha256', Buffer.concat([uncompressedPublicKey(ephemeralPublic), sharedPoint]), Buffer.alloc(0), Buffer.alloc(0), 32));
}

/** secp256k1's field prime: y² = x³ + 7 over it; p ≡ 3 (mod 4), so a square root is a power. */
const P = 2n ** 256n - 2n ** 32n - 977n;

const modPow = (base: bigint, exponent: bigint): bigint => {
  let result = 1n;
  for (let b = base % P, e = exponent; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) result = (result * b) % P;
  return result;
};

const bytes32 = (n: bigint): Buffer => Buffer.from(n.toString(16).padStart(64, '0'), 'hex');

/** Node's ECDH for a private key, kept (setting the key costs a point multiplication): the provider's one key in practice. */
const ecdhs = new Map<string, ECDH>();
function ecdhOf(privateKey: Buffer): ECDH {
  const key = privateKey32(privateKey);
  const id = key.toString('hex');
  let ecdh = ecdhs.get(id);
  if (!ecdh) {
    ecdh = createECDH('secp256k1');
    ecdh.setPrivateKey(key);
    if (ecdhs.size >= 8) ecdhs.clear(); // a few keys at most (tests); never grows without bound
    ecdhs.set(id, ecdh);
  }
  return ecdh;
}

/**
 * The two points that can be the shared point d·Q: node's native ECDH gives its x coordinate (OpenSSL,
 * some hundred times faster than ethers' JavaScript point multiplication), and x fixes y up to its sign.
 * Which one it is, the ciphertext's GCM tag tells (decrypt).
 */
function sharedPointCandidates(privateKey: Buffer, peerPublic: Buffer): Buffer[] {
  const x = ecdhOf(privateKey).computeSecret(peerPublic);
  const xn = BigInt(`0x${x.toString('hex')}`);
  const y = modPow((xn * xn * xn + 7n) % P, (P + 1n) / 4n);
  return [y, P - y].map((yn) => Buffer.concat([Buffer.from([4]), x, bytes32(yn)]));
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
  // the shared point is one of two; the key derived from the other fails the tag (as would a wrong key)
  let failure: unknown;
  for (const point of sharedPointCandidates(toBytes(privateKey), ephemeralPublic)) {
    const key = hkdfSync('sha256', Buffer.concat([ephemeralPublic, point]), Buffer.alloc(0), Buffer.alloc(0), 32);
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(key), nonce);
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch (err) {
      failure = err;
    }
  }
  throw failure;
}
