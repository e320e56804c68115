import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncDir } from './atomic-file';

/** Who consumed an order: the job it funded. */
export interface OrderConsumption {
  jobId: string;
  did: string;
  serviceId: string;
  /** ms since the epoch */
  at: number;
}

/**
 * Orders (transferTxId) that already funded a job: a paid order funds one job, not any number of them
 * during its validity (docs/security.md).
 */
export interface ConsumedOrderStore {
  /** Records the order as consumed by `by` and returns null, or returns the earlier consumption and changes nothing. */
  claim(transferTxId: string, by: OrderConsumption): Promise<OrderConsumption | null>;
  /** Undoes a claim of `jobId` (its job could not be started after all); another job's claim stays. */
  release(transferTxId: string, jobId: string): Promise<void>;
}

/**
 * One file per consumed order under `<dataDir>/consumed-orders/`, named by a hash of the transaction
 * id. A claim is atomic across processes that share the directory (API replicas on one volume): the
 * record is written and fsynced under a temporary name, then hard-linked to its final name, which
 * fails if any other claim got there first (link(2) never replaces). Durable once claim resolves.
 */
export class FileConsumedOrderStore implements ConsumedOrderStore {
  private readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'consumed-orders');
  }

  private fileOf(transferTxId: string): string {
    return path.join(this.dir, createHash('sha256').update(transferTxId.trim().toLowerCase()).digest('hex'));
  }

  async claim(transferTxId: string, by: OrderConsumption): Promise<OrderConsumption | null> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.fileOf(transferTxId);
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(by));
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return this.read(file);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    await syncDir(this.dir);
    return null;
  }

  async release(transferTxId: string, jobId: string): Promise<void> {
    const file = this.fileOf(transferTxId);
    const held = await this.read(file).catch(() => null);
    if (held?.jobId === jobId) await fs.rm(file, { force: true });
  }

  private async read(file: string): Promise<OrderConsumption> {
    return JSON.parse(await fs.readFile(file, 'utf8')) as OrderConsumption;
  }
}
