import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileConsumedOrderStore } from '../../src/storage/consumed-orders';

describe('FileConsumedOrderStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-orders-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const by = (jobId: string) => ({ jobId, did: 'did:op:1', serviceId: 'compute', at: 1 });
  const tx = `0x${'ab'.repeat(32)}`;

  it('when 50 jobs claim one order at once, also through two stores on one directory (two API replicas), then exactly one wins and the others learn which job', async () => {
    const stores = [new FileConsumedOrderStore(dir), new FileConsumedOrderStore(dir)];
    const outcomes = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % 2]!.claim(tx, by(`job${i}`))));
    const winners = outcomes.map((o, i) => (o === null ? `job${i}` : null)).filter((w) => w !== null);
    expect(winners).toHaveLength(1);
    for (const o of outcomes) if (o) expect(o.jobId).toBe(winners[0]);
    expect(fs.readdirSync(path.join(dir, 'consumed-orders'))).toHaveLength(1); // no temporary file left
  });

  it('when the transaction id differs only in case, then it is the same order', async () => {
    const store = new FileConsumedOrderStore(dir);
    expect(await store.claim(tx, by('a'))).toBeNull();
    expect(await store.claim(tx.toUpperCase().replace('0X', '0x'), by('b'))).toMatchObject({ jobId: 'a' });
  });

  it("when a job's claim is released, then the order is free again; another job's release changes nothing", async () => {
    const store = new FileConsumedOrderStore(dir);
    expect(await store.claim(tx, by('a'))).toBeNull();
    await store.release(tx, 'b');
    expect(await store.claim(tx, by('b'))).toMatchObject({ jobId: 'a' });
    await store.release(tx, 'a');
    expect(await store.claim(tx, by('b'))).toBeNull();
    // durable: a new store (a restarted API) sees the claim
    expect(await new FileConsumedOrderStore(dir).claim(tx, by('c'))).toMatchObject({ jobId: 'b' });
  });
});
