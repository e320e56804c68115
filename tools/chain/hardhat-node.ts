import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../src/domain/logger';

export interface HardhatNode {
  rpcUrl: string;
  chainId: number;
  /** the node's process (for tests that pause or kill it) */
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface HardhatNodeOptions {
  host?: string;
  port: number;
  chainId?: number;
  logger?: Logger;
  /** ms to wait for the node to listen */
  startTimeoutMs?: number;
}

/** Hardhat's well-known dev accounts: 20 funded keys from this phrase (never for real funds). */
export const HARDHAT_MNEMONIC = 'test test test test test test test test test test test junk';

/**
 * Starts `hardhat node` (hardhat 2, offline, its EVM engine is a native binary in the package) as a
 * child process. A child rather than in-process: the node serves even while our event loop is busy.
 */
export async function startHardhatNode(opts: HardhatNodeOptions): Promise<HardhatNode> {
  const host = opts.host ?? '127.0.0.1';
  const chainId = opts.chainId ?? 8996;
  // hardhat insists on a config file; ours only pins the chain id and lives outside the project.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-hardhat-'));
  const config = path.join(dir, 'hardhat.config.js');
  // A reverting transaction is mined with status 0, as on a real chain (hardhat's default refuses it).
  // Blocks in the same second share its timestamp, so chain time keeps to the clock (by default every
  // block adds a second: a busy dev chain runs minutes ahead, and order ages and fee expiry go wrong).
  const network = { chainId, accounts: { mnemonic: HARDHAT_MNEMONIC }, throwOnTransactionFailures: false, allowBlocksWithSameTimestamp: true };
  fs.writeFileSync(config, `module.exports = ${JSON.stringify({ networks: { hardhat: network } })};\n`);
  const cli = require.resolve('hardhat/internal/cli/cli.js');
  const child = spawn(process.execPath, [cli, '--config', config, 'node', '--hostname', host, '--port', String(opts.port)], {
    // hardhat refuses to run unless it resolves itself from the working directory
    cwd: path.resolve(path.dirname(cli), '../../../..'),
    env: { ...process.env, CI: 'true', HARDHAT_DISABLE_TELEMETRY_PROMPT: 'true', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    cleanup();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`hardhat node did not start within ${opts.startTimeoutMs ?? 30_000} ms: ${stderr}`)),
        opts.startTimeoutMs ?? 30_000,
      );
      let out = '';
      // stdout is read to the end of the node's life: an undrained pipe would stall it (it logs every call).
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Started HTTP')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`hardhat node exited (${code ?? signal}) before listening: ${stderr}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  child.stdout.removeAllListeners('data');
  child.stdout.resume();
  cleanup(); // the node has read its config
  opts.logger?.info({ host, port: opts.port, chainId }, 'hardhat node started');
  return { rpcUrl: `http://${host}:${opts.port}`, chainId, process: child, stop };
}
