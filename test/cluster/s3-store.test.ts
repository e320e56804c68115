import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { ResultSource } from '../../src/storage/store';
import { S3ResultStore, type S3Settings } from '../../src/storage/s3';
import { removeScratch, scratchDir, startTestS3 } from '../helpers/cluster';
import type { S3Server } from '../../tools/s3-server';

const BUCKET = 'c2d-results';
let dir: string;
let server: S3Server;
let settings: S3Settings;

beforeAll(async () => {
  dir = scratchDir('s3');
  server = await startTestS3(dir, [BUCKET]);
  settings = { endpoint: server.endpoint, bucket: BUCKET, region: server.region, credentials: server.credentials, prefix: 'test/' };
});

afterAll(async () => {
  await server?.stop();
  removeScratch(dir);
});

const source = (filename: string, data: Buffer | string, type: ResultSource['type'] = 'output'): ResultSource => ({
  filename,
  type,
  open: () => Readable.from([Buffer.from(data)]),
});

async function text(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

const jobId = (): string => `job-${crypto.randomBytes(6).toString('hex')}`;
const hour = 3600_000;

async function keysOf(store: S3ResultStore, id: string): Promise<string[]> {
  const out = await store.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `test/results/${id}/` }));
  return (out.Contents ?? []).map((o) => (o.Key ?? '').slice(`test/results/${id}/`.length)).sort();
}

