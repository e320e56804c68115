import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readContractsFile } from '../../src/chain/contracts-file';
import { rpcProvider } from '../../src/chain/rpc';
import { freePort } from '../../tools/temporal-server';
import { waitFor } from '../integration/helpers';

describe('chain entrypoint (npm run dev starts it)', () => {
  let child: ChildProcess | undefined;
  let dir: string;
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('when started, then a hardhat node serves the chain with Ocean contracts whose addresses are in C2D_CONTRACTS_FILE, and SIGTERM stops it', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-chain-'));
    const port = await freePort();
    const contractsFile = path.join(dir, 'address.json');
    child = spawn(process.execPath, [path.resolve(__dirname, '../../dist/tools/dev-chain.js')], {
      env: { ...process.env, C2D_DATA_DIR: dir, C2D_CHAIN_RPC_URL: `http://127.0.0.1:${port}`, C2D_CONTRACTS_FILE: contractsFile, C2D_CHAIN_ID: '8996' },
      stdio: 'ignore',
    });
    await waitFor('contracts file', () => fs.existsSync(contractsFile), 30_000);
    const contracts = readContractsFile(contractsFile, 8996);
    const provider = rpcProvider(`http://127.0.0.1:${port}`, 8996, 50);
    try {
      expect((await provider.getCode(contracts.ERC721Factory)).length).toBeGreaterThan(2);
      expect((await provider.getNetwork()).chainId).toBe(8996n);
    } finally {
      provider.destroy();
    }
    const exited = new Promise<number | null>((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const after = rpcProvider(`http://127.0.0.1:${port}`, 8996, 50);
    await expect(after.getBlockNumber()).rejects.toThrow();
    after.destroy();
  });
});
