import { randomBytes } from 'node:crypto';
import { getBytes, hexlify, keccak256, Signature, toBeHex, verifyMessage, Wallet } from 'ethers';
import { recoverMessageSigner } from '../../src/chain/recover';
import { curveImplementation } from '../../src/chain/secp256k1';

const N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');

/** The address, or 'throws' (the callers only tell a signer from none; the messages differ: ethers' or libsecp256k1's). */
const outcome = (recover: (message: Uint8Array | string, signature: string) => string, message: Uint8Array | string, signature: string): string => {
  try {
    return recover(message, signature);
  } catch {
    return 'throws';
  }
};
const viaEthers = (message: Uint8Array | string, signature: string): string => outcome(verifyMessage, message, signature);
const viaModule = (message: Uint8Array | string, signature: string): string => outcome(recoverMessageSigner, message, signature);

describe('recovering the signer of a message (EIP-191)', () => {
  test('on this platform the prebuilt libsecp256k1 loads (linux x64), so signed requests do not pay for JavaScript point arithmetic', () => {
    expect(curveImplementation).toBe('libsecp256k1');
  });

  test('when 200 keys sign 32-byte hashes and strings, then the signer is the one ethers recovers, checksummed', () => {
    for (let i = 0; i < 200; i++) {
      const wallet = Wallet.createRandom();
      const message = i % 2 === 0 ? getBytes(keccak256(randomBytes(40))) : `message ${i} ${hexlify(randomBytes(8))}`;
      const signature = wallet.signMessageSync(message);
      expect(recoverMessageSigner(message, signature)).toBe(wallet.address);
      expect(viaModule(message, signature)).toBe(viaEthers(message, signature));
    }
  });

  test('when a signature is malformed, malleated (high s), has a bad v or r, or signs another message, then the outcome is exactly ethers’', () => {
    const wallet = Wallet.createRandom();
    const message = getBytes(keccak256(randomBytes(8)));
    const sig = Signature.from(wallet.signMessageSync(message));
    const hex32 = (n: bigint): string => toBeHex(n, 32).slice(2);
    const v = (x: number): string => x.toString(16).padStart(2, '0');
    const variants = [
      `0x${'ab'.repeat(65)}`, // random bytes
      `0x${'00'.repeat(65)}`, // zero r and s
      sig.serialized.slice(0, -2), // 64 bytes, no v
      `${sig.serialized}00`, // 66 bytes
      `${sig.r}${sig.s.slice(2)}${v(29)}`, // v neither 27/28 nor 0/1
      `${sig.r}${sig.s.slice(2)}${v(sig.v === 27 ? 28 : 27)}`, // the other parity: another key
      `${sig.r}${hex32(N - BigInt(sig.s))}${v(sig.v === 27 ? 28 : 27)}`, // malleated: high s
      `0x${hex32(N + 1n)}${sig.s.slice(2)}${v(sig.v)}`, // r past the group order
      `${sig.r}${sig.s.slice(2)}${v(sig.v - 27)}`, // v as 0/1
    ];
    const outcomes = variants.map((signature) => viaModule(message, signature));
    expect(outcomes).toEqual(variants.map((signature) => viaEthers(message, signature)));
    // not a vacuous comparison: most are refused, the 0/1 v still names the signer, the other parity another key
    expect(outcomes.filter((o) => o === 'throws').length).toBeGreaterThanOrEqual(5);
    expect(outcomes[8]).toBe(wallet.address);
    expect(outcomes[5]).not.toBe('throws');
    expect(outcomes[5]).not.toBe(wallet.address);
    expect(viaModule(getBytes(keccak256(randomBytes(8))), sig.serialized)).not.toBe(wallet.address);
  });
});
