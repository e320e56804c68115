import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isSupervisorAlive } from '../../src/compute/process/state';
import { algorithmLog, createTestBackend, hooks, newJobId, readAll, testEnvironment, testSandbox, type TestBackend } from '../helpers/process-backend';

const dist = path.resolve(__dirname, '../../dist/src');

/** A stand-in worker: the compiled backend in its own process, running configure then the algorithm step. */
const workerScript = `
const { ProcessBackend, defaultProgramsDir } = require(${JSON.stringify(path.join(dist, 'compute/process/backend.js'))});
const { defaultRuntimes } = require(${JSON.stringify(path.join(dist, 'config/index.js'))});
const [dataDir, uidSlotsDir, jobId, env, code] = process.argv.slice(1);
const logger = { debug() {}, info() {}, warn() {}, error() {}, child() { return logger; } };
const backend = new ProcessBackend({ dataDir, runtimes: defaultRuntimes(process.execPath), sandbox: ${JSON.stringify(testSandbox)}, uidSlotsDir, programsDir: defaultProgramsDir(), logger });
const hooks = { heartbeat() {}, signal: new AbortController().signal };
const environment = JSON.parse(env);
(async () => {
  await backend.runStep({ jobId, environment, step: 'configure', configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, maxInputBytes: 1e6 } }, hooks);
  await backend.runStep({ jobId, environment, step: 'algorithm', algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false } }, hooks);
})();
`;

let t: TestBackend;
beforeAll(() => {
  t = createTestBackend();
});
afterAll(() => t.dispose());

test('when the worker is killed with SIGKILL mid-algorithm, then the step keeps running and a new worker re-attaches to it: it ran exactly once', async () => {
  const jobId = newJobId();
  const environment = testEnvironment();
  const code = `
    require('fs').appendFileSync('/data/outputs/runs.txt', 'run\\n');
    console.log('tick 1');
    setTimeout(() => { require('fs').writeFileSync('/data/outputs/result.txt', 'done'); console.log('tick 2'); }, 1500);`;
  const worker = spawn(process.execPath, ['-e', workerScript, t.dataDir, t.uidSlotsDir, jobId, JSON.stringify(environment), code], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 200 && !algorithmLog(t.dataDir, jobId).includes('tick 1'); i++) await sleep(25);
    expect(algorithmLog(t.dataDir, jobId)).toContain('tick 1');
    // it runs under the spare its configure step started, which would wait for a next step once this one ended
    const stepDir = path.join(t.dataDir, 'jobs', jobId, 'steps', 'algorithm');
    const { supervisorPid } = JSON.parse(fs.readFileSync(path.join(stepDir, 'launch'), 'utf8')) as { supervisorPid: number };
    expect(fs.readFileSync(`/proc/${supervisorPid}/cmdline`, 'utf8').split('\0')).toContain('--wait');
    const exited = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGKILL');
    await exited;

    const state = JSON.parse(fs.readFileSync(path.join(stepDir, 'state.json'), 'utf8'));
    expect(state.status).toBe('running');

    const outcome = await t.backend.runStep(
      {
        jobId,
        environment,
        step: 'algorithm',
        algorithm: { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
      },
      hooks(),
    );
    expect(outcome).toMatchObject({ exitCode: 0, oomKilled: false, reason: '', reattached: true });
    const outputs = path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs');
    expect(fs.readFileSync(path.join(outputs, 'runs.txt'), 'utf8')).toBe('run\n');
    expect(fs.readFileSync(path.join(outputs, 'result.txt'), 'utf8')).toBe('done');
    expect(await readAll(t.backend.openLog(jobId, 'algorithm', { follow: true })!)).toBe('tick 1\ntick 2\n');
    // its worker gone, the supervisor ended once the step had: it does not wait for a next step nobody will hand it
    for (let i = 0; i < 100 && isSupervisorAlive(supervisorPid); i++) await sleep(50);
    expect(isSupervisorAlive(supervisorPid)).toBe(false);
  } finally {
    worker.kill('SIGKILL');
    await t.backend.cleanup(jobId);
  }
});

test('when the worker died after claiming the algorithm step but before a supervisor took it, then the retry launches it (it runs once) instead of failing it', async () => {
  const jobId = newJobId();
  const environment = testEnvironment();
  const algorithm = { container: { image: 'node', tag: '20', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false };
  const code = "require('fs').appendFileSync('/data/outputs/runs.txt', 'run\\n'); console.log('ran');";
  await t.backend.runStep(
    { jobId, environment, step: 'configure', configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, maxInputBytes: 1e6 } },
    hooks(),
  );
  // what a worker killed right after claiming the launch leaves: its launch file, naming it, and nothing else
  const gone = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => gone.once('exit', r));
  const stepDir = path.join(t.dataDir, 'jobs', jobId, 'steps', 'algorithm');
  fs.mkdirSync(stepDir, { recursive: true });
  fs.writeFileSync(path.join(stepDir, 'launch'), JSON.stringify({ launchedAt: Date.now(), launcherPid: gone.pid }));
  try {
    const t0 = Date.now();
    const outcome = await t.backend.runStep({ jobId, environment, step: 'algorithm', algorithm }, hooks());
    expect(outcome).toMatchObject({ exitCode: 0, reason: '', reattached: false });
    expect(Date.now() - t0).toBeLessThan(20_000); // not the 30 s grace of a launch without a supervisor
    expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs', 'runs.txt'), 'utf8')).toBe('run\n');
  } finally {
    await t.backend.cleanup(jobId);
  }
});
