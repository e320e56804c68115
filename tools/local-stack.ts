import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { ProviderClient } from '../src/client/provider-client';
import type { EnvironmentInput } from '../src/domain/environment';
import { type CatalogAssetSpec, publishToCatalog } from './catalog/catalog-publisher';
import { entrypointsDir } from './paths';
import { freePort, waitForPort } from './temporal-server';

/**
 * A whole provider — worker and API as separate processes started from dist/, as in production — in a
 * fresh data dir, on an existing Temporal server. Tests and benchmarks run against it.
 */
export interface LocalStack {
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
  /** publishes into this stack's catalog; the consumer is allowed unless `allow` says otherwise */
  publish(client: ProviderClient, spec: Omit<CatalogAssetSpec, 'allow'> & { allow?: string[] }): Promise<string>;
  /** starts a (new) worker process, e.g. after killing the first */
  startWorker(): ChildProcess;
  /** starts one more worker process with these settings on top (e.g. its own C2D_WORK_DIR); its output lines start with `[worker:<label>]` */
  addWorker(label: string, env: Record<string, string>): ChildProcess;
  /** starts one more API process on a port of its own, with these settings on top; resolves once it listens */
  addApi(label: string, env: Record<string, string>): Promise<{ process: ChildProcess; baseUrl: string }>;
  /** what worker and API printed */
  output(): string;
  stop(): Promise<void>;
}

function spawnEntrypoint(name: string, env: Record<string, string>, out: string[], label = name): ChildProcess {
  // C2D_CPU_PROF_DIR (benchmarks): each process writes a V8 CPU profile there when it exits
  const profDir = process.env.C2D_CPU_PROF_DIR;
  const profile = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${label}-${process.pid}-${Date.now()}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...profile, path.join(entrypointsDir, `${name}.js`)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => out.push(`[${label}] ${d.toString()}`));
  child.stderr?.on('data', (d: Buffer) => out.push(`[${label}] ${d.toString()}`));
  return child;
}

/**
 * SIGTERM, then SIGKILL after `graceMs`: a process that does not shut down (e.g. a worker whose jobs are stuck
 * retrying) must not hold a test's afterAll past its timeout and keep Jest from exiting.
 */
const stopChild = (c: ChildProcess, graceMs = 20_000): Promise<unknown> | null => {
  if (c.exitCode !== null || c.signalCode !== null) return null;
  c.kill('SIGTERM');
  return new Promise((r) => {
    const kill = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(kill);
      r(undefined);
    });
  });
};

/**
 * `allowHosts`: what the provider may fetch although it is not public (C2D_ALLOWED_PRIVATE_HOSTS), e.g.
 * the `host` of a serveFiles data server on loopback; anything else on loopback stays refused.
 */
export async function startLocalStack(opts: {
  temporalAddress: string;
  environments: EnvironmentInput[];
  env?: Record<string, string>;
  /** settings of the first worker only, on top of `env` (e.g. a data dir of its own) */
  workerEnv?: Record<string, string>;
  allowHosts?: string[];
}): Promise<LocalStack> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-stack-'));
  fs.chmodSync(dataDir, 0o755); // the sandbox user must be able to reach the job dirs below it
  const envFile = path.join(dataDir, 'environments.json');
  fs.writeFileSync(envFile, JSON.stringify(opts.environments));
  const providerWallet = new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`);
  const port = await freePort();
  const chainId = 8996;
  const env: Record<string, string> = {
    C2D_TEMPORAL_ADDRESS: opts.temporalAddress,
    C2D_TASK_QUEUE: `c2d-${crypto.randomBytes(4).toString('hex')}`,
    C2D_DATA_DIR: dataDir,
    C2D_API_PORT: String(port),
    C2D_ENVIRONMENTS_FILE: envFile,
    C2D_PROVIDER_PRIVATE_KEY: providerWallet.privateKey,
    C2D_CHAIN_ID: String(chainId),
    C2D_LOG_LEVEL: 'warn',
    ...opts.env,
  };
  const allowed = [...(env.C2D_ALLOWED_PRIVATE_HOSTS ?? '').split(','), ...(opts.allowHosts ?? [])].map((h) => h.trim()).filter((h) => h !== '');
  if (allowed.length > 0) env.C2D_ALLOWED_PRIVATE_HOSTS = [...new Set(allowed)].join(',');
  const out: string[] = [];
  const catalogDir = path.join(dataDir, 'catalog');
  const extra: ChildProcess[] = [];
  const stack: LocalStack = {
    baseUrl: `http://127.0.0.1:${port}`,
    dataDir,
    catalogDir,
    chainId,
    env,
    providerWallet,
    worker: spawnEntrypoint('worker', { ...env, ...opts.workerEnv }, out),
    api: spawnEntrypoint('api', env, out),
    consumer: () => new ProviderClient(stack.baseUrl, new Wallet(`0x${crypto.randomBytes(32).toString('hex')}`)),
    publish: (client, spec) => publishToCatalog(client, catalogDir, chainId, { allow: [client.address], ...spec }),
    startWorker: () => (stack.worker = spawnEntrypoint('worker', { ...env, ...opts.workerEnv }, out)),
    addWorker: (label, more) => {
      const child = spawnEntrypoint('worker', { ...env, ...more }, out, `worker:${label}`);
      extra.push(child);
      return child;
    },
    addApi: async (label, more) => {
      const apiPort = await freePort();
      const child = spawnEntrypoint('api', { ...env, ...more, C2D_API_PORT: String(apiPort) }, out, `api:${label}`);
      extra.push(child);
      await waitForPort(apiPort, '127.0.0.1', 30_000);
      return { process: child, baseUrl: `http://127.0.0.1:${apiPort}` };
    },
    output: () => out.join(''),
    stop: async () => {
      await Promise.all([stopChild(stack.worker), stopChild(stack.api), ...extra.map((c) => stopChild(c))]);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    const exited = (name: string, c: ChildProcess): Promise<never> =>
      new Promise((_, reject) => c.once('exit', (code) => reject(new Error(`${name} exited with ${code}`))));
    await Promise.race([waitForPort(port, '127.0.0.1', 30_000), exited('api', stack.api), exited('worker', stack.worker)]);
  } catch (err) {
    await Promise.all([stopChild(stack.worker), stopChild(stack.api)]);
    throw new Error(`the API did not start:\n${stack.output()}`, { cause: err });
  }
  return stack;
}

/** Where `npm run demo` serves its data: `npm run dev` allows exactly this (C2D_ALLOWED_PRIVATE_HOSTS) unless set. */
export const DEV_DATA_HOST = '127.0.0.1:8031';

/**
 * An HTTP server on host loopback standing for a publisher's data server (demo, tests, benchmarks).
 * `host` (127.0.0.1:<port>) is what a stack must allow (C2D_ALLOWED_PRIVATE_HOSTS) to fetch from it.
 */
export async function serveFiles(
  files: Record<string, string | Buffer>,
  /** address: where to listen (default loopback; e.g. the bridge address a real Kubernetes node's pods reach the host at) */
  opts: { port?: number; address?: string } = {},
): Promise<{ url: (name: string) => string; host: string; server: http.Server; hits: string[]; close: () => void }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '').slice(1);
    hits.push(name);
    const body = files[name];
    if (body === undefined) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.address ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  const address = opts.address ?? '127.0.0.1';
  const close = (): void => {
    server.close();
    server.closeAllConnections();
  };
  return { url: (name) => `http://${address}:${port}/${name}`, host: `${address}:${port}`, server, hits, close };
}
