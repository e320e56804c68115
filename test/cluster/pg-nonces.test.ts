import { Client } from 'pg';
import { migrateDatabase, PgNonceStore } from '../../src/storage/pg-nonces';
import type { PostgresInstance } from '../../tools/temporal-cluster';
import { databaseUrlOf, removeScratch, scratchDir, startTestPostgres } from '../helpers/cluster';

let dir: string;
let pg: PostgresInstance;
let url: string;
const stores: PgNonceStore[] = [];

beforeAll(async () => {
  dir = scratchDir('pg');
  pg = await startTestPostgres(dir);
  url = databaseUrlOf(pg);
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await pg?.stop();
  removeScratch(dir);
});

const store = (): PgNonceStore => {
  const s = new PgNonceStore(url);
  stores.push(s);
  return s;
};
let n = 0;
const address = (): string => `0x${(++n).toString(16).padStart(40, 'a')}`;

describe('PgNonceStore on PostgreSQL', () => {
  test('before the migrations, a nonce check says what to run', async () => {
    await expect(store().get(address())).rejects.toThrow(/nonce table is missing: run the database migrations/);
  });

  test('migrations create the table once, and run again change nothing', async () => {
    await migrateDatabase(url);
    await migrateDatabase(url);
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>('SELECT name FROM c2d_migrations ORDER BY id');
      expect(rows.map((r) => r.name)).toEqual(['1765000000000_nonces']);
    } finally {
      await client.end();
    }
  });

  test('accepts only greater nonces, per address, integers beyond 2^53 and fractions compared exactly', async () => {
    const s = store();
    const a = address();
    const b = address();
    await expect(s.get(a)).resolves.toBeNull();
    await expect(s.advance(a, '5')).resolves.toBe(true);
    await expect(s.advance(a, '5')).resolves.toBe(false);
    await expect(s.advance(a, '4')).resolves.toBe(false);
    await expect(s.advance(a, '5.5')).resolves.toBe(true);
    await expect(s.get(a.toUpperCase().replace('0X', '0x'))).resolves.toBe('5.5');
    await expect(s.advance(a, '1733400000000')).resolves.toBe(true);
    await expect(s.advance(a, '9007199254740993')).resolves.toBe(true);
    await expect(s.advance(a, '9007199254740992')).resolves.toBe(false); // equal as doubles, not as numbers
    await expect(s.advance(a, '9007199254740994')).resolves.toBe(true);
    await expect(s.get(b)).resolves.toBeNull();
    await expect(s.advance(b, '1')).resolves.toBe(true);
    await expect(s.advance(a, 'abc')).rejects.toMatchObject({ name: 'ValidationError' });
    await expect(s.advance(a, '-1')).rejects.toMatchObject({ name: 'ValidationError' });
    await expect(s.advance('0x123', '7')).rejects.toMatchObject({ name: 'ValidationError' });
  });

  test('the same nonce raced from two clients (two API replicas) is accepted exactly once', async () => {
    const api1 = store();
    const api2 = store();
    for (let round = 0; round < 50; round++) {
      const a = address();
      const nonce = String(Date.now() + round);
      const outcomes = await Promise.all([api1.advance(a, nonce), api2.advance(a, nonce), api1.advance(a, nonce), api2.advance(a, nonce)]);
      expect(outcomes.filter(Boolean)).toHaveLength(1);
      await expect(api2.get(a)).resolves.toBe(nonce);
    }
  });

  test('racing increasing nonces: the stored one ends as the greatest, whatever the order', async () => {
    const api1 = store();
    const api2 = store();
    const a = address();
    const nonces = Array.from({ length: 40 }, (_, i) => String(1000 + i));
    const outcomes = await Promise.all(nonces.map((nonce, i) => (i % 2 ? api1 : api2).advance(a, nonce)));
    expect(outcomes.filter(Boolean).length).toBeGreaterThanOrEqual(1);
    await expect(api1.get(a)).resolves.toBe('1039');
  });
});
