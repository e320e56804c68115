import fs from 'node:fs/promises';
import path from 'node:path';
import { type Ddo, ddoSchema } from '../domain/ddo';
import type { Logger } from '../domain/logger';
import { SigningKey } from 'ethers';
import { writeFileAtomic } from '../storage/atomic-file';
import { filesBinding } from './decryptor';
import { decrypt, encrypt } from './ecies';
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

/** One service of a catalog file, as `c2d catalog rebind` sees it. */
export interface CatalogServiceBinding {
  file: string;
  did: string;
  serviceId: string;
  /** bound: names its asset; unbound: decrypts here but names none (refused until rebound); foreign: not encrypted for this provider */
  state: 'bound' | 'unbound' | 'foreign';
}

interface RawCatalogDdo {
  id: string;
  services: { id: string; files: string }[];
}

function decryptList(privateKey: string, files: string): Record<string, unknown> | null {
  try {
    const json: unknown = JSON.parse(decrypt(privateKey, Buffer.from(files.replace(/^0x/, ''), 'hex')).toString('utf8'));
    return typeof json === 'object' && json !== null && Array.isArray((json as { files?: unknown }).files) ? (json as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The catalog's `*.json` files that are DDOs, raw (rebinding keeps every other field as it is). */
async function rawCatalog(dir: string): Promise<{ file: string; json: Record<string, unknown>; ddo: RawCatalogDdo }[]> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: { file: string; json: Record<string, unknown>; ddo: RawCatalogDdo }[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    let json: unknown;
    try {
      json = JSON.parse(await fs.readFile(file, 'utf8'));
    } catch {
      continue; // not readable JSON: the resolver skips it too
    }
    if (!ddoSchema.safeParse(json).success) continue;
    out.push({ file, json: json as Record<string, unknown>, ddo: json as RawCatalogDdo });
  }
  return out;
}

/** Which services of the catalog hold ciphertext bound to their asset (the API warns about the others at start). */
export async function catalogBindings(dir: string, providerPrivateKey: string): Promise<CatalogServiceBinding[]> {
  const found: CatalogServiceBinding[] = [];
  for (const { file, ddo } of await rawCatalog(dir)) {
    for (const service of ddo.services) {
      const list = decryptList(providerPrivateKey, service.files);
      const state = list === null ? 'foreign' : filesBinding(list) === null ? 'unbound' : 'bound';
      found.push({ file, did: ddo.id, serviceId: service.id, state });
    }
  }
  return found;
}

/**
 * `c2d catalog rebind`: re-encrypts every unbound file list of the catalog with its DDO's `did` and the
 * service's `serviceId` added, so the provider accepts it again (for that asset and service only). Files
 * are replaced atomically; lists encrypted for another provider are left alone (that provider's operator
 * rebinds them). Returns what was rebound (or, with `dryRun`, what would be).
 */
export async function rebindCatalog(dir: string, providerPrivateKey: string, opts: { dryRun?: boolean } = {}): Promise<CatalogServiceBinding[]> {
  const publicKey = new SigningKey(providerPrivateKey.startsWith('0x') ? providerPrivateKey : `0x${providerPrivateKey}`).publicKey;
  const rebound: CatalogServiceBinding[] = [];
  for (const { file, json, ddo } of await rawCatalog(dir)) {
    let changed = false;
    for (const service of ddo.services) {
      const list = decryptList(providerPrivateKey, service.files);
      if (list === null || filesBinding(list) !== null) continue;
      const bound = { ...list, did: ddo.id, serviceId: service.id };
      service.files = `0x${encrypt(publicKey, Buffer.from(JSON.stringify(bound), 'utf8')).toString('hex')}`;
      rebound.push({ file, did: ddo.id, serviceId: service.id, state: 'bound' });
      changed = true;
    }
    if (changed && !opts.dryRun) {
      const { mode } = await fs.stat(file);
      await writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`, mode & 0o777);
    }
  }
  return rebound;
}
