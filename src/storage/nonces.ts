import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout } from 'node:timers/promises';
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

/** A lock older than this was left by a process that died holding it (an advance takes milliseconds). */
const STALE_LOCK_MS = 10_000;
const LOCK_RETRY_MS = 2;

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/**
 * One file per address under `<dataDir>/nonces/`. Durable (fsync before rename) and atomic across
 * processes that share the directory (API replicas on one volume): an advance holds `<address>.lock`,
 * created with O_EXCL, while it reads, compares and writes, so of two requests with the same nonce
 * exactly one wins, whichever process took them. Within a process the advances for one address also
 * queue in memory, so they do not spin on the lock. A lock left by a crashed process is taken over
 * after STALE_LOCK_MS. (O_EXCL is atomic on local filesystems and on NFSv3+.)
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
      if (errno(err) === 'ENOENT') return null;
      throw err;
    }
  }

  async advance(address: string, nonce: string): Promise<boolean> {
    const key = requireAddress(address);
    requireNonce(nonce);
    return this.lock.run(key, async () => {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const release = await this.lockFile(key);
      try {
        const stored = await this.get(key);
        if (stored !== null && !nonceGreater(nonce, stored)) return false;
        await writeFileAtomic(path.join(this.dir, key), nonce);
        return true;
      } finally {
        await release();
      }
    });
  }

  /** Takes `<address>.lock` across processes; resolves to its release. */
  private async lockFile(key: string): Promise<() => Promise<void>> {
    const lock = path.join(this.dir, `${key}.lock`);
    for (;;) {
      try {
        const handle = await fs.open(lock, 'wx', 0o600);
        await handle.close();
        return () => fs.rm(lock, { force: true });
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
      }
      await this.breakIfStale(lock);
      await setTimeout(LOCK_RETRY_MS);
    }
  }

  /** Moves a stale lock aside (rename: only one process gets it), and puts it back if it turned out fresh. */
  private async breakIfStale(lock: string): Promise<void> {
    const old = await fs.stat(lock).catch(() => null);
    if (!old || Date.now() - old.mtimeMs < STALE_LOCK_MS) return;
    const aside = `${lock}.${randomBytes(6).toString('hex')}.stale`;
    if (
      !(await fs.rename(lock, aside).then(
        () => true,
        () => false,
      ))
    )
      return;
    const taken = await fs.stat(aside).catch(() => null);
    // another process broke it first and a live one took the lock since: give it back (link fails if a third took it meanwhile)
    if (taken && Date.now() - taken.mtimeMs < STALE_LOCK_MS) await fs.link(aside, lock).catch(() => undefined);
    await fs.rm(aside, { force: true });
  }
}
