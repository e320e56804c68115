import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getBytes, keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { ProviderClient } from '../../src/client/provider-client';
import type { ProviderFee } from '../../src/chain/provider-fee';
import { JobStatus } from '../../src/domain/status';
import { writeContractsFile } from '../../tools/chain/deploy';
import { startOrder } from '../../tools/chain/order-client';
import { publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { nodeRaw, waitFor } from './helpers';

const PER_IP = 80;
const PER_ADDRESS = 10;
const WINDOW = 60;

/**
 * Issue 11 item 5, end to end over HTTP against a real stack (API + worker + Temporal + a hardhat
 * chain): bounded lists, rate limits per IP and per consumer address, a per-consumer cap on running +
 * queued jobs, and a paid order that funds one job only.
 */
describe('bounded work per request', () => {
  let chain: TestChain;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let contractsDir: string;
  let client: ProviderClient;
  let capped: ProviderClient;
  let victim: ProviderClient;
  let dataset: string;

  const post = (route: string, body: unknown): Promise<Response> =>
    fetch(`${stack.baseUrl}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  beforeAll(async () => {
    chain = await startChain();
    contractsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-bounds-'));
    const contractsFile = path.join(contractsDir, 'address.json');
    writeContractsFile(contractsFile, chain.contracts);
    data = await serveFiles({ 'rows.csv': 'a\nb\n' });
    stack = await startStack({
      environments: [
        { id: 'free', maxJobs: 2, ramGB: 0.5, maxJobDuration: 120 },
        { id: 'other', maxJobs: 2, ramGB: 0.5, maxJobDuration: 120 },
      ],
      env: {
        C2D_CHAIN_RPC_URL: chain.rpcUrl,
        C2D_CONTRACTS_FILE: contractsFile,
        C2D_CHAIN_ID: String(chain.chainId),
        C2D_RATE_LIMIT_WINDOW_SECONDS: String(WINDOW),
        C2D_RATE_LIMIT_PER_IP: String(PER_IP),
        C2D_RATE_LIMIT_PER_ADDRESS: String(PER_ADDRESS),
        C2D_MAX_JOBS_PER_CONSUMER: '1',
      },
    });
    // one consumer per test: each keeps its own per-address budget
    [client, capped, victim] = [stack.consumer(), stack.consumer(), stack.consumer()];
    dataset = await stack.publish(client, {
      allow: [client.address, capped.address, victim.address],
      type: 'dataset',
      name: 'rows',
      urls: [data.url('rows.csv')],
      compute: { allowRawAlgorithm: true },
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await chain?.stop();
    data?.close();
    if (contractsDir) fs.rmSync(contractsDir, { recursive: true, force: true });
  });

  it('when a request carries 1,000 datasets, then it is a 400 naming the maximum, answered at once', async () => {
    const items = Array.from({ length: 1000 }, (_, i) => ({ documentId: `did:op:${String(i).padStart(64, '0')}`, serviceId: 'compute' }));
    const auth = await client.sign(client.address, dataset);
    let t = Date.now();
    const start = await post('/api/services/compute', {
      consumerAddress: client.address,
      ...auth,
      environment: 'free',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: nodeRaw('1'),
      additionalDatasets: items,
    });
    expect(Date.now() - t).toBeLessThan(2000);
    expect(start.status).toBe(400);
    expect(JSON.stringify(await start.json())).toContain('at most 31 additional datasets per job');

    t = Date.now();
    const init = await post('/api/services/initializeCompute', {
      datasets: items,
      algorithm: { meta: {} },
      compute: { env: 'free', validUntil: Math.floor(Date.now() / 1000) + 600 },
      consumerAddress: client.address,
    });
    expect(Date.now() - t).toBeLessThan(2000);
    expect(init.status).toBe(400);
    expect(JSON.stringify(await init.json())).toContain('at most 32 datasets per request');
    expect(data.hits).toEqual([]); // nothing was fetched for either
    expect(await client.job('0'.repeat(32))).toBeUndefined();
    expect(await fetch(`${stack.baseUrl}/api/services/compute?consumerAddress=${client.address}`).then((r) => r.json())).toEqual([]);
  });

  it('when a consumer has as many running or queued jobs in an environment as the cap, then another is refused naming the cap, and allowed once one ends', async () => {
    const sleeper = nodeRaw('setTimeout(() => {}, 60_000)');
    const first = await capped.startJob({ environment: 'free', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: sleeper });
    const refused = capped.startJob({ environment: 'free', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: nodeRaw('1') });
    await expect(refused).rejects.toMatchObject({
      status: 409,
      body: JSON.stringify({
        error: `consumer ${capped.address.toLowerCase()} already has 1 running or queued jobs in environment free, the most one consumer may have (C2D_MAX_JOBS_PER_CONSUMER = 1): wait for one to finish, or stop one`,
      }),
    });
    // the cap is per environment, and per consumer
    const elsewhere = await capped.startJob({ environment: 'other', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: nodeRaw('1') });
    await capped.waitForJob(elsewhere.jobId, { intervalMs: 100 });
    await capped.stopJob(first.jobId);
    const stopped = await capped.waitForJob(first.jobId, { intervalMs: 100 });
    expect(stopped.status).toBe(JobStatus.JobFinished);
    await waitFor(
      'the stopped job to leave the running list',
      async () => {
        try {
          const again = await capped.startJob({ environment: 'free', dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: nodeRaw('1') });
          return again;
        } catch (err) {
          if ((err as { status?: number }).status === 409) return null;
          throw err;
        }
      },
      10_000,
      1_000,
    ).then((again) => capped.waitForJob(again.jobId, { intervalMs: 100 }));
  }, 120_000);

  it('when a paid order has funded a job, then a second job with the same order is refused with 400, and a new order starts it', async () => {
    const payer = chain.signers[2]!;
    const consumer = new ProviderClient(stack.baseUrl, new Wallet(payer.privateKey));
    const asset = await publishOnChainAsset(chain, chain.signers[1]!, stack.providerWallet, {
      urls: [data.url('rows.csv')],
      mintTo: [payer.address, payer.address],
      compute: { allowRawAlgorithm: true, allowNetworkAccess: false, publisherTrustedAlgorithmPublishers: [], publisherTrustedAlgorithms: [] },
    });
    const order = async (): Promise<string> => {
      const init = await post('/api/services/initializeCompute', {
        datasets: [{ documentId: asset.did, serviceId: 'compute' }],
        algorithm: { meta: {} },
        compute: { env: 'free', validUntil: Math.floor(Date.now() / 1000) + 600 },
        consumerAddress: payer.address,
      });
      expect(init.status).toBe(200);
      const fee = ((await init.json()) as { datasets: { providerFee: ProviderFee }[] }).datasets[0]!.providerFee;
      return (await startOrder(payer, asset.datatokenAddress, payer.address, 0, fee)).hash;
    };
    const start = (transferTxId: string) =>
      consumer.startJob({ environment: 'free', dataset: { documentId: asset.did, serviceId: 'compute', transferTxId }, algorithm: nodeRaw('1') });

    const tx = await order();
    const first = await consumer.waitForJob((await start(tx)).jobId, { intervalMs: 100 });
    expect(first).toMatchObject({ status: JobStatus.JobFinished, agreementId: tx });

    await expect(start(tx)).rejects.toMatchObject({
      status: 400,
      body: expect.stringContaining(`dataset: order ${tx} already funded job ${first.jobId}`) as unknown,
    });
    // a new order funds the next job
    const again = await order();
    const second = await consumer.waitForJob((await start(again)).jobId, { intervalMs: 100 });
    expect(second).toMatchObject({ status: JobStatus.JobFinished, agreementId: again });
  }, 120_000);

  it('when one consumer address sends more signed requests than its budget, then 429 with Retry-After, while requests failing their signature cost it nothing', async () => {
    const stranger = new Wallet(Wallet.createRandom().privateKey);
    const signedDownload = async (signer: Wallet, nonce: string): Promise<Response> => {
      const signature = await signer.signMessage(getBytes(keccak256(toUtf8Bytes(`${dataset}${nonce}`))));
      const q = new URLSearchParams({ documentId: dataset, serviceId: 'compute', consumerAddress: victim.address, nonce, signature });
      return fetch(`${stack.baseUrl}/api/services/download?${q.toString()}`);
    };
    // a stranger signing for the victim's address: 401 each, not counted against the victim
    for (let i = 1; i <= PER_ADDRESS + 2; i++) expect((await signedDownload(stranger, String(i))).status).toBe(401);
    // the victim's own requests (a compute service is not downloadable: 400 after the signature passed)
    const victimWallet = victim.wallet;
    for (let i = 1; i <= PER_ADDRESS; i++) expect((await signedDownload(victimWallet, String(Date.now() + i))).status).toBe(400);
    const limited = await signedDownload(victimWallet, String(Date.now() + 100));
    expect(limited.status).toBe(429);
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(WINDOW);
    expect(await limited.json()).toEqual({
      error: `Too many requests for this consumer address: at most ${PER_ADDRESS} every ${WINDOW} s (C2D_RATE_LIMIT_PER_ADDRESS); retry after ${retryAfter} s`,
    });
  });

  it('when one IP sends more requests to the expensive routes than its budget, then 429 with Retry-After; cheap routes still answer', async () => {
    const encrypt = (): Promise<Response> =>
      fetch(`${stack.baseUrl}/api/services/encrypt`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'x' });
    let limited: Response | undefined;
    for (let i = 0; i <= PER_IP && !limited; i++) {
      const res = await encrypt();
      if (res.status === 429) limited = res;
      else expect(res.status).toBe(201);
    }
    expect(limited).toBeDefined();
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await limited!.json()) as { error: string }).error).toContain(`at most ${PER_IP} every ${WINDOW} s (C2D_RATE_LIMIT_PER_IP)`);
    expect((await fetch(`${stack.baseUrl}/api/services/computeEnvironments`)).status).toBe(200);
  });
});
