import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Signature, Wallet } from 'ethers';
import { nextNonce, recoverSigner, requireSignedRequest } from '../../src/api/auth';
import { AuthError } from '../../src/domain/errors';
import { FileNonceStore } from '../../src/storage/nonces';
import { signRequest } from '../helpers/api';

describe('request signatures (Ocean §2)', () => {
  const wallet = Wallet.createRandom();
  let dir: string;
  let nonces: FileNonceStore;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-sig-'));
    nonces = new FileNonceStore(dir);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('when a client signs keccak256(parts + nonce) as 32 bytes, then the signer is recovered', async () => {
    const signature = await signRequest(wallet, [wallet.address, 'did:op:abc'], 1);
    expect(recoverSigner(`${wallet.address}did:op:abc1`, signature)).toBe(wallet.address);
  });

  it('when v is 0/1 instead of 27/28, then the signature still verifies', async () => {
    const sig = Signature.from(await signRequest(wallet, ['x'], 3));
    const lowV = `${sig.r}${sig.s.slice(2)}${(sig.v - 27).toString(16).padStart(2, '0')}`;
    expect(recoverSigner('x3', lowV)).toBe(wallet.address);
  });

  it('when the signature is garbage, then no signer is recovered', () => {
    expect(recoverSigner('x3', `0x${'ab'.repeat(65)}`)).toBeNull();
  });

  it('when the signature verifies and the nonce is new, then the nonce is stored; replaying it is refused', async () => {
    const signature = await signRequest(wallet, ['a', 'b'], 5);
    const req = { address: wallet.address.toLowerCase(), parts: ['a', 'b'], nonce: '5', signature };
    await requireSignedRequest(nonces, req);
    expect(await nonces.get(wallet.address)).toBe('5');
    await expect(requireSignedRequest(nonces, req)).rejects.toMatchObject({ code: 'invalid_nonce' });
  });

  it('when someone else signed, then it is refused and the nonce is not consumed', async () => {
    const signature = await signRequest(Wallet.createRandom(), ['a'], 5);
    await expect(requireSignedRequest(nonces, { address: wallet.address, parts: ['a'], nonce: '5', signature })).rejects.toBeInstanceOf(AuthError);
    expect(await nonces.get(wallet.address)).toBeNull();
  });

  it.each([
    [null, '1'],
    ['41', '42'],
    ['99999999999999999999', '100000000000000000000'],
  ])('when the stored nonce is %s, then the next one is %s', (stored, next) => {
    expect(nextNonce(stored)).toBe(next);
  });
});
