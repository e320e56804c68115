import fs from 'node:fs/promises';
import path from 'node:path';
import { type Ddo, ddoSchema } from '../domain/ddo';
import type { Logger } from '../domain/logger';
import type { AssetResolver } from './resolver';

interface CachedFile {
  mtimeMs: number;
  size: number;
  ddo: Ddo | null;
}

/**
 * Off-chain assets for private deployments: one DDO per `*.json` file in a directory, its `id` is the
 * DID. The directory is read on every lookup (parsed files are cached by mtime and size), so a DDO
 * dropped in later is found without a restart. Catalog assets have no datatoken and no chain.
 */
export class CatalogResolver implements AssetResolver {
  private readonly cache = new Map<string, CachedFile>();

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  async resolve(did: string): Promise<Ddo | null> {
    const wanted = did.toLowerCase();
    for (const ddo of await this.list()) {
      if (ddo.id.toLowerCase() === wanted) return ddo;
    }
    return null;
  }

  /** Every valid DDO in the directory, in file-name order. */
  async list(): Promise<Ddo[]> {
    let names: string[];
    try {
      names = (await fs.readdir(this.dir)).filter((n) => n.endsWith('.json')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const ddos: Ddo[] = [];
    for (const name of names) {
      const ddo = await this.load(path.join(this.dir, name));
      if (ddo) ddos.push(ddo);
    }
    return ddos;
  }

  private async load(file: string): Promise<Ddo | null> {
    let stat;
    try {
      stat = await fs.stat(file);
    } catch {
      return null; // removed between readdir and stat
    }
    if (!stat.isFile()) return null;
    const cached = this.cache.get(file);
    if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.ddo;
    const ddo = await this.parse(file);
    this.cache.set(file, { mtimeMs: stat.mtimeMs, size: stat.size, ddo });
    return ddo;
  }

  private async parse(file: string): Promise<Ddo | null> {
    let json: unknown;
    try {
      json = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch {
      this.logger.warn({ file }, 'catalog file skipped: not readable JSON');
      return null;
    }
    const parsed = ddoSchema.safeParse(json);
    if (!parsed.success) {
      // Name the file and the failing fields only: the content may hold a publisher's secrets.
      this.logger.warn({ file, fields: parsed.error.issues.map((i) => i.path.join('.')) }, 'catalog file skipped: not a valid DDO');
      return null;
    }
    return parsed.data;
  }
}
