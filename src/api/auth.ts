import { getBytes, keccak256, toBeArray, toUtf8Bytes } from 'ethers';
import { recoverMessageSigner } from '../chain/recover';
import type { Request } from 'express';
import { AuthError } from '../domain/errors';
import type { AuthTokens } from './auth-tokens';
import type { NonceStore } from '../storage/nonces';

/**
 * Ocean's request signature: keccak256 of the UTF-8 message (the parts, then the nonce as sent), signed
 * as 32 bytes with EIP-191. Returns the signer, or null when the signature cannot be parsed.
 */
export function recoverSigner(message: string, signature: string): string | null {
  try {
    return recoverMessageSigner(getBytes(keccak256(toUtf8Bytes(message))), signature.startsWith('0x') ? signature : `0x${signature}`);
  } catch {
    return null;
  }
}

/**
 * Whether `address` signed `message` the way Ocean's clients do: keccak256 of its UTF-8 bytes, signed as
 * bytes with EIP-191. ocean.js ≥ 4 passes the hash through `toBeArray`, which drops its leading zero bytes
 * (1 hash in 256), 3.x keeps all 32: both forms are tried.
 */
function signedMessage(address: string, message: string, signature: string): boolean {
  const sig = signature.startsWith('0x') ? signature : `0x${signature}`;
  const hash = keccak256(toUtf8Bytes(message));
  for (const bytes of [getBytes(hash), toBeArray(hash)]) {
    try {
      if (recoverMessageSigner(bytes, sig).toLowerCase() === address.toLowerCase()) return true;
    } catch {
      return false;
    }
  }
  return false;
}

/** ocean-node's request signature (ocean.js ≥ 4): the message is address + nonce + command. Returns the signer, or null. */
export function recoverCommandSigner(address: string, nonce: string, command: string, signature: string): string | null {
  return signedMessage(address, address + nonce + command, signature) ? address : null;
}

/**
 * How a request is signed: the Python Provider's form (parts, then the nonce), ocean-node's (address,
 * nonce, command), or a message without the nonce (`unbound`: ocean.js 3.4.6's stop, which the Python
 * Provider accepts; the nonce sent is still consumed, but the signature does not bind it, so use it only
 * where a replay can do nothing new).
 */
export type SignedForm = { parts: string[] } | { command: string } | { unbound: string };

function signedBy(address: string, form: SignedForm, nonce: string, signature: string): boolean {
  const message = 'command' in form ? address + nonce + form.command : 'unbound' in form ? form.unbound : form.parts.join('') + nonce;
  return signedMessage(address, message, signature);
}

/** The nonce a client would sign next: one more than the stored one (a fresh address starts at 0). */
export function nextNonce(stored: string | null): string {
  if (stored === null) return '1';
  if (/^\d+$/.test(stored)) return (BigInt(stored) + 1n).toString();
  return String(Number(stored) + 1);
}

/**
 * Checks who signed, in the form given or (`alternatives`) any of those forms — a route both client
 * generations call — then takes the nonce; a nonce is consumed only by a request whose signature verifies.
 */
export async function requireSignedRequest(
  nonces: NonceStore,
  req: { address: string; nonce: string; signature: string } & (SignedForm | { alternatives: SignedForm[] }),
): Promise<void> {
  const forms = 'alternatives' in req ? req.alternatives : [req];
  if (!forms.some((f) => signedBy(req.address, f, req.nonce, req.signature))) throw new AuthError('invalid_signature', 'Invalid signature');
  if (!(await nonces.advance(req.address, req.nonce))) {
    throw new AuthError('invalid_nonce', 'Invalid nonce: it must be greater than the last one used');
  }
}

/** The auth token a request carries in place of a signature: `Authorization: <jwt>` as ocean.js sends it, or `Bearer <jwt>`; ocean.js's literal `undefined` is none. */
export function requestToken(req: Request): string | null {
  const value = req.headers.authorization?.trim().replace(/^Bearer\s+/i, '');
  return value && value !== 'undefined' && value !== 'null' ? value : null;
}

/**
 * A signed request (see requireSignedRequest), or one of ocean-node's API that carries an auth token of
 * the same address instead of a signature and nonce (AuthTokens): the caller is `address` either way.
 */
export async function requireSignedOrToken(
  nonces: NonceStore,
  tokens: AuthTokens,
  req: Request,
  r: { address: string; nonce?: string | undefined; signature?: string | undefined } & (SignedForm | { alternatives: SignedForm[] }),
): Promise<void> {
  const token = requestToken(req);
  if (token && r.signature === undefined) {
    const claims = await tokens.verify(token);
    if (!claims || claims.address.toLowerCase() !== r.address.toLowerCase())
      throw new AuthError('invalid_token', 'Invalid auth token: expired, invalidated, or not issued to this address');
    return;
  }
  if (r.signature === undefined || r.nonce === undefined)
    throw new AuthError('missing_signature', 'Sign the request (signature and nonce), or send an auth token in the Authorization header');
  await requireSignedRequest(nonces, { ...r, nonce: r.nonce, signature: r.signature });
}
