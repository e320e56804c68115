import { createRequire } from 'node:module';
import { dataSlice, getAddress, getBytes, hashMessage, keccak256, Signature, verifyMessage } from 'ethers';

/** The one call of the secp256k1 package's addon (libsecp256k1) this module makes. */
interface Libsecp256k1 {
  ecdsaRecover(signature: Uint8Array, recoveryId: number, digest: Uint8Array, compressed: boolean): Uint8Array;
}

/**
 * libsecp256k1 through the `secp256k1` package's prebuilt addon, or null where it has no build for this
 * platform (its own fallback, elliptic, is not used: ethers' JavaScript then, as before).
 */
const native: Libsecp256k1 | null = (() => {
  try {
    // the addon alone: the package's index would fall back to elliptic
    return createRequire(__filename)('secp256k1/bindings') as Libsecp256k1;
  } catch {
    return null;
  }
})();

/** Which implementation recovers signers here (for the bench and the operator's logs). */
export const recoveryImplementation = native ? 'libsecp256k1' : 'ethers';

/**
 * The address that signed `message` under EIP-191 — ethers' `verifyMessage`, same parsing and checks
 * (ethers' `Signature.from`: length, v, the high bit of s), throwing where it throws, with the point arithmetic
 * of the recovery done by libsecp256k1: ≈0.1 ms instead of ≈2–3 ms of ethers' JavaScript on this
 * project's CI machine, paid by every signed request (most of the API's own CPU per job start).
 */
export function recoverMessageSigner(message: Uint8Array | string, signature: string): string {
  if (!native) return verifyMessage(message, signature);
  const sig = Signature.from(signature);
  const compact = getBytes(sig.r + sig.s.slice(2));
  const publicKey = native.ecdsaRecover(compact, sig.yParity, getBytes(hashMessage(message)), false);
  return getAddress(dataSlice(keccak256(publicKey.subarray(1)), 12));
}
