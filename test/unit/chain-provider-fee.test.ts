import { Wallet, toUtf8String } from 'ethers';
import { decodeProviderData, feeAmount, pricePerMinuteUnits, providerFeeSigner, signProviderFee } from '../../src/chain/provider-fee';

describe('provider fee', () => {
  it('when the price is per minute, then the amount is ceil(seconds/60 × priceMin) in base units', () => {
    expect(feeAmount(1, 600)).toBe(10n * 10n ** 18n);
    expect(feeAmount(0.1, 60)).toBe(10n ** 17n);
    expect(feeAmount(1, 1)).toBe((10n ** 18n + 59n) / 60n);
    expect(feeAmount(2.5, 90, 6)).toBe(3_750_000n);
    expect(feeAmount(0, 3600)).toBe(0n);
    expect(feeAmount(1, -5)).toBe(0n);
    expect(pricePerMinuteUnits(1e-7)).toBe(100_000_000_000n);
    expect(pricePerMinuteUnits(1.5e21, 0)).toBe(1_500_000_000_000_000_000_000n);
    expect(pricePerMinuteUnits(1e-20)).toBe(0n);
  });

  it('when a fee is signed, then providerData is the JSON of the contract and the signer recovers to the provider', () => {
    const wallet = Wallet.createRandom();
    const fee = signProviderFee(wallet, {
      environment: 'env-1',
      datatoken: '0x' + 'ab'.repeat(20),
      serviceId: 'svc',
      feeToken: '0x' + 'cd'.repeat(20),
      amount: 5n,
      validUntil: 1_900_000_000,
      now: 1_800_000_000,
    });
    expect(JSON.parse(toUtf8String(fee.providerData))).toEqual({
      environment: 'env-1',
      timestamp: 1_800_000_000,
      dt: '0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB',
      id: 'svc',
    });
    expect(Object.keys(JSON.parse(toUtf8String(fee.providerData)))).toEqual(['environment', 'timestamp', 'dt', 'id']);
    expect(decodeProviderData(fee.providerData)?.environment).toBe('env-1');
    expect(fee).toMatchObject({ providerFeeAddress: wallet.address, providerFeeAmount: '5', validUntil: 1_900_000_000 });
    expect(providerFeeSigner(fee)).toBe(wallet.address);
    expect(providerFeeSigner({ ...fee, providerFeeAmount: '6' })).not.toBe(wallet.address);
    expect(decodeProviderData('0x1234')).toBeNull();
  });
});
