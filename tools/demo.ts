import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wallet } from 'ethers';
import { type EnvironmentView, ProviderClient } from '../src/client/provider-client';
import { DEV_CHAIN_RPC_URL, loadConfig } from '../src/config';
import type { JobView } from '../src/domain/job';
import { publishToCatalog, trustedAlgorithm } from './catalog/catalog-publisher';
import { paidDemo } from './demo/paid';
import { devDockerEnvironment } from './docker-engine';
import { DEV_DATA_HOST, serveFiles } from './local-stack';
import { repoRoot, toolsDir } from './paths';

/**
 * `npm run demo`: a publisher and a consumer, over the wire contract only, twice.
 * Free: the publisher serves a CSV and an algorithm from its own data server, encrypts their URLs with
 * the provider's /encrypt, and lists both assets in the catalog (the algorithm trusted by the dataset).
 * Paid (when the provider has a chain): the same two files published on chain as data NFTs with
 * datatokens, ordered with the provider fees of initializeCompute, computed in a priced environment.
 * Each time the consumer signs a compute start, follows the status and the live log, downloads the results.
 * Docker (when the provider offers the dev stack's docker environment): a Python algorithm in a real
 * image, pinned by digest, that imports numpy (which the host does not have) and prints what it computed.
 * `npm run demo -- free`, `-- paid` or `-- docker` runs one of them.
 * Uses the stack on C2D_API_PORT, or starts one (with a free and a priced environment) and stops it afterwards.
 */
const demoDir = path.join(repoRoot, 'tools/demo');
const config = loadConfig(process.env);
const base = `http://127.0.0.1:${config.api.port}`;

async function stackUp(): Promise<boolean> {
  try {
    return (await fetch(`${base}/`)).ok;
  } catch {
    return false;
  }
}

async function ensureStack(): Promise<ChildProcess | null> {
  if (await stackUp()) return null;
  const log = path.join(config.dataDir, 'demo-stack.log');
  fs.mkdirSync(config.dataDir, { recursive: true });
  console.log(`No provider on ${base}; starting the dev stack (output in ${log})...`);
  const out = fs.openSync(log, 'a');
  // our own stack offers a priced environment too (unless the caller chose the environments)
  const env = { C2D_ENVIRONMENTS_FILE: path.join(demoDir, 'environments.json'), ...process.env };
  const child = spawn(process.execPath, [path.join(toolsDir, 'dev.js')], { stdio: ['ignore', out, out], env });
  const deadline = Date.now() + 180_000;
  while (!(await stackUp())) {
    if (child.exitCode !== null) throw new Error(`the dev stack exited (${child.exitCode}); see ${log}`);
    if (Date.now() > deadline) throw new Error(`the dev stack did not come up in 180 s; see ${log}`);
    await sleep(500);
  }
  return child;
}

const ALGO_CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20' };

async function publish(client: ProviderClient, dataUrl: string, algoUrl: string, consumer: string): Promise<{ dataset: string; algorithm: string }> {
  const algorithm = await publishToCatalog(client, config.catalogDir, config.chainId, {
    type: 'algorithm',
    name: 'CSV summary',
    urls: [algoUrl],
    serviceId: 'algo-compute',
    allow: [consumer],
    container: ALGO_CONTAINER,
  });
  // the publisher trusts the algorithm as reviewed: its file's content and its container, both pinned
  const reviewed = Buffer.from(await (await fetch(algoUrl)).arrayBuffer());
  const dataset = await publishToCatalog(client, config.catalogDir, config.chainId, {
    type: 'dataset',
    name: 'Weather week',
    urls: [dataUrl],
    allow: [consumer],
    compute: { publisherTrustedAlgorithms: [trustedAlgorithm(algorithm, ALGO_CONTAINER, [reviewed])] },
  });
  return { dataset, algorithm };
}

async function followLog(client: ProviderClient, jobId: string): Promise<void> {
  const res = await client.logs(jobId);
  if (!res.ok || !res.body) return void console.log(`  (log stream answered ${res.status})`);
  const decoder = new TextDecoder();
  for await (const chunk of res.body)
    for (const line of decoder
      .decode(chunk as Uint8Array)
      .split('\n')
      .filter(Boolean))
      console.log(`  │ ${line}`);
}

/** Follows a job until it ends (status changes, the live log), then downloads and prints each result. */
async function follow(client: ProviderClient, jobId: string): Promise<JobView> {
  const live: { stream?: Promise<void> } = {};
  const final = await client.waitForJob(jobId, {
    intervalMs: 200,
    onChange: (now) => {
      console.log(`status ${now.status} ${now.statusText}`);
      if (now.status === 40 && !live.stream) live.stream = followLog(client, jobId);
    },
  });
  await live.stream;
  if (final.status !== 70 || final.terminationDetails?.exitCode)
    console.log(`Job ended in status ${final.status}: ${JSON.stringify(final.terminationDetails)}`);
  for (const [index, result] of (final.results || []).entries()) {
    const res = await client.result(final.jobId, index);
    console.log(`\n── ${result.filename} (${result.type}, HTTP ${res.status}) ──\n${(await res.text()).trimEnd()}`);
  }
  return final;
}

async function freeDemo(client: ProviderClient, environments: EnvironmentView[], dataUrl: string, algoUrl: string): Promise<JobView> {
  const env = environments.find((e) => e.priceMin === 0);
  if (!env) throw new Error('the provider offers no free environment');
  console.log(`\n═══ Free: catalog assets, environment ${env.id}; consumer ${client.address} ═══`);
  const { dataset, algorithm } = await publish(client, dataUrl, algoUrl, client.address);
  console.log(`Published dataset ${dataset}\n      and algorithm ${algorithm} (trusted by the dataset) into ${config.catalogDir}`);
  const job = await client.startJob({
    environment: env.id,
    dataset: { documentId: dataset, serviceId: 'compute' },
    algorithm: { documentId: algorithm, serviceId: 'algo-compute' },
  });
  console.log(`Job ${job.jobId} started (Temporal workflow c2d-${job.jobId})`);
  return follow(client, job.jobId);
}

