import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import express from 'express';
import request from 'supertest';
import { createApp } from '../../src/api/app';
import { CatalogResolver } from '../../src/assets/catalog';
import { containerSectionChecksum, sha256Hex } from '../../src/assets/checksums';
import { ProviderFileDecryptor } from '../../src/assets/decryptor';
import { type EnvironmentInput, environmentSchema } from '../../src/domain/environment';
import { UnavailableError } from '../../src/domain/errors';
import { serveFiles } from '../../tools/local-stack';
import { LocalResultStore } from '../../src/storage/local';
import { FileNonceStore } from '../../src/storage/nonces';
import { nodeContainer, publishCatalogAsset, recordingLogger, signRequest } from '../helpers/api';
import { FakeBackend, FakeJobsService } from './fakes';

export const DATASET_URL = 'https://files.example.invalid/private/dataset-4f1c.csv';
export const ALGORITHM_URL = 'https://files.example.invalid/private/algorithm-9a2e.js';
export const CHAIN_ID = 8996;
/** The harness algorithm's code, served on loopback: trust entries pin its checksum, so starts fetch and hash it. */
export const ALGORITHM_CODE = "console.log('harness algorithm')";

export const randomWallet = (): Wallet => new Wallet(Wallet.createRandom().privateKey);

/**
 * The API module with real parts around it (ECIES, wallets, catalog on a temp dir, local result store,
 * file nonce store) and fakes only for the orchestrator and the backend. Every response body is kept
 * so tests can assert that no file URL ever left the server.
 */
export async function apiHarness(
  opts: { environments?: EnvironmentInput[]; chainPing?: () => Promise<void>; allowHosts?: string[]; maxJobsPerConsumer?: number } = {},
) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-api-'));
  const catalogDir = path.join(dir, 'catalog');
  const provider = randomWallet();
  const consumer = randomWallet();
  const other = randomWallet();
  const logger = recordingLogger();
  const results = new LocalResultStore(dir);
  const nonces = new FileNonceStore(dir);
  /** what the fake orchestrator answers to /readyz's ping; a test flips it */
  const temporal = { reachable: true };
  const jobs = Object.assign(new FakeJobsService(results), {
    ping: (): Promise<void> =>
      temporal.reachable ? Promise.resolve() : Promise.reject(new UnavailableError('temporal_unavailable', 'Temporal is unavailable')),
  });
  const backend = new FakeBackend();
  const environments = (opts.environments ?? [{ id: 'free', desc: 'free env', maxJobs: 3 }]).map((e) => environmentSchema.parse(e));
  let jobCounter = 0;

  const algorithmFiles = await serveFiles({ 'algorithm-9a2e.js': ALGORITHM_CODE });
  /** where the harness algorithm's file lives (a secret like any file location) */
  const algorithmUrl = algorithmFiles.url('algorithm-9a2e.js');
  /** C2D_ALLOWED_PRIVATE_HOSTS of this API: exactly the test's data servers on loopback (`allow` adds one) */
  const allowedPrivateHosts = [algorithmFiles.host, ...(opts.allowHosts ?? [])];
  /** a trust entry pinning an algorithm whose one file is the harness algorithm's, in `container` */
  const pinned = (did: string, container: { entrypoint: string; checksum: string } = nodeContainer) => ({
    did,
    filesChecksum: sha256Hex(ALGORITHM_CODE),
    containerSectionChecksum: containerSectionChecksum(container),
  });
  const algorithmDid = await publishCatalogAsset(catalogDir, provider, {
    type: 'algorithm',
    urls: [algorithmUrl],
    allow: [consumer.address, other.address],
    container: nodeContainer,
  });
  const datasetDid = await publishCatalogAsset(catalogDir, provider, {
    type: 'dataset',
    urls: [DATASET_URL],
    allow: [consumer.address, other.address],
    trustedAlgorithms: [pinned(algorithmDid)],
  });
  const rawDatasetDid = await publishCatalogAsset(catalogDir, provider, {
    type: 'dataset',
    urls: [DATASET_URL],
    allow: [consumer.address],
    allowRawAlgorithm: true,
  });

  const inner = createApp({
    chainId: CHAIN_ID,
    providerWallet: provider,
    version: '9.9.9-test',
    environments,
    jobs,
    results,
    nonces,
    resolver: new CatalogResolver(catalogDir, logger),
    decryptor: new ProviderFileDecryptor(provider.privateKey),
    backendFor: (id) => (environments.some((e) => e.id === id) ? backend : undefined),
    logger,
    newJobId: () => (++jobCounter).toString(16).padStart(32, '0'),
    ...(opts.chainPing ? { chainPing: opts.chainPing } : {}),
    fetchPolicy: { allowedPrivateHosts },
    ...(opts.maxJobsPerConsumer !== undefined ? { maxJobsPerConsumer: opts.maxJobsPerConsumer } : {}),
  });
  const bodies: string[] = [];
  const app = express();
  app.use((_req, res, next) => {
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => express.Response;
    const keep = (chunk: unknown) => {
      if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) bodies.push(chunk.toString());
    };
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      keep(chunk);
      return write(chunk, ...rest);
    }) as typeof res.write;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      keep(chunk);
      return end(chunk, ...rest);
    }) as typeof res.end;
    next();
  });
  app.use(inner);

  /** What Ocean's client does before a signed call: ask for the nonce and use one more. */
  const nextNonce = async (wallet: Wallet): Promise<string> => {
    const res = await request(app).get('/api/services/nonce').query({ userAddress: wallet.address });
    return String(Number(res.body.nonce) + 1);
  };

  const startBody = async (wallet: Wallet, opts: { dataset?: string; algorithm?: object; environment?: string } = {}) => {
    const nonce = await nextNonce(wallet);
    const dataset = opts.dataset ?? datasetDid;
    return {
      consumerAddress: wallet.address,
      signature: await signRequest(wallet, [wallet.address, dataset], nonce),
      nonce,
      environment: opts.environment ?? 'free',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: opts.algorithm ?? { documentId: algorithmDid, serviceId: 'compute' },
    };
  };

  /** Starts a job as `wallet` and returns its id. */
  const startJob = async (wallet: Wallet = consumer): Promise<string> => {
    const res = await request(app)
      .post('/api/services/compute')
      .send(await startBody(wallet));
    if (res.status !== 200) throw new Error(`start failed: ${res.status} ${JSON.stringify(res.body)}`);
    return (res.body as { jobId: string }[])[0]!.jobId;
  };

  const cleanup = () => {
    algorithmFiles.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  return {
    app,
    /** lets this API fetch from a data server the test started (its `host`, 127.0.0.1:<port>) */
    allow: (host: string): void => void allowedPrivateHosts.push(host),
    dir,
    catalogDir,
    provider,
    consumer,
    other,
    logger,
    results,
    nonces,
    jobs,
    temporal,
    backend,
    bodies,
    datasetDid,
    rawDatasetDid,
    algorithmDid,
    algorithmUrl,
    algorithmFiles,
    pinned,
    nextNonce,
    startBody,
    startJob,
    cleanup,
  };
}

export type ApiHarness = Awaited<ReturnType<typeof apiHarness>>;

/** Nothing the server said (bodies) or logged may contain a file URL. */
export function expectNoSecretLeaked(h: ApiHarness): void {
  const said = h.bodies.join('\n') + JSON.stringify(h.logger.entries);
  for (const url of [DATASET_URL, ALGORITHM_URL, 'files.example.invalid', h.algorithmFiles.url(''), 'algorithm-9a2e']) expect(said).not.toContain(url);
}
