import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';

// the compiled store (jest's global setup builds dist/), so each replica is a plain Node process
const STORE = path.resolve('dist/src/storage/nonces.js');
const NONCES = 300;

/** One API replica: tries every nonce 1..n in order against the shared dir, prints the ones it won. */
function replica(dataDir: string, address: string): Promise<number[]> {
  const code = `
    const { FileNonceStore } = require(${JSON.stringify(STORE)});
    const store = new FileNonceStore(${JSON.stringify(dataDir)});
    (async () => {
      const won = [];
      for (let n = 1; n <= ${NONCES}; n++) if (await store.advance(${JSON.stringify(address)}, String(n))) won.push(n);
      process.stdout.write(JSON.stringify(won));
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`replica exited ${code}`))));
  });
}

describe('FileNonceStore shared by several processes', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-nonces-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('when two API processes race through the same nonces of one address, then each nonce is accepted exactly once', async () => {
    const address = Wallet.createRandom().address;
    const [a, b] = await Promise.all([replica(dir, address), replica(dir, address)]);
    expect([...a, ...b].sort((x, y) => x - y)).toEqual(Array.from({ length: NONCES }, (_, i) => i + 1));
    expect(fs.readFileSync(path.join(dir, 'nonces', address.toLowerCase()), 'utf8')).toBe(String(NONCES));
    // no lock left behind
    expect(fs.readdirSync(path.join(dir, 'nonces'))).toEqual([address.toLowerCase()]);
  });

  it('when a process died holding the lock, then another takes it over once it is stale', async () => {
    const address = Wallet.createRandom().address.toLowerCase();
    fs.mkdirSync(path.join(dir, 'nonces'));
    const lock = path.join(dir, 'nonces', `${address}.lock`);
    fs.writeFileSync(lock, '');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, old, old);
    expect(await replica(dir, address)).toHaveLength(NONCES);
  });
});
