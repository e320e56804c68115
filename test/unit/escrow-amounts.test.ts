import { keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { amountForMinutes, escrowLockId, escrowPayee, lockAmount } from '../../src/chain/escrow';

describe('escrow amounts and ids', () => {
  test('when a job id is given, then its lock id is uint256(keccak256(jobId)) and stable', () => {
    expect(escrowLockId('job-1')).toBe(BigInt(keccak256(toUtf8Bytes('job-1'))));
    expect(escrowLockId('job-1')).toBe(escrowLockId('job-1'));
    expect(escrowLockId('job-2')).not.toBe(escrowLockId('job-1'));
  });

  test('when prices have decimals, then wei amounts are exact (no float drift)', () => {
    expect(amountForMinutes(0.1, 3, 18)).toBe(300000000000000000n);
    expect(amountForMinutes(0.000001, 7, 6)).toBe(7n);
    expect(amountForMinutes(1.23456789, 1, 18)).toBe(1234567890000000000n);
  });

  test('when a lock is sized, then it covers the billed minutes of maxJobDuration, at least one', () => {
    expect(lockAmount(2, 61, 18)).toBe(4n * 10n ** 18n);
    expect(lockAmount(2, 1, 18)).toBe(2n * 10n ** 18n);
  });

  test('when the price is invalid, then the amount is refused with the value named', () => {
    expect(() => amountForMinutes(-1, 1, 18)).toThrow(/invalid price per minute -1/);
    expect(() => amountForMinutes(1, 1.5, 18)).toThrow(/invalid minutes 1.5/);
  });

  test('when the provider key is given, then the payee is its address', () => {
    const w = Wallet.createRandom();
    expect(escrowPayee(w.privateKey)).toBe(w.address);
  });
});
