import { execFile } from 'node:child_process';
import path from 'node:path';
import { Pool } from 'pg';
import { ValidationError } from '../domain/errors';
import type { NonceStore } from './nonces';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** The clone's root, compiled (dist/src/storage) or not (src/storage). */
const root = path.resolve(__dirname, __filename.endsWith('.ts') ? '../..' : '../../..');
export const MIGRATIONS_DIR = path.join(root, 'migrations');

/**
 * Applies the provider's migrations (migrations/*.sql) with node-pg-migrate, the ecosystem's migration
 * tool, run as its own CLI (it is an ES module; this program is CommonJS). Idempotent, and safe from
 * several processes at once: the tool takes an advisory lock.
 */
export function migrateDatabase(databaseUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const bin = path.join(path.dirname(require.resolve('node-pg-migrate/package.json')), 'bin/node-pg-migrate.js');
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      [bin, 'up', '--migrations-dir', MIGRATIONS_DIR, '--database-url-var', 'C2D_MIGRATE_DATABASE_URL', '--no-verbose', '--migrations-table', 'c2d_migrations'],
      { cwd: root, env: { ...env, C2D_MIGRATE_DATABASE_URL: databaseUrl } },
      (err, _stdout, stderr) => (err ? reject(new Error(`database migration failed: ${stderr.trim() || err.message}`)) : resolve()),
    ),
  );
}

/**
 * Nonces in PostgreSQL, shared by every API replica. `advance` is one statement, an atomic
 * compare-and-set: INSERT … ON CONFLICT DO UPDATE … WHERE stored < new. Of two requests with the same
 * nonce, on any replicas, the second waits on the row the first wrote and then finds its nonce no
 * longer greater: exactly one is accepted. Nonces compare as exact decimals (`numeric`): integers as the
 * file store compares them (BigInt), fractions without floating-point rounding.
 */
export class PgNonceStore implements NonceStore {
  private readonly pool: Pool;

  constructor(databaseUrl: string, opts: { max?: number } = {}) {
    this.pool = new Pool({ connectionString: databaseUrl, max: opts.max ?? 10 });
    // an idle client losing its connection (database restart) must not crash the process; the next query reconnects
    this.pool.on('error', () => undefined);
  }

  async get(address: string): Promise<string | null> {
    const { rows } = await this.query<{ nonce: string }>('SELECT nonce FROM c2d_nonces WHERE address = $1', [requireAddress(address)]);
    return rows[0]?.nonce ?? null;
  }

  async advance(address: string, nonce: string): Promise<boolean> {
    const key = requireAddress(address);
    if (!DECIMAL.test(nonce)) throw new ValidationError({ nonce: ['must be a non-negative number'] });
    const { rowCount } = await this.query(
      `INSERT INTO c2d_nonces (address, nonce, nonce_value) VALUES ($1, $2::text, $2::text::numeric)
       ON CONFLICT (address) DO UPDATE SET nonce = EXCLUDED.nonce, nonce_value = EXCLUDED.nonce_value, updated_at = now()
       WHERE c2d_nonces.nonce_value < EXCLUDED.nonce_value`,
      [key, nonce],
    );
    return rowCount === 1;
  }

  private async query<R extends Record<string, unknown>>(sql: string, params: unknown[]) {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (err) {
      if ((err as { code?: string }).code === '42P01')
        throw new Error('the nonce table is missing: run the database migrations (npm run db:migrate with C2D_DATABASE_URL set)');
      throw err;
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

function requireAddress(address: string): string {
  if (!ADDRESS.test(address)) throw new ValidationError({ consumerAddress: ['must be a 0x address'] });
  return address.toLowerCase();
}
