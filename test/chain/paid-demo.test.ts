import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { writeContractsFile } from '../../tools/chain/deploy';
import { feeAmount } from '../../src/chain/provider-fee';
import { ProviderClient } from '../../src/client/provider-client';
import { paidDemo } from '../../tools/demo/paid';
import { startChain, type TestChain } from '../helpers/chain';
import { serveFiles, type Stack, startStack } from '../helpers/stack';

const demoDir = path.resolve(__dirname, '../../tools/demo');

describe("npm run demo's paid flow against a whole provider (API, worker, sandbox) and a hardhat node", () => {
  let chain: TestChain;
  let stack: Stack;
  let dir: string;
  let files: Awaited<ReturnType<typeof serveFiles>>;
  const paid = { id: 'demo-paid', priceMin: 0.5, maxJobDuration: 600, ramGB: 0.5 };

  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-paid-demo-'));
    const contractsFile = path.join(dir, 'contracts.json');
    writeContractsFile(contractsFile, chain.contracts);
    files = await serveFiles({
      'weather.csv': fs.readFileSync(path.join(demoDir, 'weather.csv')),
      'algorithm.js': fs.readFileSync(path.join(demoDir, 'algorithm.js')),
    });
    // after the data server: the stack allows it (C2D_ALLOWED_PRIVATE_HOSTS)
    stack = await startStack({ environments: [paid], env: { C2D_CHAIN_RPC_URL: chain.rpcUrl, C2D_CONTRACTS_FILE: contractsFile } });
  }, 120_000);
  afterAll(async () => {
    files?.close();
    await stack?.stop();
    await chain?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when the publisher publishes on chain and the consumer orders with our fees, then the job runs in the priced environment and its results download', async () => {
    const client = new ProviderClient(stack.baseUrl, new Wallet(Wallet.createRandom().privateKey));
    const [environment] = await client.environments();
    expect(environment).toMatchObject({ id: paid.id, priceMin: paid.priceMin });
    const lines: string[] = [];
    const result = await paidDemo({
      base: stack.baseUrl,
      chainId: chain.chainId,
      rpcUrl: chain.rpcUrl,
      contractsFile: path.join(dir, 'contracts.json'),
      client,
      environment: environment!,
      dataUrl: files.url('weather.csv'),
      algoUrl: files.url('algorithm.js'),
      follow: (jobId) => client.waitForJob(jobId, { intervalMs: 200, timeoutMs: 90_000 }),
      log: (line) => lines.push(line),
    });
    const { job } = result;
    expect(job.status).toBe(70);
    expect(job.environment).toBe(paid.id);
    expect(job.agreementId).toBe(result.datasetTx);
    // the dataset's order paid for the whole maxJobDuration at priceMin (initializeCompute's fee)
    expect(result.feeReceived).toBeGreaterThanOrEqual(feeAmount(paid.priceMin, paid.maxJobDuration - 5));
    expect(files.hits).toEqual(expect.arrayContaining(['weather.csv', 'algorithm.js']));
    const index = job.results === '' ? -1 : job.results.findIndex((r) => r.filename === 'summary.json');
    const summary = (await (await client.result(job.jobId, index)).json()) as Record<string, { rows: number }>;
    expect(Object.values(summary)).toEqual([expect.objectContaining({ rows: 7 })]);
    expect(lines.some((l) => l.startsWith('initializeCompute for demo-paid'))).toBe(true);
  }, 120_000);
});
