import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { AUTH_TOKEN_TTL_MS, AuthTokens } from '../../src/api/auth-tokens';
import { FileNonceStore } from '../../src/storage/nonces';

describe('auth tokens (ocean-node API)', () => {
  let dir: string;
  let clock: number;
  const provider = Wallet.createRandom();
  const alice = Wallet.createRandom().address;
  const tokensAt = (nonces: FileNonceStore, key = provider) => new AuthTokens(new Wallet(key.privateKey), nonces, () => clock);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-tokens-'));
    clock = 1_800_000_000_000;
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('when a token is issued, then it is a JWT whose payload names the address, and it verifies until it expires (a day at most)', async () => {
    const tokens = tokensAt(new FileNonceStore(dir));
    const token = tokens.issue(alice, '7', clock + 10 * AUTH_TOKEN_TTL_MS);
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { address: string };
    expect(payload.address).toBe(alice);
    expect(await tokens.verify(token)).toMatchObject({ address: alice, nonce: '7' });
    clock += AUTH_TOKEN_TTL_MS - 1000;
    expect(await tokens.verify(token)).not.toBeNull();
    clock += 1000;
    expect(await tokens.verify(token)).toBeNull();
  });

  test('when a token asks for less time, then it ends then', async () => {
    const tokens = tokensAt(new FileNonceStore(dir));
    const token = tokens.issue(alice, '1', clock + 60_000);
    clock += 60_000;
    expect(await tokens.verify(token)).toBeNull();
  });

  test('when a token is altered, or was issued with another provider key, then it does not verify', async () => {
    const nonces = new FileNonceStore(dir);
    const token = tokensAt(nonces).issue(alice, '1');
    const [h, p, s] = token.split('.') as [string, string, string];
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), address: Wallet.createRandom().address }),
    ).toString('base64url');
    expect(await tokensAt(nonces).verify(`${h}.${forgedPayload}.${s}`)).toBeNull();
    expect(await tokensAt(nonces, Wallet.createRandom()).verify(token)).toBeNull();
    expect(await tokensAt(nonces).verify('not.a.token')).toBeNull();
  });

  test('when a token is invalidated, then it and the older ones are void, on every replica (shared nonce store), and newer ones live', async () => {
    const older = tokensAt(new FileNonceStore(dir)).issue(alice, '1');
    clock += 1000;
    const token = tokensAt(new FileNonceStore(dir)).issue(alice, '2');
    clock += 1000;
    const newer = tokensAt(new FileNonceStore(dir)).issue(alice, '3');
    expect(await tokensAt(new FileNonceStore(dir)).invalidate(Wallet.createRandom().address, token)).toBe(false);
    expect(await tokensAt(new FileNonceStore(dir)).invalidate(alice, token)).toBe(true);
    // another replica: same directory, same provider key
    const replica = tokensAt(new FileNonceStore(dir));
    expect(await replica.verify(token)).toBeNull();
    expect(await replica.verify(older)).toBeNull();
    expect(await replica.verify(newer)).not.toBeNull();
    expect(await replica.invalidate(alice, token)).toBe(false);
  });
});
