import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, startDevServer } from '../tools/temporal-server';

/** A benchmark's own Temporal dev server (the flags `npm run temporal` uses) in a fresh temp dir `prefix…`, headless. */
export async function benchTemporal(prefix: string): Promise<{ dir: string; port: number; server: ChildProcess }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const port = await freePort();
  const server = await startDevServer({
    port,
    uiPort: await freePort(),
    dbFile: path.join(dir, 'temporal.db'),
    namespace: 'default',
    headless: true,
    logFile: path.join(dir, 'temporal.log'),
  });
  return { dir, port, server };
}
