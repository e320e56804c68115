import fs from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { isSupervisorAlive, readState } from './state';

const POLL_MS = 150;
const CHUNK = 64 * 1024;

/** True once the step's supervisor recorded its exit, or died without doing so (nothing will write any more). */
function stepEnded(stateFile: string): boolean {
  const s = readState(stateFile);
  return s !== null && (s.status === 'exited' || !isSupervisorAlive(s.supervisorPid));
}

async function* tail(file: string, stateFile: string, signal?: AbortSignal, abandoned?: () => boolean): AsyncGenerator<Buffer> {
  let pos = 0;
  const buf = Buffer.alloc(CHUNK);
  for (;;) {
    // Read the end state before the bytes, so the last bytes written before exit are never missed.
    const ended = stepEnded(stateFile);
    let n = 0;
    try {
      const fd = fs.openSync(file, 'r');
      try {
        n = fs.readSync(fd, buf, 0, CHUNK, pos);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      n = 0; // not created yet
    }
    if (n > 0) {
      pos += n;
      yield Buffer.from(buf.subarray(0, n));
      continue;
    }
    if (ended || signal?.aborted || abandoned?.()) return;
    await sleep(POLL_MS, undefined, { signal }).catch(() => undefined); // aborted: the loop returns
  }
}

/**
 * The step's log: what is there now, or (follow) also what it appends until the step ends, or until
 * `abandoned` says the step will never run.
 */
export function streamLog(file: string, stateFile: string, opts: { follow: boolean; signal?: AbortSignal; abandoned?: () => boolean }): Readable {
  if (!opts.follow) return fs.existsSync(file) ? fs.createReadStream(file) : Readable.from([]);
  return Readable.from(tail(file, stateFile, opts.signal, opts.abandoned), { objectMode: false });
}
