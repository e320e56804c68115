import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { prettyFactory } from 'pino-pretty';
import { type Config, DEV_CHAIN_RPC_URL, loadConfig } from '../src/config';
import { devDockerEnvironment, dockerDir } from './docker-engine';
import { entrypointsDir, repoRoot, toolsDir } from './paths';
import { DEV_DATA_HOST } from './local-stack';
import { splitAddress, uiCodecEndpoint } from './temporal';
import { retentionFor, startDevServer, waitForPort } from './temporal-server';

/**
 * `npm run dev`: the whole stack on one machine — Temporal dev server (unless one already listens on
 * C2D_TEMPORAL_ADDRESS), the worker and the API — stopped together on Ctrl-C or when one of them dies.
 * Worker and API write JSON lines (as in production, `npm run worker` / `npm run api`); here, for a person
 * at a terminal, each of their log lines is shown as time, level, message and fields (pino-pretty, in colour
 * on a terminal), prefixed with the process it came from.
 */
const pretty = prettyFactory({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name', singleLine: true });

/** A pino line (its first key is the level) made readable; anything else as it came. */
export const readable = (line: string): string[] => (line.startsWith('{"level":') ? pretty(line).trimEnd().split('\n') : [line]);

function prefixed(name: string, child: ChildProcess): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) readline.createInterface({ input: stream }).on('line', (line) => readable(line).forEach((l) => console.log(`[${name}] ${l}`)));
  }
}

const listening = (port: number, host: string): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
  });

/**
 * A local EVM chain with Ocean's contracts, unless C2D_CHAIN_RPC_URL names one already. Resolves with
 * the settings worker and API need to use it, once the contract addresses are written.
 */
async function startChain(config: Config, children: { name: string; child: ChildProcess }[]): Promise<Record<string, string>> {
  if (config.chains[config.chainId]) {
    console.log(`[dev] using the chain at ${config.chains[config.chainId]?.rpcUrl}`);
    return {};
  }
  fs.rmSync(config.contractsFile, { force: true }); // the dev chain lives in memory: addresses from an earlier run mean nothing
  const chain = spawn(process.execPath, [path.join(toolsDir, 'dev-chain.js')], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env, detached: true });
  prefixed('chain', chain);
  children.push({ name: 'chain', child: chain });
  const deadline = Date.now() + 120_000;
  while (!fs.existsSync(config.contractsFile)) {
    if (chain.exitCode !== null) throw new Error(`the dev chain exited (${chain.exitCode}); is port 8545 taken? Set C2D_CHAIN_RPC_URL to use another chain`);
    if (Date.now() > deadline) throw new Error('the dev chain did not deploy its contracts within 120 s');
    await sleep(200);
  }
  return { C2D_CHAIN_RPC_URL: DEV_CHAIN_RPC_URL, C2D_CONTRACTS_FILE: config.contractsFile };
}

/** The dev stack's environments unless C2D_ENVIRONMENTS_FILE says otherwise: a free one and a priced one (the demo's paid flow). */
const DEV_ENVIRONMENTS_FILE = path.join(repoRoot, 'tools', 'demo', 'environments.json');

export async function main(): Promise<void> {
  if (!process.env.C2D_ENVIRONMENTS_FILE && fs.existsSync(DEV_ENVIRONMENTS_FILE)) process.env.C2D_ENVIRONMENTS_FILE = DEV_ENVIRONMENTS_FILE;
  // beside them a docker environment when our engine answers (bash tools/ensure-docker.sh --images)
  const docker = process.env.C2D_ENVIRONMENTS_FILE === DEV_ENVIRONMENTS_FILE ? devDockerEnvironment() : null;
  if (docker) {
    const file = path.join(dockerDir(), 'dev-environments.json');
    fs.writeFileSync(file, JSON.stringify([...(JSON.parse(fs.readFileSync(DEV_ENVIRONMENTS_FILE, 'utf8')) as unknown[]), docker], null, 2));
    process.env.C2D_ENVIRONMENTS_FILE = file;
    console.log(`[dev] Docker Engine at ${docker.docker?.socketPath ?? ''}: offering the environment ${docker.id}`);
  }
  const config = loadConfig(process.env);
  const [host, port] = splitAddress(config.temporal.address);
  const children: { name: string; child: ChildProcess }[] = [];
  let stopping = false;
  const stop = (child: ChildProcess): Promise<unknown> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    return exited.finally(() => clearTimeout(force));
  };
  // Worker and API first, so they shut down while Temporal still answers; the server last.
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    const infrastructure = ['temporal', 'chain'];
    const clients = children.filter(({ name }) => !infrastructure.includes(name)).map(({ child }) => stop(child));
    void Promise.all(clients)
      .then(() => Promise.all(children.filter(({ name }) => infrastructure.includes(name)).map(({ child }) => stop(child))))
      .then(() => process.exit(code));
  };
  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));

  if (await listening(port, host)) {
    console.log(`[dev] using the Temporal server already on ${config.temporal.address}`);
  } else {
    const dbFile = path.join(config.dataDir, 'temporal.db');
    console.log(`[dev] starting Temporal dev server on ${config.temporal.address} (jobs in ${dbFile})`);
    const codecEndpoint = uiCodecEndpoint(config);
    const server = await startDevServer({
      ip: host,
      port,
      uiPort: config.temporal.uiPort,
      dbFile,
      namespace: config.temporal.namespace,
      retentionSeconds: retentionFor(config.environments.map((e) => e.storageExpiry)),
      logFile: path.join(config.dataDir, 'temporal.log'),
      detached: true,
      ...(codecEndpoint ? { codecEndpoint } : {}),
    });
    if (codecEndpoint) console.log('[dev] the Web UI decodes payloads through the API codec endpoint');
    children.push({ name: 'temporal', child: server });
    console.log(`[dev] Temporal Web UI: http://${host}:${config.temporal.uiPort}`);
  }
  let chainEnv: Record<string, string>;
  try {
    chainEnv = await startChain(config, children);
  } catch (err) {
    console.error(`[dev] ${err instanceof Error ? err.message : String(err)}`);
    return stopAll(1);
  }
  // the demo's data server on loopback, and nothing else there, unless the operator chose (src/net/guarded-fetch.ts)
  const fetchEnv = process.env.C2D_ALLOWED_PRIVATE_HOSTS === undefined ? { C2D_ALLOWED_PRIVATE_HOSTS: DEV_DATA_HOST } : {};
  console.log(
    `[dev] files may be fetched from public addresses and ${fetchEnv.C2D_ALLOWED_PRIVATE_HOSTS ?? process.env.C2D_ALLOWED_PRIVATE_HOSTS} (C2D_ALLOWED_PRIVATE_HOSTS)`,
  );
  const env = { ...process.env, ...chainEnv, ...fetchEnv };
  for (const name of ['worker', 'api']) {
    const child = spawn(process.execPath, [path.join(entrypointsDir, `${name}.js`)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    prefixed(name, child);
    children.push({ name, child });
  }
  for (const { name, child } of children) {
    child.once('exit', (code, signal) => {
      if (stopping) return;
      console.error(`[dev] ${name} exited (${signal ?? code}); stopping the stack`);
      stopAll(1);
    });
  }
  await waitForPort(config.api.port, config.api.host === '0.0.0.0' ? '127.0.0.1' : config.api.host, 120_000);
  console.log(`[dev] Provider API: http://${config.api.host}:${config.api.port}/  — try: npm run demo   (Ctrl-C stops everything)`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
