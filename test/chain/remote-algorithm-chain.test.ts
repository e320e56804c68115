import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { writeContractsFile } from '../../tools/chain/deploy';
import { startOrder } from '../../tools/chain/order-client';
import type { ProviderFee } from '../../src/chain/provider-fee';
import { trustedAlgorithm } from '../../tools/catalog/catalog-publisher';
import { ProviderClient } from '../../src/client/provider-client';
import { resultText } from '../integration/helpers';
import { publishOnChainAsset, startChain, type TestChain } from '../helpers/chain';
import { serveFiles, type Stack, startStack } from '../helpers/stack';

const CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` };
const CODE = "const fs = require('fs'); fs.writeFileSync('/data/outputs/out.txt', 'on-chain public algorithm ran: ' + fs.readdirSync('/data/inputs').length);";

/**
 * Ocean's compute flow with a public algorithm on another provider, all on chain: A holds the algorithm
 * (an `access` service, files encrypted for A); B runs the job on its own dataset. The consumer orders
 * both datatokens with B's provider fees and `consumer = B's env.consumerAddress`; B verifies the orders,
 * then fetches the algorithm through A's download, where A verifies the order names B.
 */
describe('a public on-chain algorithm of provider A in a job on provider B (hardhat node, two stacks)', () => {
  let chain: TestChain;
  let a: Stack;
  let b: Stack;
  let dir: string;
  let files: Awaited<ReturnType<typeof serveFiles>>;

  beforeAll(async () => {
    chain = await startChain();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-remote-chain-'));
    const contractsFile = path.join(dir, 'contracts.json');
    writeContractsFile(contractsFile, chain.contracts);
    const chainEnv = { C2D_CHAIN_RPC_URL: chain.rpcUrl, C2D_CONTRACTS_FILE: contractsFile };
    files = await serveFiles({ 'rows-e41a.csv': 'r1\nr2\n', 'chain-algo-e41a.js': CODE });
    a = await startStack({ environments: [{ id: 'a', maxJobs: 1, ramGB: 0.5 }], env: chainEnv });
    // B finds A's DDO (encrypted for A, so B's own chain reader skips it) through A's Aquarius endpoint
    // B fetches the public algorithm through its serviceEndpoint, A (on loopback here): allowed explicitly
    b = await startStack({
      environments: [{ id: 'b', maxJobs: 1, ramGB: 0.5, maxJobDuration: 300 }],
      env: { ...chainEnv, C2D_AQUARIUS_URL: a.baseUrl },
      allowHosts: [new URL(a.baseUrl).host],
    });
  }, 180_000);
  afterAll(async () => {
    files?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await chain?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when the consumer orders the algorithm for B, then B runs it fetched through A; an order made out to the consumer instead is refused by A', async () => {
    const publisher = chain.signers[1]!;
    const payer = chain.signers[2]!;
    const client = new ProviderClient(b.baseUrl, new Wallet(payer.privateKey));
    const algorithm = await publishOnChainAsset(chain, publisher, a.providerWallet, {
      type: 'algorithm',
      serviceType: 'access',
      serviceEndpoint: a.baseUrl,
      urls: [files.url('chain-algo-e41a.js')],
      mintTo: [payer.address, payer.address],
    });
    const dataset = await publishOnChainAsset(chain, publisher, b.providerWallet, {
      urls: [files.url('rows-e41a.csv')],
      serviceEndpoint: b.baseUrl,
      mintTo: [payer.address, payer.address],
      compute: {
        allowRawAlgorithm: false,
        allowNetworkAccess: false,
        publisherTrustedAlgorithmPublishers: [],
        publisherTrustedAlgorithms: [trustedAlgorithm(algorithm.did, CONTAINER, [CODE])],
      },
    });
    const [environment] = await client.environments();
    expect(environment?.consumerAddress.toLowerCase()).toBe(b.providerWallet.address.toLowerCase());

    const run = async (algorithmConsumer: string) => {
      const init = await client.request('POST', '/api/services/initializeCompute', {
        datasets: [{ documentId: dataset.did, serviceId: 'compute' }],
        algorithm: { documentId: algorithm.did, serviceId: 'access' },
        compute: { env: 'b', validUntil: Math.floor(Date.now() / 1000) + 300 },
        consumerAddress: client.address,
      });
      expect(init.status).toBe(200);
      const fees = (await init.json()) as { datasets: { providerFee: ProviderFee }[]; algorithm: { providerFee: ProviderFee } };
      const datasetTx = (await startOrder(payer, dataset.datatokenAddress, environment!.consumerAddress, 0, fees.datasets[0]!.providerFee)).hash;
      const algorithmTx = (await startOrder(payer, algorithm.datatokenAddress, algorithmConsumer, 0, fees.algorithm.providerFee)).hash;
      return client.startJob({
        environment: 'b',
        dataset: { documentId: dataset.did, serviceId: 'compute', transferTxId: datasetTx },
        algorithm: { documentId: algorithm.did, serviceId: 'access', transferTxId: algorithmTx },
      });
    };

    const started = await run(environment!.consumerAddress);
    const done = await client.waitForJob(started.jobId, { timeoutMs: 90_000 });
    expect(done).toMatchObject({ status: 70, algoDID: algorithm.did, inputDID: [dataset.did] });
    expect(await resultText(client, done, 'out.txt')).toBe('on-chain public algorithm ran: 1');

    // ordered for the consumer, not for B: A refuses B's download, so B refuses the start
    const refused = await run(client.address).catch((e: unknown) => e);
    expect((refused as { status?: number }).status).toBe(400);
    expect(JSON.parse((refused as { body: string }).body)).toEqual({ error: { algorithm: 'algorithm_file_checksum_mismatch' } });
    for (const text of [a.output(), b.output()]) expect(text).not.toContain(files.url(''));
  }, 180_000);
});
