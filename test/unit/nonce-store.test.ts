import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { ValidationError } from '../../src/domain/errors';
import { FileNonceStore, nonceGreater } from '../../src/storage/nonces';

describe('FileNonceStore', () => {
  let dir: string;
  const address = Wallet.createRandom().address;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-nonces-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('when an address was never seen, then its nonce is null and any nonce advances it', async () => {
    const store = new FileNonceStore(dir);
    expect(await store.get(address)).toBeNull();
    expect(await store.advance(address, '1')).toBe(true);
    expect(await store.get(address)).toBe('1');
  });

  it('when the same or a smaller nonce comes again, then it is refused and the stored one stays', async () => {
    const store = new FileNonceStore(dir);
    expect(await store.advance(address, '5')).toBe(true);
    expect(await store.advance(address, '5')).toBe(false);
    expect(await store.advance(address, '4')).toBe(false);
    expect(await store.get(address)).toBe('5');
  });

  it('when the address differs only in case, then it is the same consumer', async () => {
    const store = new FileNonceStore(dir);
    await store.advance(address.toLowerCase(), '7');
    expect(await store.get(address.toUpperCase().replace('0X', '0x'))).toBe('7');
    expect(await store.advance(address, '7')).toBe(false);
  });

  it('when 100 requests advance with the same nonce at once, then exactly one wins', async () => {
    const store = new FileNonceStore(dir);
    const outcomes = await Promise.all(Array.from({ length: 100 }, () => store.advance(address, '1700000000000')));
    expect(outcomes.filter(Boolean)).toHaveLength(1);
  });

  it('when 50 increasing nonces race, then the largest is stored', async () => {
    const store = new FileNonceStore(dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.advance(address, String(i + 1))));
    expect(await store.get(address)).toBe('50');
  });

  it('when the store is opened again (a restart), then the last nonce is still there', async () => {
    await new FileNonceStore(dir).advance(address, '1700000000123');
    const reopened = new FileNonceStore(dir);
    expect(await reopened.get(address)).toBe('1700000000123');
    expect(await reopened.advance(address, '1700000000123')).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'nonces'))).toEqual([address.toLowerCase()]);
  });

  it('when the nonce or address is not a number or an address, then it is a validation error', async () => {
    const store = new FileNonceStore(dir);
    await expect(store.advance(address, 'abc')).rejects.toBeInstanceOf(ValidationError);
    await expect(store.advance('../../etc/passwd', '1')).rejects.toBeInstanceOf(ValidationError);
  });

  it.each([
    ['2', '10', false],
    ['10', '2', true],
    ['1700000000001', '1700000000000', true],
    ['99999999999999999999', '99999999999999999998', true],
    ['1.5', '1', true],
    ['1', '1.5', false],
    ['2', '2.0', false],
  ])('when comparing nonce %s with stored %s, then greater is %s', (candidate, stored, greater) => {
    expect(nonceGreater(candidate, stored)).toBe(greater);
  });
});
