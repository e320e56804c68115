import { PassThrough, Readable } from 'node:stream';
import { followLiveLog, type JobOver, type LiveLogStore, shipLiveLog } from '../../src/storage/live-logs';

const JOB = 'a'.repeat(32);

/** The store's contract in memory (the S3 one is tested against a real server in test/cluster). */
function memoryStore(): LiveLogStore & { chunks: Map<number, Buffer>; ended: number | null } {
  const chunks = new Map<number, Buffer>();
  const store = {
    chunks,
    ended: null as number | null,
    put: (_: string, offset: number, chunk: Buffer) => Promise.resolve(void chunks.set(offset, Buffer.from(chunk))),
    end: (_: string, length: number) => Promise.resolve(void (store.ended = length)),
    list: (_: string, from: number) =>
      Promise.resolve({
        chunks: [...chunks.entries()]
          .filter(([o]) => o >= from)
          .sort(([a], [b]) => a - b)
          .map(([offset, b]) => ({ offset, length: b.length })),
        end: store.ended,
      }),
    read: (_: string, c: { offset: number }) => Promise.resolve(chunks.get(c.offset) ?? Buffer.alloc(0)),
    remove: () => Promise.resolve(void chunks.clear()),
  };
  return store;
}

const running: JobOver = () => Promise.resolve(null);
/** the job is over; its stored log (when there is one) served from the byte asked for */
const overWith =
  (stored: string | null, asked: number[] = []): JobOver =>
  (from) => {
    asked.push(from);
    return Promise.resolve({ rest: stored === null ? null : Readable.from([Buffer.from(stored).subarray(from)]) });
  };

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r as AsyncIterable<Buffer>) s += c.toString();
  return s;
}

describe('live logs through a shared store', () => {
  test('when a step writes over time, then the shipper stores it in order and a follower reads every byte once, then ends', async () => {
    const store = memoryStore();
    const log = new PassThrough();
    const shipped = shipLiveLog(store, JOB, log, { intervalMs: 0 });
    const follower = followLiveLog(store, JOB, running, new AbortController().signal, 10);
    const read = text(follower);
    for (const line of ['one\n', 'two\n', 'three\n']) {
      log.write(line);
      await new Promise((r) => setTimeout(r, 30));
    }
    log.end();
    expect(await shipped).toBe(14);
    expect(await read).toBe('one\ntwo\nthree\n');
    expect(store.ended).toBe(14);
  });

  test('when a retried step ships its log again from the start, then only the bytes not shipped before are stored', async () => {
    const store = memoryStore();
    await store.put(JOB, 0, Buffer.from('first '));
    const again = Readable.from([Buffer.from('fir'), Buffer.from('st second '), Buffer.from('third')]);
    expect(await shipLiveLog(store, JOB, again, { intervalMs: 0 })).toBe(18);
    expect(await text(followLiveLog(store, JOB, running, new AbortController().signal, 10))).toBe('first second third');
  });

  test('when the live stream misses the end of the log, then the whole log read once more ships the rest, nothing twice', async () => {
    const store = memoryStore();
    const live = Readable.from([Buffer.from('one\n'), Buffer.from('two\n')]);
    const whole = (): Readable => Readable.from([Buffer.from('one\ntwo\nthr'), Buffer.from('ee\n')]);
    expect(await shipLiveLog(store, JOB, live, { intervalMs: 60_000, rest: whole })).toBe(14);
    expect(await text(followLiveLog(store, JOB, running, new AbortController().signal, 10))).toBe('one\ntwo\nthree\n');
  });

  test('when a chunk is missing in the middle, then the follower waits for it instead of skipping it', async () => {
    const store = memoryStore();
    await store.put(JOB, 0, Buffer.from('a'));
    await store.put(JOB, 2, Buffer.from('c'));
    await store.end(JOB, 3);
    const read = text(followLiveLog(store, JOB, running, new AbortController().signal, 10));
    await new Promise((r) => setTimeout(r, 50));
    await store.put(JOB, 1, Buffer.from('b'));
    expect(await read).toBe('abc');
  });

  test('when the job ended without an end marker (its worker is gone), then the follower ends after what was shipped', async () => {
    const store = memoryStore();
    await store.put(JOB, 0, Buffer.from('partial'));
    expect(await text(followLiveLog(store, JOB, overWith(null), new AbortController().signal, 10))).toBe('partial');
  });

  test('when the job is over before the follower read the last chunks (cleanup removed them), then it ends with the stored log past what it sent', async () => {
    const store = memoryStore();
    await store.put(JOB, 0, Buffer.from('tick 1\n'));
    let polls = 0;
    const asked: number[] = [];
    const stored = overWith('tick 1\ntick 2\ntick 3\n', asked);
    // first poll: running, one chunk there; then the job is over and its chunks are gone, end marker and all
    const over: JobOver = (from) => (polls++ === 0 ? Promise.resolve(null) : (store.chunks.clear(), stored(from)));
    expect(await text(followLiveLog(store, JOB, over, new AbortController().signal, 10))).toBe('tick 1\ntick 2\ntick 3\n');
    expect(asked).toEqual([7]);
  });

  test('when the consumer leaves, then following stops', async () => {
    const store = memoryStore();
    const ac = new AbortController();
    const read = text(followLiveLog(store, JOB, running, ac.signal, 10));
    await store.put(JOB, 0, Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    expect(await read).toBe('x');
  });
});
