import {
  type BaseWallet,
  getAddress,
  getBytes,
  hashMessage,
  hexlify,
  parseUnits,
  recoverAddress,
  Signature,
  solidityPackedKeccak256,
  toUtf8Bytes,
  toUtf8String,
} from 'ethers';
import { z } from 'zod';

/** The provider fee as the wire (initializeCompute) and the datatoken's `startOrder` carry it. */
export interface ProviderFee {
  providerFeeAddress: string;
  providerFeeToken: string;
  /** fee-token base units (wei), decimal string */
  providerFeeAmount: string;
  /** 0x hex of the UTF-8 JSON {environment, timestamp, dt, id} */
  providerData: string;
  v: number;
  r: string;
  s: string;
  /** unix seconds */
  validUntil: number;
}

export const providerDataSchema = z.object({
  environment: z.string(),
  timestamp: z.number(),
  dt: z.string(),
  id: z.string(),
});
export type ProviderData = z.infer<typeof providerDataSchema>;

/** The shortest decimal that reads back as `n` (String(n)), without exponent: 1e-7 → "0.0000001". */
function plainDecimal(n: number): string {
  const [mantissa = '0', exp = '0'] = String(n).split('e');
  const e = Number(exp);
  const [whole = '0', fraction = ''] = mantissa.split('.');
  const digits = whole + fraction;
  const point = whole.length + e;
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return digits + '0'.repeat(point - digits.length);
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** `priceMin` (tokens per minute, a JS number) as exact base units per minute; finer digits than the token has are dropped. */
export function pricePerMinuteUnits(priceMin: number, decimals = 18): bigint {
  if (!Number.isFinite(priceMin) || priceMin < 0) throw new RangeError(`priceMin must be a non-negative number, got ${priceMin}`);
  // via the shortest decimal, so 0.1 stays 0.1 (toFixed would add binary noise)
  const [whole = '0', fraction = ''] = plainDecimal(priceMin).split('.');
  return parseUnits(fraction ? `${whole}.${fraction.slice(0, decimals)}` : whole, decimals);
}

/** ceil(seconds / 60 × priceMin), in base units of a token with `decimals`; 0 for free environments. */
export function feeAmount(priceMin: number, seconds: number, decimals = 18): bigint {
  const perMinute = pricePerMinuteUnits(priceMin, decimals);
  const s = BigInt(Math.max(0, Math.ceil(seconds)));
  return (perMinute * s + 59n) / 60n;
}

export const encodeProviderData = (data: ProviderData): string =>
  hexlify(toUtf8Bytes(JSON.stringify({ environment: data.environment, timestamp: data.timestamp, dt: data.dt, id: data.id })));

/** null when the bytes are not our JSON (a fee made by another provider or by hand). */
export function decodeProviderData(hex: string): ProviderData | null {
  try {
    const parsed = providerDataSchema.safeParse(JSON.parse(toUtf8String(hex)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The hash the datatoken contract recomputes in `startOrder`/`reuseOrder` before `ecrecover` (with EIP-191's prefix). */
const feeMessage = (providerData: string, feeAddress: string, feeToken: string, amount: bigint, validUntil: number | bigint): string =>
  solidityPackedKeccak256(['bytes', 'address', 'address', 'uint256', 'uint256'], [providerData, feeAddress, feeToken, amount, validUntil]);

export interface FeeRequest {
  environment: string;
  datatoken: string;
  serviceId: string;
  feeToken: string;
  amount: bigint;
  validUntil: number;
  /** unix seconds written into providerData */
  now: number;
}

/** Signs a provider fee with the provider's key; the fee is paid to the provider's own address. */
export function signProviderFee(wallet: BaseWallet, req: FeeRequest): ProviderFee {
  const providerData = encodeProviderData({ environment: req.environment, timestamp: req.now, dt: getAddress(req.datatoken), id: req.serviceId });
  const feeAddress = wallet.address;
  const feeToken = getAddress(req.feeToken);
  const digest = hashMessage(getBytes(feeMessage(providerData, feeAddress, feeToken, req.amount, req.validUntil)));
  const sig = wallet.signingKey.sign(digest);
  return {
    providerFeeAddress: feeAddress,
    providerFeeToken: feeToken,
    providerFeeAmount: req.amount.toString(),
    providerData,
    v: sig.v,
    r: sig.r,
    s: sig.s,
    validUntil: req.validUntil,
  };
}

/** Who signed a fee as it appears on chain (ProviderFee event); throws on a malformed signature. */
export function providerFeeSigner(fee: {
  providerFeeAddress: string;
  providerFeeToken: string;
  providerFeeAmount: bigint | string;
  providerData: string;
  v: number | bigint;
  r: string;
  s: string;
  validUntil: number | bigint;
}): string {
  const digest = hashMessage(
    getBytes(feeMessage(fee.providerData, fee.providerFeeAddress, fee.providerFeeToken, BigInt(fee.providerFeeAmount), fee.validUntil)),
  );
  return recoverAddress(digest, Signature.from({ v: Number(fee.v), r: fee.r, s: fee.s }));
}

/** The tuple `startOrder`/`reuseOrder` take. */
export const providerFeeTuple = (fee: ProviderFee) => ({
  providerFeeAddress: fee.providerFeeAddress,
  providerFeeToken: fee.providerFeeToken,
  providerFeeAmount: BigInt(fee.providerFeeAmount),
  v: fee.v,
  r: fee.r,
  s: fee.s,
  validUntil: BigInt(fee.validUntil),
  providerData: fee.providerData,
});
