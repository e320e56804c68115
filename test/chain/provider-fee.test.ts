import { type BaseWallet, Wallet, parseEther } from 'ethers';
import { contractAt, read, send } from '../../src/chain/contracts';
import { startOrder } from '../../tools/chain/order-client';
import { feeAmount, signProviderFee } from '../../src/chain/provider-fee';
import { createNftWithDatatoken, mintDatatokens } from '../../tools/chain/publish';
import { startChain, type TestChain } from '../helpers/chain';

describe('provider fees on the datatoken contract', () => {
  let chain: TestChain;
  let datatoken: string;
  const provider = Wallet.createRandom();
  const other = Wallet.createRandom();

  beforeAll(async () => {
    chain = await startChain();
    const [deployer, publisher, consumer] = [chain.signers[0]!, chain.signers[1]!, chain.signers[2]!];
    ({ datatokenAddress: datatoken } = await createNftWithDatatoken(publisher, chain.contracts));
    await mintDatatokens(publisher, datatoken, consumer.address, parseEther('3'));
    await send(contractAt('OceanToken', chain.contracts.Ocean, deployer), 'mint', consumer.address, parseEther('100'));
  });
  afterAll(() => chain?.stop());

  const fee = (signer: BaseWallet, amount: bigint, overrides: Partial<{ validUntil: number }> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return signProviderFee(signer, {
      environment: 'paid',
      datatoken,
      serviceId: 'compute',
      feeToken: chain.contracts.Ocean,
      amount,
      validUntil: overrides.validUntil ?? now + 600,
      now,
    });
  };

  test('when the consumer orders with our signed fee, then the contract accepts it and pays the provider', async () => {
    const consumer = chain.signers[2]!;
    const amount = feeAmount(1, 600);
    const receipt = await startOrder(consumer, datatoken, consumer.address, 0, fee(provider, amount));
    expect(receipt.status).toBe(1);
    expect(await read(contractAt('OceanToken', chain.contracts.Ocean, chain.provider), 'balanceOf', provider.address)).toBe(amount);
  });

  test('when the fee is zero (free environment), then the signed fee is accepted too', async () => {
    const consumer = chain.signers[2]!;
    const receipt = await startOrder(consumer, datatoken, consumer.address, 0, fee(provider, 0n));
    expect(receipt.status).toBe(1);
  });

  test('when a fee naming our address was signed by another key, then the contract reverts the order', async () => {
    const consumer = chain.signers[2]!;
    const forged = { ...fee(other, 0n), providerFeeAddress: provider.address };
    await expect(startOrder(consumer, datatoken, consumer.address, 0, forged)).rejects.toThrow(/Invalid provider fee/);
    const tampered = { ...fee(provider, 0n), providerFeeAmount: '1' };
    await expect(startOrder(consumer, datatoken, consumer.address, 0, tampered)).rejects.toThrow(/Invalid provider fee/);
  });
});
