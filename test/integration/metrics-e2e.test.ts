import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { writeContractsFile } from '../../tools/chain/deploy';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { freePort } from '../../tools/temporal-server';
import { publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { testState } from '../helpers/state';
import { eventually } from '../helpers/temporal';
import { nodeRaw } from './helpers';

// unique per run: the Temporal server (and on-chain DIDs, from a fresh chain's first NFTs) are shared with other test files
const ENV = `metrics-e2e-${Date.now().toString(36)}`;

/** One sample of a Prometheus text exposition, e.g. sample(text, 'c2d_x_total', { a: '1' }); undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

/** A provider with worker metrics on, on a chain of its own; three jobs: one finishes, one's algorithm fails, one has no order. */
describe('worker metrics and job visibility (worker and API processes, real Temporal, real chain)', () => {
  let chain: TestChain;
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let metricsUrl: string;
  let temporal: Client;
  let alice: ProviderClient;
  let bob: ProviderClient;
  let ok: JobView;
  let crashed: JobView;
  let unpaid: JobView;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-metrics-'));

  beforeAll(async () => {
    chain = await startChain();
    const contractsFile = path.join(dir, 'address.json');
    writeContractsFile(contractsFile, chain.contracts);
    data = await serveFiles({ 'rows.csv': 'x\n1\n2\n' });
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    stack = await startStack({
      environments: [{ id: ENV, maxJobs: 3, ramGB: 0.5, maxJobDuration: 120 }],
      env: {
        C2D_WORKER_METRICS_PORT: String(metricsPort),
        C2D_CHAIN_RPC_URL: chain.rpcUrl,
        C2D_CONTRACTS_FILE: contractsFile,
        C2D_CHAIN_ID: String(chain.chainId),
      },
    });
    alice = stack.consumer();
    bob = stack.consumer();
    const rows = await stack.publish(alice, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    // on chain: a datatoken guards it, so a job needs an order (transferTxId) the consumer never made
    const paid = await publishOnChainAsset(chain, chain.signers[1]!, stack.providerWallet, {
      urls: [data.url('rows.csv')],
      compute: { allowRawAlgorithm: true, allowNetworkAccess: false, publisherTrustedAlgorithmPublishers: ['*'], publisherTrustedAlgorithms: [] },
    });
    const start = (c: ProviderClient, did: string, code: string) =>
      c.startJob({ environment: ENV, dataset: { documentId: did, serviceId: 'compute' }, algorithm: nodeRaw(code) });
    // one consumer's requests one after the other: each takes the next nonce
    const jobs = [
      await start(alice, rows, "require('fs').writeFileSync('/data/outputs/ok.txt', 'ok')"),
      await start(alice, rows, "console.error('boom'); process.exit(3)"),
      await start(bob, paid.did, "require('fs').writeFileSync('/data/outputs/never.txt', 'x')"),
    ];
    [ok, crashed, unpaid] = await Promise.all([
      alice.waitForJob(jobs[0]!.jobId, { timeoutMs: 60_000 }),
      alice.waitForJob(jobs[1]!.jobId, { timeoutMs: 60_000 }),
      bob.waitForJob(jobs[2]!.jobId, { timeoutMs: 60_000 }),
    ]);
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }), namespace: 'default' });
  }, 180_000);

  afterAll(async () => {
    await temporal?.connection.close();
    await stack?.stop();
    await chain?.stop();
    data?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('when jobs finish, fail or lack an order, then their final statuses are 70, 41 and 31', () => {
    expect([ok.status, crashed.status, unpaid.status]).toEqual([70, 41, 31]);
    expect(unpaid.terminationDetails?.reason).toMatch(/transferTxId/);
  });

  it('when Prometheus scrapes the worker, then it reads jobs started and finished by environment and status, stage durations and order failures by code', async () => {
    // the last sink call (finished) may land just after the API saw the final status
    const text = await eventually(
      async () => {
        const body = await (await fetch(metricsUrl)).text();
        return ['70', '41', '31'].every((status) => sample(body, 'c2d_worker_jobs_finished_total', { environment: ENV, status }) !== undefined)
          ? body
          : undefined;
      },
      10_000,
      'the worker to count the finished jobs',
    );
    expect(sample(text, 'c2d_worker_jobs_started_total', { environment: ENV })).toBe(3);
    expect(sample(text, 'c2d_worker_jobs_finished_total', { environment: ENV, status: '70' })).toBe(1);
    expect(sample(text, 'c2d_worker_jobs_finished_total', { environment: ENV, status: '41' })).toBe(1);
    expect(sample(text, 'c2d_worker_jobs_finished_total', { environment: ENV, status: '31' })).toBe(1);
    expect(sample(text, 'c2d_worker_order_verification_failures_total', { code: 'order_not_found' })).toBe(1);
    // the two jobs that got past their orders ran each stage once; the unpaid one stopped at verifyOrders
    expect(sample(text, 'c2d_worker_stage_duration_seconds_count', { stage: 'algorithmStep', outcome: 'ok' })).toBe(2);
    expect(sample(text, 'c2d_worker_stage_duration_seconds_count', { stage: 'configureStep', outcome: 'ok' })).toBe(2);
    expect(sample(text, 'c2d_worker_stage_duration_seconds_count', { stage: 'verifyOrders', outcome: 'failed' })).toBe(1);
    expect(sample(text, 'c2d_worker_stage_duration_seconds_count', { stage: 'cleanupJob', outcome: 'ok' })).toBe(3);
    expect(sample(text, 'c2d_worker_stage_duration_seconds_sum', { stage: 'algorithmStep', outcome: 'ok' })).toBeGreaterThan(0);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect((await fetch(metricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });

  it('when Prometheus scrapes the API, then it reads latency by route template (never a raw URL with ids)', async () => {
    const text = await (await fetch(`${stack.baseUrl}/metrics`)).text();
    expect(sample(text, 'c2d_api_request_duration_seconds_count', { route: '/api/services/compute', method: 'POST', status: '200' })).toBe(3);
    expect(text).not.toContain(ok.jobId);
  });

  it('when an operator lists jobs through Temporal visibility, then our search attributes find them by owner and by status', async () => {
    const ids = async (query: string): Promise<string[]> => {
      const found: string[] = [];
      for await (const info of temporal.workflow.list({ query })) found.push(info.workflowId.replace(/^c2d-/, ''));
      return found.sort();
    };
    const owner = alice.address.toLowerCase();
    // visibility trails the workflows by a moment
    await eventually(async () => (await ids(`C2DOwner = '${owner}' AND C2DStatus = 41`)).length === 1, 10_000, 'visibility to catch up');
    expect(await ids(`WorkflowType = 'computeJob' AND C2DOwner = '${owner}'`)).toEqual([ok.jobId, crashed.jobId].sort());
    expect(await ids(`C2DOwner = '${owner}' AND C2DStatus = 70`)).toEqual([ok.jobId]);
    expect(await ids(`C2DEnvironment = '${ENV}' AND C2DStatus IN (31, 32, 41, 42, 61, 62)`)).toEqual([crashed.jobId, unpaid.jobId].sort());
    expect(await ids(`C2DDatasetDids = '${unpaid.inputDID[0]}' AND C2DEnvironment = '${ENV}'`)).toEqual([unpaid.jobId]);
    expect(await temporal.workflow.count(`C2DEnvironment = '${ENV}' AND ExecutionStatus = 'Completed'`)).toMatchObject({ count: 3 });
  });
});
