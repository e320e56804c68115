import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { NotFoundError, RangeNotSatisfiableError } from '../../src/domain/errors';
import type { ResultEntry } from '../../src/domain/job';
import { LocalResultStore, sanitizeFilename } from '../../src/storage/local';
import type { ResultSource } from '../../src/storage/store';

const source = (filename: string, content: string, type: ResultEntry['type'] = 'output'): ResultSource => ({
  filename,
  type,
  open: () => Readable.from([Buffer.from(content)]),
});
const JOB = 'a'.repeat(32);

describe('LocalResultStore', () => {
  let dir: string;
  let now: number;
  let store: LocalResultStore;
  const later = () => now + 3600_000;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-results-'));
    now = Date.now();
    store = new LocalResultStore(dir, () => now);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('when files are saved, then the results list sizes and orders them and each file reads back', async () => {
    const results = await store.save(JOB, '0xABC', [source('out.txt', 'hello'), source('algorithm.log', 'log line\n', 'algorithmLog')], later());
    expect(results).toEqual([
      { filename: 'out.txt', filesize: 5, type: 'output' },
      { filename: 'algorithm.log', filesize: 9, type: 'algorithmLog' },
    ]);
    const stored = await store.get(JOB);
    expect(stored).toMatchObject({ jobId: JOB, owner: '0xabc', results, removed: false, expireTimestamp: Math.floor(later() / 1000) });
    const opened = await store.open(JOB, 'out.txt');
    expect(opened.length).toBe(5);
    expect(await text(opened.stream)).toBe('hello');
  });

  it('when a file name tries to leave the job directory, then only its base name is kept', async () => {
    const results = await store.save(JOB, '0xabc', [source('../../etc/passwd', 'x'), source('..', 'y'), source('a\\b\u0001.txt', 'z')], later());
    expect(results.map((r) => r.filename)).toEqual(['passwd', 'file', 'b_.txt']);
    expect(fs.existsSync(path.join(dir, 'results', JOB, 'files', 'passwd'))).toBe(true);
    expect(sanitizeFilename('/abs/path/x.csv')).toBe('x.csv');
  });

  it('when two files share a name, then the second gets a distinct one', async () => {
    const results = await store.save(JOB, '0xabc', [source('algorithm.log', 'out', 'output'), source('algorithm.log', 'log', 'algorithmLog')], later());
    expect(results.map((r) => r.filename)).toEqual(['algorithm.log', 'algorithm-1.log']);
  });

  it('when a byte range is asked, then only those bytes are served', async () => {
    await store.save(JOB, '0xabc', [source('out.txt', '0123456789')], later());
    const opened = await store.open(JOB, 'out.txt', { start: 2, end: 5 });
    expect(opened).toMatchObject({ length: 4, totalSize: 10, range: { start: 2, end: 5 } });
    expect(await text(opened.stream)).toBe('2345');
    const tail = await store.open(JOB, 'out.txt', { start: 7, end: 100 });
    expect(tail.range).toEqual({ start: 7, end: 9 });
    expect(await text(tail.stream)).toBe('789');
  });

  it('when a range starts past the end, then it is refused as not satisfiable', async () => {
    await store.save(JOB, '0xabc', [source('out.txt', '0123456789')], later());
    await expect(store.open(JOB, 'out.txt', { start: 10 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
  });

  it('when a later attempt saves again, then it replaces the earlier files entirely', async () => {
    await store.save(JOB, '0xabc', [source('first.txt', 'one'), source('shared.txt', 'old')], later());
    const results = await store.save(JOB, '0xabc', [source('shared.txt', 'new!')], later());
    expect(results).toEqual([{ filename: 'shared.txt', filesize: 4, type: 'output' }]);
    await expect(store.open(JOB, 'first.txt')).rejects.toBeInstanceOf(NotFoundError);
    expect(await text((await store.open(JOB, 'shared.txt')).stream)).toBe('new!');
    expect(fs.readdirSync(path.join(dir, 'results')).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('when a source fails mid-way, then the earlier results stay as they were', async () => {
    await store.save(JOB, '0xabc', [source('out.txt', 'good')], later());
    const failing: ResultSource = {
      filename: 'out.txt',
      type: 'output',
      open: () =>
        Readable.from(
          (function* () {
            yield Buffer.from('par');
            throw new Error('disk gone');
          })(),
        ),
    };
    await expect(store.save(JOB, '0xabc', [failing], later())).rejects.toThrow('disk gone');
    expect(await text((await store.open(JOB, 'out.txt')).stream)).toBe('good');
  });

  it('when the results have expired, then they are not served, and a sweep deletes them', async () => {
    await store.save(JOB, '0xabc', [source('out.txt', 'x')], now + 1000);
    now += 2000;
    await expect(store.open(JOB, 'out.txt')).rejects.toMatchObject({ code: 'result_expired' });
    expect(await store.sweepExpired(now)).toBe(1);
    expect(await store.sweepExpired(now)).toBe(0);
    expect(fs.existsSync(path.join(dir, 'results', JOB, 'files'))).toBe(false);
    expect((await store.get(JOB))?.removed).toBe(true);
  });

  it('when results are removed, then the files are gone at once, get says removed, and removing again is fine', async () => {
    await store.save(JOB, '0xabc', [source('out.txt', 'x')], later());
    await store.remove(JOB);
    await store.remove(JOB);
    await expect(store.open(JOB, 'out.txt')).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.get(JOB))?.removed).toBe(true);
    expect(fs.existsSync(path.join(dir, 'results', JOB, 'files'))).toBe(false);
  });

  it('when a job was removed before its results are saved, then they are not stored', async () => {
    await store.remove(JOB);
    expect(await store.save(JOB, '0xabc', [source('out.txt', 'x')], later())).toEqual([]);
    await expect(store.open(JOB, 'out.txt')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('when nothing was stored, then get is null and open is not found', async () => {
    expect(await store.get(JOB)).toBeNull();
    await expect(store.open(JOB, 'out.txt')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.open('../../etc', 'passwd')).rejects.toBeInstanceOf(NotFoundError);
  });
});
