import fs from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../domain/errors';
import { writeFileAtomic } from './atomic-file';
import { KeyedLock } from './keyed-lock';

/** The last accepted nonce of each consumer address (Ocean: a signed call must use a greater one). */
export interface NonceStore {
  /** The last accepted nonce, as it was sent; null for an address never seen. */
  get(address: string): Promise<string | null>;
  /** Stores `nonce` and returns true only if it is greater than the stored one; otherwise changes nothing. */
  advance(address: string, nonce: string): Promise<boolean>;
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const INTEGER = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** Integers (counters, ms timestamps) compare exactly as BigInt; anything with a fraction as a number. */
export function nonceGreater(candidate: string, stored: string): boolean {
  if (INTEGER.test(candidate) && INTEGER.test(stored)) return BigInt(candidate) > BigInt(stored);
  return Number(candidate) > Number(stored);
}

function requireNonce(nonce: string): void {
  if (!DECIMAL.test(nonce)) throw new ValidationError({ nonce: ['must be a non-negative number'] });
}

function requireAddress(address: string): string {
  if (!ADDRESS.test(address)) throw new ValidationError({ consumerAddress: ['must be a 0x address'] });
  return address.toLowerCase();
}

/**
 * One file per address under `<dataDir>/nonces/`. Durable (fsync before rename) and atomic within this
 * process: advances for one address run one after another, so of two requests with the same nonce
 * exactly one wins. (Several API processes sharing the directory would need a file lock on top.)
 */
export class FileNonceStore implements NonceStore {
  private readonly dir: string;
  private readonly lock = new KeyedLock();

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'nonces');
  }

  async get(address: string): Promise<string | null> {
    const file = path.join(this.dir, requireAddress(address));
    try {
      const text = (await fs.readFile(file, 'utf8')).trim();
      return text === '' ? null : text;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async advance(address: string, nonce: string): Promise<boolean> {
    const key = requireAddress(address);
    requireNonce(nonce);
    return this.lock.run(key, async () => {
      const stored = await this.get(key);
      if (stored !== null && !nonceGreater(nonce, stored)) return false;
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(path.join(this.dir, key), nonce);
      return true;
    });
  }
}
