import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { type CatalogAssetSpec, publishToCatalog } from '../../src/client/catalog-publisher';
import { ProviderClient } from '../../src/client/provider-client';
import type { EnvironmentInput } from '../../src/domain/environment';
import { freePort, waitForPort } from '../../src/entrypoints/temporal-server';
import { testState } from './state';

const dist = path.resolve(__dirname, '../../dist/src/entrypoints');

/** A whole provider (worker + API as separate processes, as in production) on the run's Temporal server. */
export interface Stack {
  baseUrl: string;
  dataDir: string;
  catalogDir: string;
  chainId: number;
  env: Record<string, string>;
  providerWallet: Wallet;
  worker: ChildProcess;
  api: ChildProcess;
  /** a consumer with a fresh wallet */
  consumer(): ProviderClient;
  publish(client: ProviderClient, spec: Omit<CatalogAssetSpec, 'allow'> & { allow?: string[] }): Promise<string>;
  startWorker(): Promise<ChildProcess>;
  /** what the worker and API printed (for debugging a failed test) */
  output(): string;
  stop(): Promise<void>;
}

function spawnEntrypoint(name: string, env: Record<string, string>, out: string[]): ChildProcess {
  const child = spawn(process.execPath, [path.join(dist, `${name}.js`)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => out.push(`[${name}] ${d.toString()}`));
  child.stderr?.on('data', (d: Buffer) => out.push(`[${name}] ${d.toString()}`));
  return child;
}

export async function startStack(opts: { environments: EnvironmentInput[]; extraEnv?: Record<string, string> }): Promise<Stack> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-stack-'));
  fs.chmodSync(dataDir, 0o755); // the sandbox user must be able to reach the job dirs below it
  const envFile = path.join(dataDir, 'environments.json');
  fs.writeFileSync(envFile, JSON.stringify(opts.environments));
  const providerWallet = new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`);
  const port = await freePort();
  const chainId = 8996;
  const env: Record<string, string> = {
    C2D_TEMPORAL_ADDRESS: testState().temporalAddress,
    C2D_TASK_QUEUE: `c2d-test-${crypto.randomBytes(4).toString('hex')}`,
    C2D_DATA_DIR: dataDir,
    C2D_API_PORT: String(port),
    C2D_ENVIRONMENTS_FILE: envFile,
    C2D_PROVIDER_PRIVATE_KEY: providerWallet.privateKey,
    C2D_CHAIN_ID: String(chainId),
    C2D_LOG_LEVEL: 'warn',
    ...opts.extraEnv,
  };
  const out: string[] = [];
  const stack: Stack = {
    baseUrl: `http://127.0.0.1:${port}`,
    dataDir,
    catalogDir: path.join(dataDir, 'catalog'),
    chainId,
    env,
    providerWallet,
    worker: spawnEntrypoint('worker', env, out),
    api: spawnEntrypoint('api', env, out),
    consumer: () => new ProviderClient(stack.baseUrl, new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`)),
    publish: (client, spec) => publishToCatalog(client, stack.catalogDir, chainId, { allow: [client.address], ...spec }),
    startWorker: () => {
      stack.worker = spawnEntrypoint('worker', env, out);
      return Promise.resolve(stack.worker);
    },
    output: () => out.join(''),
    stop: async () => {
      await Promise.all(
        [stack.worker, stack.api].map((c) => {
          if (c.exitCode !== null || c.signalCode !== null) return null;
          c.kill('SIGTERM');
          return new Promise((r) => c.once('exit', r));
        }),
      );
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitForPort(port, '127.0.0.1', 30_000);
  } catch (err) {
    throw new Error(`the API did not start:\n${stack.output()}`, { cause: err });
  }
  return stack;
}

/** An HTTP server on host loopback standing for the publisher's data server. */
export async function serveFiles(files: Record<string, string | Buffer>): Promise<{ url: (name: string) => string; server: http.Server; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '').slice(1);
    hits.push(name);
    const body = files[name];
    if (body === undefined) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: (name) => `http://127.0.0.1:${port}/${name}`, server, hits };
}