describe('S3ResultStore against versitygw', () => {
  test('save, get and open whole files and ranges', async () => {
    const store = new S3ResultStore(settings);
    const id = jobId();
    const results = await store.save(
      id,
      '0xABCDEF0000000000000000000000000000000001',
      [source('../out.txt', 'hello world'), source('out.txt', 'second'), source('algorithm.log', 'log line\n', 'algorithmLog')],
      Date.now() + hour,
    );
    expect(results).toEqual([
      { filename: 'out.txt', filesize: 11, type: 'output' },
      { filename: 'out-1.txt', filesize: 6, type: 'output' },
      { filename: 'algorithm.log', filesize: 9, type: 'algorithmLog' },
    ]);
    const stored = await store.get(id);
    expect(stored).toEqual({ jobId: id, owner: '0xabcdef0000000000000000000000000000000001', results, expireTimestamp: expect.any(Number), removed: false });
    expect(Object.keys(stored ?? {})).not.toContain('attempt');

    const whole = await store.open(id, 'out.txt');
    expect(whole.length).toBe(11);
    expect(whole.totalSize).toBe(11);
    expect((await text(whole.stream)).toString()).toBe('hello world');

    const part = await store.open(id, 'out.txt', { start: 6 });
    expect(part.range).toEqual({ start: 6, end: 10 });
    expect(part.length).toBe(5);
    expect((await text(part.stream)).toString()).toBe('world');
    const middle = await store.open(id, 'out.txt', { start: 2, end: 4 });
    expect((await text(middle.stream)).toString()).toBe('llo');

    await expect(store.open(id, 'out.txt', { start: 11 })).rejects.toMatchObject({ name: 'RangeNotSatisfiableError', totalSize: 11 });
    await expect(store.open(id, 'missing.txt')).rejects.toMatchObject({ name: 'NotFoundError', code: 'result_not_found' });
    await expect(store.get(jobId())).resolves.toBeNull();
    await expect(store.open('../etc', 'x')).rejects.toMatchObject({ name: 'NotFoundError' });
  });

  test('a large file goes up in parts and comes back byte for byte, ranges across part boundaries included', async () => {
    const store = new S3ResultStore(settings);
    const id = jobId();
    const data = crypto.randomBytes(17 * 1024 * 1024 + 123);
    const chunks = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    const [entry] = await store.save(id, '0x1', [{ filename: 'big.bin', type: 'output', open: () => Readable.from(chunks) }], Date.now() + hour);
    expect(entry?.filesize).toBe(data.length);
    expect((await text((await store.open(id, 'big.bin')).stream)).equals(data)).toBe(true);
    const start = 8 * 1024 * 1024 - 10;
    const ranged = await store.open(id, 'big.bin', { start, end: start + 19 });
    expect((await text(ranged.stream)).equals(data.subarray(start, start + 20))).toBe(true);
  });

  test('presigned downloads: the whole file, a Range of it, and nothing without the signature', async () => {
    const store = new S3ResultStore(settings);
    const id = jobId();
    await store.save(id, '0x1', [source('result.csv', 'a,b\n1,2\n')], Date.now() + hour);
    const url = await store.presignedUrl(id, 'result.csv', 60);
    expect(url).toContain('X-Amz-Signature=');

    const full = await fetch(url);
    expect(full.status).toBe(200);
    expect(await full.text()).toBe('a,b\n1,2\n');
    expect(full.headers.get('content-disposition')).toBe('attachment; filename="result.csv"');

    const ranged = await fetch(url, { headers: { Range: 'bytes=4-6' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe('bytes 4-6/8');
    expect(await ranged.text()).toBe('1,2');

    const unsigned = await fetch(url.split('?')[0] ?? '');
    expect(unsigned.status).toBe(403);
    const tampered = await fetch(url.replace(/X-Amz-Signature=[0-9a-f]/, (m) => `${m.slice(0, -1)}${m.endsWith('0') ? '1' : '0'}`));
    expect(tampered.status).toBe(403);
  });

  test('a second save replaces the first attempt: no file of it is served or kept', async () => {
    const store = new S3ResultStore(settings);
    const id = jobId();
    await store.save(id, '0x1', [source('first.txt', 'one'), source('shared.txt', 'old')], Date.now() + hour);
    const results = await store.save(id, '0x1', [source('shared.txt', 'new!')], Date.now() + hour);
    expect(results).toEqual([{ filename: 'shared.txt', filesize: 4, type: 'output' }]);
    expect((await text((await store.open(id, 'shared.txt')).stream)).toString()).toBe('new!');
    await expect(store.open(id, 'first.txt')).rejects.toMatchObject({ code: 'result_not_found' });
    const keys = await keysOf(store, id);
    expect(keys).toHaveLength(2);
    expect(keys).toContain('meta.json');
    expect(keys.find((k) => k !== 'meta.json')).toMatch(/^[0-9a-z]+-[0-9a-f]{12}\/shared\.txt$/);
  });

  test('remove deletes the files at once, keeps the job marked removed, and results never come back', async () => {
    const store = new S3ResultStore(settings);
    const id = jobId();
    await store.save(id, '0x1', [source('out.txt', 'secret output')], Date.now() + hour);
    await store.remove(id);
    await expect(store.get(id)).resolves.toMatchObject({ jobId: id, removed: true, results: [{ filename: 'out.txt' }] });
    await expect(store.open(id, 'out.txt')).rejects.toMatchObject({ code: 'result_not_found' });
    await expect(store.presignedUrl(id, 'out.txt')).rejects.toMatchObject({ code: 'result_not_found' });
    expect(await keysOf(store, id)).toEqual(['meta.json']);
    await store.remove(id); // idempotent
    await expect(store.save(id, '0x1', [source('out.txt', 'late retry')], Date.now() + hour)).resolves.toEqual([]);
    expect(await keysOf(store, id)).toEqual(['meta.json']);
    // removing a job that never stored anything leaves a removed marker, so a late save stores nothing either
    const never = jobId();
    await store.remove(never);
    await expect(store.save(never, '0x1', [source('x', 'y')], Date.now() + hour)).resolves.toEqual([]);
    await expect(store.get(never)).resolves.toMatchObject({ removed: true, results: [] });
  });

  test('a removal from another process while a save is under way wins', async () => {
    // two stores = two processes: no shared lock, only the bucket's conditional writes between them
    const worker = new S3ResultStore(settings);
    const api = new S3ResultStore(settings);
    for (let i = 0; i < 5; i++) {
      const id = jobId();
      await worker.save(id, '0x1', [source('out.txt', 'first')], Date.now() + hour);
      const big = crypto.randomBytes(2 * 1024 * 1024);
      await Promise.all([worker.save(id, '0x1', [source('out.txt', big)], Date.now() + hour), api.remove(id)]);
      await expect(api.get(id)).resolves.toMatchObject({ removed: true });
      await expect(worker.open(id, 'out.txt')).rejects.toMatchObject({ code: 'result_not_found' });
      expect(await keysOf(api, id)).toEqual(['meta.json']);
    }
  });

  test('a save whose upload outlasts a removal by another process stores nothing', async () => {
    const worker = new S3ResultStore(settings);
    const api = new S3ResultStore(settings);
    const id = jobId();
    await worker.save(id, '0x1', [source('out.txt', 'first')], Date.now() + hour);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    async function* slow(): AsyncGenerator<Buffer> {
      yield Buffer.from('second ');
      await gate;
      yield Buffer.from('attempt');
    }
    const saving = worker.save(id, '0x1', [{ filename: 'out.txt', type: 'output', open: () => Readable.from(slow()) }], Date.now() + hour);
    await api.remove(id);
    release();
    await expect(saving).resolves.toEqual([]);
    await expect(worker.get(id)).resolves.toMatchObject({ removed: true });
    expect(await keysOf(api, id)).toEqual(['meta.json']);
  });

  test('expiry: past storageExpiry nothing is served, and the sweep deletes the files once', async () => {
    let now = Date.now();
    const store = new S3ResultStore(settings, () => now);
    const id = jobId();
    const kept = jobId();
    await store.save(id, '0x1', [source('out.txt', 'short-lived')], now + 60_000);
    await store.save(kept, '0x1', [source('out.txt', 'long-lived')], now + 10 * hour);
    expect((await text((await store.open(id, 'out.txt')).stream)).toString()).toBe('short-lived');
    const url = await store.presignedUrl(id, 'out.txt', 3600);
    expect(Number(new URL(url).searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(60);

    now += 120_000;
    await expect(store.open(id, 'out.txt')).rejects.toMatchObject({ code: 'result_expired' });
    const swept = await store.sweepExpired(now);
    expect(swept).toBe(1);
    await expect(store.get(id)).resolves.toMatchObject({ removed: true });
    expect(await keysOf(store, id)).toEqual(['meta.json']);
    expect((await text((await store.open(kept, 'out.txt')).stream)).toString()).toBe('long-lived');
    expect(await store.sweepExpired(now)).toBe(0);
  });
});
