import { createHmac, timingSafeEqual } from 'node:crypto';
import { keccak256, toUtf8Bytes, type Wallet } from 'ethers';
import type { NonceStore } from '../storage/nonces';

/** How long a token lasts when its creator does not say (ocean.js never does); it may ask for less, never more. */
export const AUTH_TOKEN_TTL_MS = 24 * 3600_000;

interface Claims {
  /** the address that signed for the token, as it signed */
  address: string;
  /** the nonce it signed with */
  nonce: string;
  /** epoch ms */
  createdAt: number;
  /** epoch seconds (JWT) */
  exp: number;
}

const b64 = (v: string | Buffer): string => Buffer.from(v).toString('base64url');
const HEADER = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

/**
 * ocean-node's auth tokens (ocean.js ≥ 4's generateAuthToken): a JWT (HS256) that stands in for a signature
 * and nonce on the signed routes, sent raw in `Authorization`. ocean.js reads the `address` claim without
 * verifying it; we verify everything. Stateless, so every API replica accepts a token any replica issued:
 * the key is derived from the provider's key, and an invalidation is a per-address "tokens created up to
 * this instant are void" mark kept in the nonce store (durable, and shared where the nonces are).
 * Invalidating one token therefore also voids that address's older tokens, never newer ones.
 */
export class AuthTokens {
  private readonly key: Buffer;

  constructor(
    providerWallet: Wallet,
    private readonly nonces: NonceStore,
    private readonly now: () => number = Date.now,
  ) {
    this.key = createHmac('sha256', Buffer.from(providerWallet.privateKey.slice(2), 'hex'))
      .update('c2d auth tokens v1')
      .digest();
  }

  private sign(data: string): string {
    return createHmac('sha256', this.key).update(data).digest('base64url');
  }

  /** A token for `address` (which proved itself with `nonce`), valid until `validUntilMs` (at most AUTH_TOKEN_TTL_MS from now). */
  issue(address: string, nonce: string, validUntilMs?: number): string {
    const createdAt = this.now();
    const until = Math.min(validUntilMs ?? Infinity, createdAt + AUTH_TOKEN_TTL_MS);
    const claims: Claims = { address, nonce, createdAt, exp: Math.floor(until / 1000) };
    const body = `${HEADER}.${b64(JSON.stringify(claims))}`;
    return `${body}.${this.sign(body)}`;
  }

  /** The token's claims if we issued it, it has not expired and it was not invalidated; else null. */
  async verify(token: string): Promise<Claims | null> {
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== HEADER) return null;
    const expected = Buffer.from(this.sign(`${parts[0]}.${parts[1]}`));
    const given = Buffer.from(parts[2]!);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Claims;
    } catch {
      return null;
    }
    if (typeof claims.address !== 'string' || !Number.isInteger(claims.createdAt) || !Number.isInteger(claims.exp)) return null;
    if (claims.exp * 1000 <= this.now()) return null;
    const voidUpTo = await this.nonces.get(revocationKey(claims.address));
    if (voidUpTo !== null && claims.createdAt <= Number(voidUpTo)) return null;
    return claims;
  }

  /** Voids `token` (and the address's older ones); false when it is not a live token of `address`. */
  async invalidate(address: string, token: string): Promise<boolean> {
    const claims = await this.verify(token);
    if (!claims || claims.address.toLowerCase() !== address.toLowerCase()) return false;
    await this.nonces.advance(revocationKey(address), String(claims.createdAt));
    return true;
  }
}

/** Where the nonce store keeps an address's invalidation mark: an address-shaped key of its own, derived from the address. */
const revocationKey = (address: string): string => `0x${keccak256(toUtf8Bytes(`c2d auth tokens voided: ${address.toLowerCase()}`)).slice(26)}`;

const tokens = new WeakMap<object, AuthTokens>();
/** One AuthTokens per app (deps object). */
export function authTokensOf(deps: { providerWallet: Wallet; nonces: NonceStore }): AuthTokens {
  let t = tokens.get(deps);
  if (!t) tokens.set(deps, (t = new AuthTokens(deps.providerWallet, deps.nonces)));
  return t;
}
