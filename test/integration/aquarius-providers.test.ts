import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { ProviderClient } from '../../src/client/provider-client';
import { publishToCatalog, trustedAlgorithm } from '../../tools/catalog/catalog-publisher';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText, waitFor } from './helpers';

const WORDS_JS = [
  "const fs = require('fs');",
  "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
  "const words = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').trim().split(/\\s+/);",
  "fs.writeFileSync('/data/outputs/words.txt', String(words.length));",
].join('\n');

/**
 * An HTTP proxy in front of provider A's Aquarius endpoint that a test can make fail: how an Aquarius
 * outage looks to provider B (real servers on both sides, real connections refused or answered 503).
 */
async function aquariusProxy(target: string) {
  const state = { mode: 'pass' as 'pass' | 'fail', failed: 0, passed: 0 };
  const server = http.createServer((req, res) => {
    if (state.mode === 'fail') {
      state.failed++;
      return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"Aquarius is restarting"}');
    }
    state.passed++;
    fetch(`${target}${req.url ?? '/'}`).then(
      async (upstream) =>
        res
          .writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' })
          .end(Buffer.from(await upstream.arrayBuffer())),
      () => res.writeHead(502).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = (): void => {
    server.closeAllConnections();
    server.close();
  };
  return { url, state, close };
}

/**
 * Provider A is the metadata cache: the assets are in its catalog only, their files encrypted by
 * provider B. Provider B (worker + API) finds them through C2D_AQUARIUS_URL = A's API and runs the job.
 */
describe("a provider that resolves assets through another provider's Aquarius endpoint", () => {
  let a: Stack;
  let b: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let proxy: Awaited<ReturnType<typeof aquariusProxy>>;
  let client: ProviderClient;
  let dataset: string;
  let algorithm: string;
  let ownWorker: ChildProcess | undefined;
  let ownWorkerOutput = '';

  beforeAll(async () => {
    data = await serveFiles({
      'words.txt': 'alpha beta gamma delta\n',
      'words.js': WORDS_JS,
    });
    a = await startStack({ environments: [{ id: 'a-env', maxJobs: 1, ramGB: 0.5 }] });
    proxy = await aquariusProxy(a.baseUrl);
    b = await startStack({ environments: [{ id: 'b-env', maxJobs: 2, ramGB: 0.5, maxJobDuration: 120 }], env: { C2D_AQUARIUS_URL: proxy.url } });
    client = b.consumer();
    // published through B's /encrypt (only B can read the files), listed in A's catalog only
    algorithm = await publishToCatalog(client, a.catalogDir, b.chainId, {
      type: 'algorithm',
      name: 'words',
      urls: [data.url('words.js')],
      allow: [client.address],
      container: { entrypoint: 'node $ALGO', image: 'node', tag: '20' },
    });
    dataset = await publishToCatalog(client, a.catalogDir, b.chainId, {
      type: 'dataset',
      name: 'text',
      urls: [data.url('words.txt')],
      allow: [client.address],
      compute: { publisherTrustedAlgorithms: [trustedAlgorithm(algorithm, { entrypoint: 'node $ALGO', image: 'node', tag: '20' }, [WORDS_JS])] },
    });
  }, 120_000);

  afterAll(async () => {
    if (ownWorker && ownWorker.exitCode === null) {
      const exited = new Promise((r) => ownWorker!.once('exit', r));
      ownWorker.kill('SIGTERM');
      await exited;
    }
    await b?.stop();
    await a?.stop();
    proxy?.close();
    data?.close();
  });

  it('when B is asked to run a job on assets only A knows, then B resolves them through A and the job finishes', async () => {
    const started = await client.startJob({
      environment: 'b-env',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: { documentId: algorithm, serviceId: 'algo' },
    });
    const done = await client.waitForJob(started.jobId, { intervalMs: 50 });
    expect(done).toMatchObject({ status: 70, inputDID: [dataset], algoDID: algorithm });
    expect(await resultText(client, done, 'words.txt')).toBe('4');
    expect(proxy.state.passed).toBeGreaterThan(0);
  });

  it("when B is asked about an asset it only knows through A, then B's own Aquarius endpoint does not serve it on (no lookup in circles)", async () => {
    const fromA = await fetch(`${a.baseUrl}/api/aquarius/assets/ddo/${dataset}`);
    expect(fromA.status).toBe(200);
    expect(JSON.stringify(await fromA.json())).not.toContain('words.txt');
    const fromB = await fetch(`${b.baseUrl}/api/aquarius/assets/ddo/${dataset}`);
    expect(fromB.status).toBe(404);
  });

  it('when neither B nor A knows the asset, then B refuses the job with 404 naming the DID', async () => {
    const unknown = `did:op:${'d'.repeat(64)}`;
    const refused = client.startJob({
      environment: 'b-env',
      dataset: { documentId: unknown, serviceId: 'compute' },
      algorithm: { documentId: algorithm, serviceId: 'algo' },
    });
    await expect(refused).rejects.toMatchObject({ status: 404, body: JSON.stringify({ error: `dataset: asset ${unknown} not found` }) });
  });

  it('when Aquarius answers 503 while the job is being authorized, then the job waits in status 1 and finishes once it answers again', async () => {
    // B's worker gets its own way to A (the proxy, failing); B's API still reaches A directly and accepts the job
    const exited = new Promise((r) => b.worker.once('exit', r));
    b.worker.kill('SIGTERM');
    await exited;
    const failing = await aquariusProxy(a.baseUrl);
    failing.state.mode = 'fail';
    try {
      ownWorker = spawn(process.execPath, [path.resolve(__dirname, '../../dist/src/entrypoints/worker.js')], {
        env: { ...process.env, ...b.env, C2D_AQUARIUS_URL: failing.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      ownWorker.stdout?.on('data', (d: Buffer) => (ownWorkerOutput += d.toString()));
      ownWorker.stderr?.on('data', (d: Buffer) => (ownWorkerOutput += d.toString()));
      const started = await client.startJob({
        environment: 'b-env',
        dataset: { documentId: dataset, serviceId: 'compute' },
        algorithm: { documentId: algorithm, serviceId: 'algo' },
      });
      await waitFor('two failed Aquarius lookups by the worker', () => failing.state.failed >= 2, 30_000);
      const waiting = await client.job(started.jobId);
      expect(waiting).toMatchObject({ status: 1, dateFinished: null });
      failing.state.mode = 'pass';
      const done = await client.waitForJob(started.jobId, { intervalMs: 100, timeoutMs: 60_000 });
      expect(done.status).toBe(70);
      expect(await resultText(client, done, 'words.txt')).toBe('4');
      expect(ownWorkerOutput).toContain('aquarius failing');
    } finally {
      failing.close();
    }
  }, 120_000);
});
