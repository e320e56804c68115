import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { getBytes, HDNodeWallet, keccak256, Mnemonic, parseEther, toUtf8Bytes, Wallet } from 'ethers';
import { ProviderClient } from '../src/client/provider-client';
import { contractAt, send } from '../src/chain/contracts';
import { escrowAddress } from '../src/chain/contracts-file';
import { rpcProvider } from '../src/chain/rpc';
import { deployOceanContracts, writeContractsFile } from '../tools/chain/deploy';
import { HARDHAT_MNEMONIC, startHardhatNode } from '../tools/chain/hardhat-node';
import { serveFiles, startLocalStack } from '../tools/local-stack';
import { freePort } from '../tools/temporal-server';
import { benchTemporal } from './temporal';

/**
 * `npm run bench:escrow`: how soon a paid C2D v2 job's Escrow claim is settled once the job has ended —
 * from its results being published to its claim being mined (the payment saga's last activity), on a
 * local hardhat node with Ocean's contracts and one Temporal dev server. ocean-node claims by an hourly cron.
 */
const JOBS = 10;
type Event = temporal.api.history.v1.IHistoryEvent;
const eventMs = (e: Event): number => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

/** When the job's activity of this type completed (its history), in epoch ms. */
function completedAt(events: Event[], activityType: string): number {
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activityType);
  const done = events.find((e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '') === String(scheduled?.eventId ?? 'none'));
  if (!done) throw new Error(`no completed ${activityType}`);
  return eventMs(done);
}

async function main(): Promise<void> {
  const { dir, port, server } = await benchTemporal('c2d-bench-escrow-');
  const chainId = 8996;
  const node = await startHardhatNode({ port: await freePort(), chainId });
  const provider = rpcProvider(node.rpcUrl, chainId, 50);
  const data = await serveFiles({ 'data.csv': 'a\n' });
  let stack: Awaited<ReturnType<typeof startLocalStack>> | undefined;
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  try {
    const mnemonic = Mnemonic.fromPhrase(HARDHAT_MNEMONIC);
    const [deployer, consumer] = [0, 2].map((i) => HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`).connect(provider)) as [
      HDNodeWallet,
      HDNodeWallet,
    ];
    const contracts = await deployOceanContracts(deployer);
    const contractsFile = path.join(dir, 'address.json');
    writeContractsFile(contractsFile, contracts);
    const token = contracts.Ocean;
    const escrow = escrowAddress(contracts);
    stack = await startLocalStack({
      temporalAddress: `127.0.0.1:${port}`,
      environments: [
        {
          id: 'paid',
          maxJobs: 4,
          cpuNumber: 1,
          ramGB: 0.5,
          maxJobDuration: 600,
          fees: { [String(chainId)]: [{ feeToken: token, prices: [{ id: 'cpu', price: 1 }] }] },
        },
      ],
      allowHosts: [data.host],
      env: { C2D_CHAIN_RPC_URL: node.rpcUrl, C2D_CONTRACTS_FILE: contractsFile, C2D_CHAIN_ID: String(chainId) },
    });
    const url = stack.baseUrl;
    const dataset = await stack.publish(new ProviderClient(url, new Wallet(consumer.privateKey)), {
      type: 'dataset',
      name: 'b',
      urls: [data.url('data.csv')],
      compute: { allowRawAlgorithm: true },
    });
    await (await deployer.sendTransaction({ to: stack.providerWallet.address, value: parseEther('10') })).wait();
    await send(contractAt('OceanToken', token, deployer), 'mint', consumer.address, parseEther('1000'));
    await send(contractAt('OceanToken', token, consumer), 'approve', escrow, parseEther('1000'));
    await send(contractAt('Escrow', escrow, consumer), 'deposit', token, parseEther('1000'));
    await send(contractAt('Escrow', escrow, consumer), 'authorize', token, stack.providerWallet.address, parseEther('1000'), 7200, 100);

    const temporalClient = new Client({ connection });
    const settle: number[] = [];
    for (let i = 0; i < JOBS + 1; i++) {
      const nonce = String(Number(((await (await fetch(`${url}/api/services/nonce?userAddress=${consumer.address}`)).json()) as { nonce: number }).nonce) + 1);
      const signature = await consumer.signMessage(getBytes(keccak256(toUtf8Bytes(consumer.address + nonce + 'startCompute'))));
      const datasets = [{ documentId: dataset, serviceId: 'compute' }];
      const res = await fetch(`${url}/api/services/compute`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          consumerAddress: consumer.address,
          signature,
          nonce,
          environment: 'paid',
          datasets,
          dataset: datasets[0],
          algorithm: {
            meta: { rawcode: 'console.log(1)', container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'0'.repeat(64)}` } },
          },
          maxJobDuration: 120,
          payment: { chainId, token },
        }),
      });
      if (!res.ok) throw new Error(`start: ${res.status} ${await res.text()}`);
      const jobId = ((await res.json()) as { jobId: string }[])[0]!.jobId;
      const handle = temporalClient.workflow.getHandle(`c2d-${jobId}`);
      const view = (await handle.result()) as { status: number };
      if (view.status !== 70) throw new Error(`bench job ended in ${view.status}`);
      const { events } = await handle.fetchHistory();
      // the first job warms the worker and the chain's caches
      if (i > 0) settle.push(completedAt(events ?? [], 'settlePayment') - completedAt(events ?? [], 'publishStep'));
    }
    console.log(`Escrow settlement (hardhat node, Ocean contracts 2.6.0, ${JOBS} paid jobs one at a time, load average ${os.loadavg()[0]?.toFixed(1)})`);
    console.log(
      `job end (results published) → claim mined and the rest released: p50 ${percentile(settle, 50).toFixed(0)} ms, max ${Math.max(...settle).toFixed(0)} ms (ocean-node: its hourly claim cron, up to 1 h)`,
    );
  } finally {
    await connection.close();
    await stack?.stop();
    data.close();
    provider.destroy();
    await node.stop();
    server.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
