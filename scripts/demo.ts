import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Wallet } from 'ethers';
import { publishToCatalog } from '../src/client/catalog-publisher';
import { ProviderClient } from '../src/client/provider-client';
import { loadConfig } from '../src/config';
import { serveFiles } from '../src/entrypoints/local-stack';

/**
 * `npm run demo`: a publisher and a consumer, over the wire contract only.
 * The publisher serves a CSV and an algorithm from its own data server, encrypts their URLs with the
 * provider's /encrypt, and lists both assets in the catalog (the algorithm trusted by the dataset).
 * The consumer signs a compute start, follows the status and the live log, downloads the results.
 * Uses the stack on C2D_API_PORT, or starts one (and stops it afterwards).
 */
const repoRoot = path.resolve(__dirname, __filename.endsWith('.ts') ? '..' : '../..');
const demoDir = path.join(repoRoot, 'scripts/demo');
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
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist/src/entrypoints/dev.js')], { stdio: ['ignore', out, out], env: process.env });
  const deadline = Date.now() + 180_000;
  while (!(await stackUp())) {
    if (child.exitCode !== null) throw new Error(`the dev stack exited (${child.exitCode}); see ${log}`);
    if (Date.now() > deadline) throw new Error(`the dev stack did not come up in 180 s; see ${log}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return child;
}

async function publish(client: ProviderClient, dataUrl: string, algoUrl: string, consumer: string): Promise<{ dataset: string; algorithm: string }> {
  const algorithm = await publishToCatalog(client, config.catalogDir, config.chainId, {
    type: 'algorithm', name: 'CSV summary', urls: [algoUrl], serviceId: 'algo-compute', allow: [consumer],
    container: { entrypoint: 'node $ALGO', image: 'node', tag: '20' },
  });
  const dataset = await publishToCatalog(client, config.catalogDir, config.chainId, {
    type: 'dataset', name: 'Weather week', urls: [dataUrl], allow: [consumer],
    compute: { publisherTrustedAlgorithms: [{ did: algorithm }] },
  });
  return { dataset, algorithm };
}

async function followLog(client: ProviderClient, jobId: string): Promise<void> {
  const res = await client.logs(jobId);
  if (!res.ok || !res.body) return void console.log(`  (log stream answered ${res.status})`);
  const decoder = new TextDecoder();
  for await (const chunk of res.body) for (const line of decoder.decode(chunk as Uint8Array).split('\n').filter(Boolean)) console.log(`  │ ${line}`);
}

async function main(): Promise<void> {
  const stack = await ensureStack();
  const dataServer = await serveFiles({ 'weather.csv': fs.readFileSync(path.join(demoDir, 'weather.csv')), 'algorithm.js': fs.readFileSync(path.join(demoDir, 'algorithm.js')) });
  try {
    const { port } = dataServer.server.address() as AddressInfo;
    const client = new ProviderClient(base, new Wallet(Wallet.createRandom().privateKey));
    const root = (await (await fetch(`${base}/`)).json()) as { providerAddresses: Record<string, string> };
    console.log(`Provider ${Object.values(root.providerAddresses)[0]} at ${base}`);
    const env = (await client.environments()).find((e) => e.priceMin === 0);
    if (!env) throw new Error('the provider offers no free environment');
    console.log(`Consumer ${client.address}; environment ${env.id}`);

    const { dataset, algorithm } = await publish(client, `http://127.0.0.1:${port}/weather.csv`, `http://127.0.0.1:${port}/algorithm.js`, client.address);
    console.log(`Published dataset ${dataset}\n      and algorithm ${algorithm} (trusted by the dataset) into ${config.catalogDir}`);

    const job = await client.startJob({ environment: env.id, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: { documentId: algorithm, serviceId: 'algo-compute' } });
    console.log(`Job ${job.jobId} started (Temporal workflow c2d-${job.jobId})`);

    const live: { stream?: Promise<void> } = {};
    const final = await client.waitForJob(job.jobId, {
      intervalMs: 200,
      onChange: (now) => {
        console.log(`status ${now.status} ${now.statusText}`);
        if (now.status === 40 && !live.stream) live.stream = followLog(client, job.jobId);
      },
    });
    await live.stream;
    if (final.status !== 70 || final.terminationDetails?.exitCode) console.log(`Job ended in status ${final.status}: ${JSON.stringify(final.terminationDetails)}`);
    for (const [index, result] of (final.results || []).entries()) {
      const res = await client.result(final.jobId, index);
      console.log(`\n── ${result.filename} (${result.type}, HTTP ${res.status}) ──\n${(await res.text()).trimEnd()}`);
    }
    if (final.status !== 70) process.exitCode = 1;
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
