import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NFT_TABLE } from '../../src/compute/process/network';
import { freePort, startDevServer } from '../../tools/temporal-server';
import { newStateFile, type TestState } from './state';

/** One Temporal dev server for the whole run, on ports of its own (a dev stack may be up beside it). */
export default async function globalSetup(): Promise<void> {
  // Sandboxed steps run compiled programs from dist/ (as in production): build them (incremental, type errors reported by `npm test`).
  spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { stdio: 'ignore' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-test-'));
  const port = await freePort();
  const uiPort = await freePort();
  const dbFile = path.join(dir, 'temporal.db');
  const server = await startDevServer({ port, uiPort, dbFile, namespace: 'default', headless: true, logFile: path.join(dir, 'temporal.log') });
  server.unref();
  // the network tests' workers install the jobs' firewall table (src/compute/process/network.ts): teardown removes it unless it was there
  const nftTableBefore = process.getuid?.() === 0 && spawnSync('nft', ['list', 'table', 'inet', NFT_TABLE], { stdio: 'ignore' }).status === 0;
  const ipForwardBefore = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  const state: TestState = { temporalAddress: `127.0.0.1:${port}`, temporalPid: server.pid ?? 0, dir, dbFile, port, uiPort, nftTableBefore, ipForwardBefore };
  const file = newStateFile();
  fs.writeFileSync(file, JSON.stringify(state));
  process.env.C2D_TEST_STATE = file;
}
