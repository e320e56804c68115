import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { algorithmLog, createTestBackend, newJobId, testEnvironment, testSandbox, type TestBackend } from '../helpers/process-backend';

const dist = path.resolve(__dirname, '../../dist/src');

/**
 * A stand-in worker started the way a careless parent starts one: with a descriptor open across exec (fd 250,
 * here a socket to this test, opened by the shell that execs it). It prints where that descriptor leads,
 * then runs a job whose algorithm lists every descriptor it holds.
 */
const workerScript = `
const fs = require('fs');
const inherited = fs.readlinkSync('/proc/self/fd/250');
const { ProcessBackend, defaultProgramsDir } = require(${JSON.stringify(path.join(dist, 'compute/process/backend.js'))});
const { defaultRuntimes } = require(${JSON.stringify(path.join(dist, 'config/index.js'))});
const [dataDir, uidSlotsDir, jobId, env] = process.argv.slice(1);
const logger = { debug() {}, info() {}, warn() {}, error() {}, child() { return logger; } };
const backend = new ProcessBackend({ dataDir, runtimes: defaultRuntimes(process.execPath), sandbox: ${JSON.stringify(testSandbox)}, uidSlotsDir, programsDir: defaultProgramsDir(), logger });
const hooks = { heartbeat() {}, signal: new AbortController().signal };
const environment = JSON.parse(env);
const code = "const fs = require('fs'); for (const fd of fs.readdirSync('/proc/self/fd')) { try { console.log(fs.readlinkSync('/proc/self/fd/' + fd)); } catch {} }";
(async () => {
  await backend.runStep({ jobId, environment, step: 'configure', configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, maxInputBytes: 1e6 } }, hooks);
  const outcome = await backend.runStep({ jobId, environment, step: 'algorithm', algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false } }, hooks);
  console.log(JSON.stringify({ inherited, outcome }));
  process.exit(0);
})();
`;

let t: TestBackend;
beforeAll(() => {
  t = createTestBackend();
});
afterAll(() => t.dispose());

test('when the worker was started with a descriptor open across exec, then its algorithm does not hold it: the backend closed it before starting any step', async () => {
  const jobId = newJobId();
  // the shell leaves fd 250 open across exec, as a shell or a CI runner may (node marks its low descriptors close-on-exec itself)
  const worker = spawn(
    '/bin/bash',
    ['-c', 'exec "$@" 250<&0', 'bash', process.execPath, '-e', workerScript, t.dataDir, t.uidSlotsDir, jobId, JSON.stringify(testEnvironment())],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  try {
    let out = '';
    worker.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => worker.once('exit', resolve));
    const { inherited, outcome } = JSON.parse(out.trim().split('\n').pop()!) as { inherited: string; outcome: { exitCode: number } };
    expect(inherited).toMatch(/^socket:/);
    expect(outcome.exitCode).toBe(0);
    const held = algorithmLog(t.dataDir, jobId).trim().split('\n');
    expect(held.length).toBeGreaterThan(2);
    expect(held).not.toContain(inherited);
  } finally {
    worker.kill('SIGKILL');
    await t.backend.cleanup(jobId);
    expect(fs.existsSync(path.join(t.dataDir, 'jobs', jobId))).toBe(false);
  }
});