async function paid(client: ProviderClient, environments: EnvironmentView[], dataUrl: string, algoUrl: string): Promise<JobView | null> {
  const chain = config.chains[config.chainId];
  const contractsFile = chain?.contractsFile ?? config.contractsFile;
  if (!fs.existsSync(contractsFile)) {
    console.log(`\n(paid demo skipped: no Ocean contracts file at ${contractsFile}; \`npm run dev\` starts a chain and writes it)`);
    return null;
  }
  const priced = environments.find((e) => e.priceMin > 0);
  const env = priced ?? environments[0];
  if (!env) throw new Error('the provider offers no environment');
  console.log(`\n═══ Paid: on-chain assets, environment ${env.id} (priceMin ${env.priceMin}); consumer ${client.address} ═══`);
  if (!priced) console.log('(the provider has no priced environment: the orders carry zero fees)');
  const { job } = await paidDemo({
    base,
    chainId: config.chainId,
    rpcUrl: chain?.rpcUrl ?? DEV_CHAIN_RPC_URL,
    contractsFile,
    client,
    environment: env,
    dataUrl,
    algoUrl,
    follow: (jobId) => follow(client, jobId),
  });
  return job;
}

/** numpy, which the host's Python lacks: it only runs in the image */
const NUMPY_SUMMARY = `
import glob, numpy as np
rows = np.genfromtxt(glob.glob('/data/inputs/*/0')[0], delimiter=',', names=True)
line = f"numpy {np.__version__}: {rows.size} days, mean temperature {rows['temperature'].mean():.2f}, total rainfall {rows['rainfall'].sum():.1f}"
print(line)
open('/data/outputs/summary.txt', 'w').write(line + '\\n')
`;

async function dockerDemo(client: ProviderClient, environments: EnvironmentView[], dataUrl: string): Promise<JobView | null> {
  const docker = devDockerEnvironment();
  const env = docker && environments.find((e) => e.id === docker.id);
  const image = docker?.docker?.algorithmImages?.python;
  if (!env || !image) {
    console.log('\n(docker demo skipped: the provider offers no docker environment; as root, `bash tools/ensure-docker.sh --images` then `npm run dev`)');
    return null;
  }
  const [name, checksum] = image.split('@') as [string, string];
  console.log(`\n═══ Docker: a Python image with numpy (${name}, pinned by ${checksum.slice(0, 19)}…), environment ${env.id} ═══`);
  const dataset = await publishToCatalog(client, config.catalogDir, config.chainId, {
    type: 'dataset',
    name: 'Weather week',
    urls: [dataUrl],
    allow: [client.address],
    compute: { allowRawAlgorithm: true },
  });
  const job = await client.startJob({
    environment: env.id,
    dataset: { documentId: dataset, serviceId: 'compute' },
    algorithm: { meta: { rawcode: NUMPY_SUMMARY, container: { entrypoint: 'python3 $ALGO', image: name, tag: '', checksum } } },
  });
  console.log(`Job ${job.jobId} started (Temporal workflow c2d-${job.jobId})`);
  return follow(client, job.jobId);
}

async function main(): Promise<void> {
  const which = process.argv[2] ?? 'all';
  if (!['free', 'paid', 'docker', 'both', 'all'].includes(which)) throw new Error(`usage: npm run demo [-- free|paid|docker|all], not ${which}`);
  const stack = await ensureStack();
  // on the port `npm run dev` allows: the provider fetches nothing else on loopback
  const dataServer = await serveFiles(
    {
      'weather.csv': fs.readFileSync(path.join(demoDir, 'weather.csv')),
      'algorithm.js': fs.readFileSync(path.join(demoDir, 'algorithm.js')),
    },
    { port: Number(DEV_DATA_HOST.split(':')[1]) },
  );
  try {
    const { port } = dataServer.server.address() as AddressInfo;
    const [dataUrl, algoUrl] = [`http://127.0.0.1:${port}/weather.csv`, `http://127.0.0.1:${port}/algorithm.js`];
    const root = (await (await fetch(`${base}/`)).json()) as { providerAddresses: Record<string, string> };
    console.log(`Provider ${Object.values(root.providerAddresses)[0]} at ${base}`);
    const finals: JobView[] = [];
    if (['free', 'both', 'all'].includes(which)) {
      const client = new ProviderClient(base, new Wallet(Wallet.createRandom().privateKey));
      finals.push(await freeDemo(client, await client.environments(), dataUrl, algoUrl));
    }
    if (['paid', 'both', 'all'].includes(which)) {
      const client = new ProviderClient(base, new Wallet(Wallet.createRandom().privateKey));
      const done = await paid(client, await client.environments(), dataUrl, algoUrl);
      if (done) finals.push(done);
      else if (which === 'paid') process.exitCode = 1;
    }
    if (['docker', 'all'].includes(which)) {
      const client = new ProviderClient(base, new Wallet(Wallet.createRandom().privateKey));
      const done = await dockerDemo(client, await client.environments(), dataUrl);
      if (done) finals.push(done);
      else if (which === 'docker') process.exitCode = 1;
    }
    if (finals.some((f) => f.status !== 70)) process.exitCode = 1;
  } finally {
    dataServer.close();
    if (stack) {
      stack.kill('SIGTERM');
      await new Promise((r) => stack.once('exit', r));
    }
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
