import { createRequire } from 'node:module';
import secp256k1 from 'secp256k1';

/**
 * The secp256k1 curve operations the provider does many times a second — recovering the signer of each
 * signed request, the shared point of each ECIES decrypt — through the `secp256k1` package: libsecp256k1
 * by its prebuilt addon, ≈20 times faster than JavaScript point arithmetic (ethers'), or the package's
 * own JavaScript (elliptic) on a platform it has no build for.
 */
export const curve: Pick<typeof secp256k1, 'ecdsaRecover' | 'publicKeyTweakMul'> = secp256k1;

/** Which of the two `curve` is here: the bench prints it, and a test asserts the addon loads on the platforms CI builds. */
export const curveImplementation: 'libsecp256k1' | 'elliptic' = (() => {
  try {
    createRequire(__filename)('secp256k1/bindings');
    return 'libsecp256k1';
  } catch {
    return 'elliptic';
  }
})();
