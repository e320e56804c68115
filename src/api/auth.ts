import { getBytes, keccak256, toUtf8Bytes, verifyMessage } from 'ethers';
import { AuthError } from '../domain/errors';
import type { NonceStore } from '../storage/nonces';

/**
 * Ocean's request signature: keccak256 of the UTF-8 message (the parts, then the nonce as sent), signed
 * as 32 bytes with EIP-191. Returns the signer, or null when the signature cannot be parsed.
 */
export function recoverSigner(message: string, signature: string): string | null {
  try {
    return verifyMessage(getBytes(keccak256(toUtf8Bytes(message))), signature.startsWith('0x') ? signature : `0x${signature}`);
  } catch {
    return null;
  }
}

function requireSignedBy(address: string, parts: string[], nonce: string, signature: string): void {
  const signer = recoverSigner(parts.join('') + nonce, signature);
  if (!signer || signer.toLowerCase() !== address.toLowerCase()) throw new AuthError('invalid_signature', 'Invalid signature');
}

/** The nonce a client would sign next: one more than the stored one (a fresh address starts at 0). */
export function nextNonce(stored: string | null): string {
  if (stored === null) return '1';
  if (/^\d+$/.test(stored)) return (BigInt(stored) + 1n).toString();
  return String(Number(stored) + 1);
}

/** Checks who signed, then takes the nonce; a nonce is consumed only by a request whose signature verifies. */
export async function requireSignedRequest(nonces: NonceStore, req: { address: string; parts: string[]; nonce: string; signature: string }): Promise<void> {
  requireSignedBy(req.address, req.parts, req.nonce, req.signature);
  if (!(await nonces.advance(req.address, req.nonce))) {
    throw new AuthError('invalid_nonce', 'Invalid nonce: it must be greater than the last one used');
  }
}
