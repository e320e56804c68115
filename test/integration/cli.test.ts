import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProviderClient } from '../../src/client/provider-client';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { waitFor } from './helpers';

const CLI = path.resolve(__dirname, '../../dist/src/entrypoints/cli.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI as a user would (the global setup builds dist/). */
function c2d(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('the c2d CLI against a running provider', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    data = await serveFiles({ 'rows.csv': 'x,y\n1,2\n3,4\n' });
    stack = await startStack({ environments: [{ id: 'cli', maxJobs: 2, ramGB: 0.5, maxJobDuration: 600 }] });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-cli-'));
    fs.writeFileSync(path.join(dir, 'key'), `${client.wallet.privateKey}\n`, { mode: 0o600 });
    fs.writeFileSync(
      path.join(dir, 'count.js'),
      [
        "const fs = require('fs');",
        "const input = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
        "const rows = fs.readFileSync(`/data/inputs/${input}/0`, 'utf8').trim().split('\\n').length - 1;",
        "console.log('counted rows:', rows);",
        "fs.writeFileSync('/data/outputs/count.txt', String(rows));",
      ].join('\n'),
    );
    fs.writeFileSync(
      path.join(dir, 'ticks.js'),
      "console.log('tick 1'); setTimeout(() => { console.log('tick 2'); require('fs').writeFileSync('/data/outputs/t.txt', 'ok'); }, 3000);",
    );
    fs.writeFileSync(path.join(dir, 'slow.js'), "console.log('slow started'); setTimeout(() => {}, 120000);");
    env = { C2D_PROVIDER_URL: stack.baseUrl };
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    data?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const keyFile = () => ['--key-file', path.join(dir, 'key')];
  const raw = (file: string) => ['--raw', path.join(dir, file), '--image', 'node', '--tag', '20', '--entrypoint', 'node $ALGO'];

  it("when a consumer lists environments, then the provider's environments are printed", async () => {
    const run = await c2d(['envs'], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^cli\tjobs 0\/2/m);
  });

  it('when a consumer starts a raw algorithm on a catalog dataset, then it follows to 70 with the live log, and the results download', async () => {
    const run = await c2d(['start', '--env', 'cli', '--dataset', dataset, ...raw('count.js'), ...keyFile()], env);
    expect(run.code).toBe(0);
    const jobId = run.stdout.split('\n')[0]!;
    expect(jobId).toMatch(/^[0-9a-f]{32}$/);
    expect(run.stdout).toContain('counted rows: 2');
    expect(run.stderr).toMatch(/\] 1 Warming up/);
    expect(run.stderr).toMatch(/\] 70 Job finished/);
    expect(run.stderr).toContain('count.txt');
    expect(run.stdout + run.stderr).not.toContain(client.wallet.privateKey.slice(2));

    const out = path.join(dir, 'results');
    const results = await c2d(['results', jobId, '--out', out, ...keyFile()], env);
    expect(results.code).toBe(0);
    expect(fs.readFileSync(path.join(out, 'count.txt'), 'utf8')).toBe('2');
    expect(fs.readFileSync(path.join(out, 'algorithm.log'), 'utf8')).toContain('counted rows: 2');

    const status = await c2d(['status', jobId, ...keyFile()], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('status: 70 Job finished');
    expect(status.stdout).toContain('exit code: 0');
  }, 120_000);

  it('when the algorithm prints while it runs, then the followed start shows the log live, each line once', async () => {
    const child = spawn(process.execPath, [CLI, 'start', '--env', 'cli', '--dataset', dataset, ...raw('ticks.js'), ...keyFile()], {
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    await waitFor('the first tick on stdout', () => stdout.includes('tick 1'), 60_000, 20);
    const jobId = stdout.split('\n')[0]!;
    // seen while the algorithm still runs: the log is followed live, not read after the fact
    expect((await client.job(jobId))?.status).toBe(40);
    expect(stdout).not.toContain('tick 2');
    expect(await exited).toBe(0);
    expect(stdout.match(/tick 1/g)).toHaveLength(1);
    expect(stdout.match(/tick 2/g)).toHaveLength(1);
  }, 120_000);

  it('when a consumer starts a job detached, stops it and deletes it, then the job reads stopped and removed', async () => {
    const start = await c2d(['start', '--detach', '--env', 'cli', '--dataset', dataset, ...raw('slow.js'), ...keyFile()], {
      ...env,
      C2D_CONSUMER_KEY: client.wallet.privateKey,
    });
    expect(start.code).toBe(0);
    const jobId = start.stdout.trim();
    expect(jobId).toMatch(/^[0-9a-f]{32}$/);
    await waitFor('the algorithm to run', async () => (await client.job(jobId))?.status === 40, 60_000, 200);

    const logs = spawn(process.execPath, [CLI, 'logs', jobId, ...keyFile()], { env: { PATH: process.env.PATH ?? '', ...env } });
    let logged = '';
    logs.stdout.on('data', (d: Buffer) => (logged += d.toString()));
    const logsExited = new Promise<number | null>((r) => logs.once('exit', r));
    await waitFor('the live log', () => logged.includes('slow started'), 30_000, 20);
    // the key from the environment this time
    const stop = await c2d(['stop', jobId], { ...env, C2D_CONSUMER_KEY: client.wallet.privateKey });
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain('stop requested: 1');
    // the live log ends with the stopped step
    expect(await logsExited).toBe(0);
    await waitFor('the job to end', async () => [70, 41].includes((await client.job(jobId))?.status ?? 0), 60_000, 200);

    const del = await c2d(['delete', jobId, ...keyFile()], env);
    expect(del.code).toBe(0);
    const status = await c2d(['status', jobId, ...keyFile()], env);
    expect(status.stdout).toContain('(removed)');
  });

  it('when asked for help, then the help goes to stdout and the CLI exits 0; with no command it exits 2 with a hint on stderr', async () => {
    for (const args of [['--help'], ['-h'], ['help'], ['start', '--help']]) {
      const help = await c2d(args, env);
      expect({ args, code: help.code, stderr: help.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(help.stdout).toMatch(/^c2d — a consumer of a Compute-to-Data provider\n\nusage:\n/);
      expect(help.stdout).toContain('exit codes: 0 done');
    }
    const none = await c2d([], env);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toBe("c2d: a command is needed (envs, start, status, logs, results, stop, delete, catalog)\nRun 'c2d --help' for usage.\n");
  });

  it('when the input is wrong or the provider is away, then the CLI says so with distinct exit codes', async () => {
    const noKey = await c2d(['status', 'f'.repeat(32)], env);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--key-file');
    expect(noKey.stderr).toContain("Run 'c2d --help' for usage.");
    expect(noKey.stdout).toBe('');
    const unknownJob = await c2d(['status', 'f'.repeat(32), ...keyFile()], env);
    expect(unknownJob.code).toBe(1);
    const refused = await c2d(['start', '--env', 'nope', '--dataset', dataset, ...raw('count.js'), ...keyFile()], env);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('Compute environment does not exist');
    const away = await c2d(['envs', '--provider', 'http://127.0.0.1:9'], env);
    expect(away.code).toBe(4);
    expect(away.stderr).toContain('unreachable');
  });
});
