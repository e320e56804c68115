import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A maker of fresh directories under the system's temp dir, all removed once the file's tests are done (call at top level). */
export function scratchDirs(prefix: string): () => string {
  const made: string[] = [];
  afterAll(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  return () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}
