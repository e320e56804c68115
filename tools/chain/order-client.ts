import { type Signer, type TransactionReceipt, ZeroAddress } from 'ethers';
import { contractAt, send } from '../../src/chain/contracts';
import { type ProviderFee, providerFeeTuple } from '../../src/chain/provider-fee';

const noConsumeMarketFee = { consumeMarketFeeAddress: ZeroAddress, consumeMarketFeeToken: ZeroAddress, consumeMarketFeeAmount: 0n };

/**
 * The consumer's side of an order, as Ocean's client library does it: approve the fee token for the
 * datatoken when the fee is not zero, then `startOrder` (spends 1 datatoken, pays the provider fee).
 */
export async function startOrder(signer: Signer, datatoken: string, consumer: string, serviceIndex: number, fee: ProviderFee): Promise<TransactionReceipt> {
  if (BigInt(fee.providerFeeAmount) > 0n)
    await send(contractAt('ERC20Template', fee.providerFeeToken, signer), 'approve', datatoken, BigInt(fee.providerFeeAmount));
  return send(contractAt('ERC20Template', datatoken, signer), 'startOrder', consumer, serviceIndex, providerFeeTuple(fee), noConsumeMarketFee);
}

/** Renews the provider fee of an existing order without spending another datatoken. */
export async function reuseOrder(signer: Signer, datatoken: string, orderTxId: string, fee: ProviderFee): Promise<TransactionReceipt> {
  if (BigInt(fee.providerFeeAmount) > 0n)
    await send(contractAt('ERC20Template', fee.providerFeeToken, signer), 'approve', datatoken, BigInt(fee.providerFeeAmount));
  return send(contractAt('ERC20Template', datatoken, signer), 'reuseOrder', orderTxId, providerFeeTuple(fee));
}
