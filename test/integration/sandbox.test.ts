import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import { runChild } from '../../src/compute/process/child';
import { DEFAULT_UID_RANGE } from '../../src/compute/process/job-uids';
import { createJobDirs, jobPaths, stepPaths } from '../../src/compute/process/layout';
import { buildSandboxArgs, wrapSandboxCommand } from '../../src/compute/process/sandbox-args';
import { seccompProgram } from '../../src/compute/process/seccomp';
import { algorithmSandbox } from '../../src/compute/process/steps';
import { algorithmLog, createTestBackend, newJobId, runAlgorithm, testEnvironment, type TestBackend } from '../helpers/process-backend';
import { jobPids } from './helpers';

let t: TestBackend;
const jobs: string[] = [];
const job = (): string => {
  const id = newJobId();
  jobs.push(id);
  return id;
};
const output = (jobId: string, name: string): unknown => JSON.parse(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'outputs', name), 'utf8'));

beforeAll(() => {
  t = createTestBackend();
});
afterAll(async () => {
  for (const id of jobs) await t.backend.cleanup(id);
  t.dispose();
});

describe('sandbox: what an algorithm cannot do', () => {
  test('when it dials a server on the host loopback, then the connection fails, the server sees nothing, and only lo exists', async () => {
    let accepted = 0;
    const server = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const jobId = job();
      const code = `
        const net = require('net'), os = require('os'), fs = require('fs');
        const s = net.connect(${port}, '127.0.0.1');
        const done = (r) => { fs.writeFileSync('/data/outputs/net.json', JSON.stringify({ r, ifaces: Object.keys(os.networkInterfaces()), dev: fs.readFileSync('/proc/net/dev', 'utf8') })); process.exit(0); };
        s.on('connect', () => done('connected'));
        s.on('error', (e) => done(e.code));`;
      const { algorithm } = await runAlgorithm(t.backend, jobId, { code });
      expect(algorithm.exitCode).toBe(0);
      const seen = output(jobId, 'net.json') as { r: string; ifaces: string[]; dev: string };
      expect(seen.r).toBe('ECONNREFUSED');
      expect(seen.ifaces).toEqual(['lo']);
      const devices = seen.dev
        .split('\n')
        .slice(2)
        .filter(Boolean)
        .map((l) => l.split(':')[0]?.trim());
      expect(devices).toEqual(['lo']);
      expect(accepted).toBe(0);
    } finally {
      server.close();
    }
  });

  test('when it writes to its inputs or its own code, then the writes fail read-only', async () => {
    const jobId = job();
    const code = `
      const fs = require('fs');
      const tryWrite = (f) => { try { fs.writeFileSync(f, 'x'); return 'written'; } catch (e) { return e.code; } };
      fs.writeFileSync('/data/outputs/w.json', JSON.stringify([tryWrite('/data/inputs/new'), tryWrite('/data/inputs/algoCustomData.json'), tryWrite('/data/transformations/algorithm'), tryWrite('/usr/x'), tryWrite('/data/logs/mine.log')]));`;
    const environment = testEnvironment();
    const configure = await t.backend.runStep(
      {
        jobId,
        environment,
        step: 'configure',
        configure: { datasets: [], algorithm: { did: null, ddo: null, rawcode: code }, algoCustomData: { a: 1 }, maxInputBytes: 1e6 },
      },
      { heartbeat: () => undefined, signal: new AbortController().signal },
    );
    expect(configure.exitCode).toBe(0);
    const algorithm = await t.backend.runStep(
      {
        jobId,
        environment,
        step: 'algorithm',
        algorithm: { container: { image: 'node', tag: '1', entrypoint: 'node $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
      },
      { heartbeat: () => undefined, signal: new AbortController().signal },
    );
    expect(algorithm.exitCode).toBe(0);
    const results = output(jobId, 'w.json') as string[];
    for (const r of results.slice(0, 4)) expect(['EROFS', 'EACCES']).toContain(r);
    expect(results[4]).toBe('written');
    expect(fs.readFileSync(path.join(t.dataDir, 'jobs', jobId, 'data', 'inputs', 'algoCustomData.json'), 'utf8')).toBe('{"a":1}');
  });

  test("when it reads the provider key, the data dir or another job's files, then none of them is visible", async () => {
    const keyFile = path.join(t.dataDir, 'provider.key');
    fs.writeFileSync(keyFile, '0xsecret\n', { mode: 0o600 });
    const other = job();
    await runAlgorithm(t.backend, other, { code: `require('fs').writeFileSync('/data/outputs/private.txt', 'other job secret')` });
    const otherFile = path.join(t.dataDir, 'jobs', other, 'data', 'outputs', 'private.txt');
    expect(fs.existsSync(otherFile)).toBe(true);
    const jobId = job();
    const targets = [keyFile, otherFile, t.dataDir, path.join(t.dataDir, 'jobs'), path.join(t.dataDir, 'jobs', jobId, 'secret'), '/root', '/etc/passwd'];
    const code = `
      const fs = require('fs');
      const look = (p) => { try { fs.statSync(p); return 'visible'; } catch (e) { return e.code; } };
      fs.writeFileSync('/data/outputs/r.json', JSON.stringify(${JSON.stringify(targets)}.map(look)));`;
    const { algorithm } = await runAlgorithm(t.backend, jobId, { code });
    expect(algorithm.exitCode).toBe(0);
    expect(output(jobId, 'r.json')).toEqual(targets.map(() => 'ENOENT'));
  });

  test('when it exhausts memory, then the kernel kills it and the outcome says oom', async () => {
    const jobId = job();
    const code = `const a = []; for (;;) a.push(Buffer.alloc(8 * 1024 * 1024, 1));`;
    const { algorithm } = await runAlgorithm(t.backend, jobId, { code, env: testEnvironment({ ramGB: 0.125 }) });
    expect(algorithm.oomKilled).toBe(true);
    expect(algorithm.reason).toBe('oom');
    expect([137, null]).toContain(algorithm.exitCode);
  });

  test('when it forks without end, then the pids limit contains it and a concurrent job still succeeds', async () => {
    const bomb = job();
    const neighbour = job();
    const maxProcesses = 32;
    const bombCode = `import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n`;
    const running = runAlgorithm(t.backend, bomb, {
      code: bombCode,
      image: 'python',
      entrypoint: 'python3 $ALGO',
      env: testEnvironment({ maxJobDuration: 3, process: { maxProcesses } }),
    });
    let peak = 0;
    const pidsDir = `/sys/fs/cgroup/pids/c2d/${bomb}-algorithm`;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, Number(fs.readFileSync(path.join(pidsDir, 'pids.current'), 'utf8')));
      } catch {
        // not created yet or already removed
      }
    }, 50);
    await sleep(800);
    const started = Date.now();
    const ok = await runAlgorithm(t.backend, neighbour, { code: `require('fs').writeFileSync('/data/outputs/ok.txt', 'fine')` });
    const neighbourMs = Date.now() - started;
    const { algorithm } = await running;
    clearInterval(sampler);
    expect(ok.algorithm.exitCode).toBe(0);
    expect(neighbourMs).toBeLessThan(10_000);
    expect(algorithm.reason).toBe('deadline');
    expect(peak).toBeGreaterThan(maxProcesses / 2);
    expect(peak).toBeLessThanOrEqual(maxProcesses + 4);
    expect(fs.existsSync(pidsDir)).toBe(false);
  });

  test('when a step runs, then its cgroups carry the environment limits', async () => {
    const jobId = job();
    const running = runAlgorithm(t.backend, jobId, {
      code: `console.log('up'); setTimeout(() => {}, 1500)`,
      env: testEnvironment({ ramGB: 0.125, cpuNumber: 0.5, process: { maxProcesses: 40 } }),
    });
    for (let i = 0; i < 100 && !algorithmLog(t.dataDir, jobId).includes('up'); i++) await sleep(30);
    const read = (c: string, f: string): string => fs.readFileSync(`/sys/fs/cgroup/${c}/c2d/${jobId}-algorithm/${f}`, 'utf8').trim();
    expect(read('memory', 'memory.limit_in_bytes')).toBe(String(128 * 1024 * 1024));
    expect(read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(read('pids', 'pids.max')).toBe('44');
    expect(read('pids', 'cgroup.procs').split('\n').length).toBeGreaterThan(0);
    expect((await running).algorithm.exitCode).toBe(0);
  });

  test('when it loops forever, then the wall-clock deadline ends it', async () => {
    const jobId = job();
    const started = Date.now();
    const { algorithm } = await runAlgorithm(t.backend, jobId, { code: `console.log('looping'); for (;;) {}`, env: testEnvironment({ maxJobDuration: 1 }) });
    expect(algorithm).toMatchObject({ exitCode: null, reason: 'deadline', oomKilled: false });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(algorithmLog(t.dataDir, jobId)).toContain('looping');
  });

  test.each([
    ['one file over the limit (RLIMIT_FSIZE)', `require('fs').writeFileSync('/data/outputs/big', Buffer.alloc(4 * 1024 * 1024, 1))`],
    [
      'many small files over the limit (size check)',
      `for (let i = 0; i < 16; i++) require('fs').writeFileSync('/data/outputs/f' + i, Buffer.alloc(256 * 1024, 1)); setTimeout(() => {}, 10000)`,
    ],
  ])('when it writes %s, then the step ends with output-limit', async (_name, code) => {
    const jobId = job();
    const { algorithm } = await runAlgorithm(t.backend, jobId, { code, env: testEnvironment({ process: { maxOutputBytes: 1024 * 1024 } }) });
    expect(algorithm.reason).toBe('output-limit');
    expect(algorithm.exitCode).not.toBe(0);
  });
});

describe('sandbox: a uid of its own for every job (the worker is root)', () => {
  const waitForLog = async (jobId: string, text: string): Promise<void> => {
    for (let i = 0; i < 1500 && !algorithmLog(t.dataDir, jobId).includes(text); i++) await sleep(20);
    expect(algorithmLog(t.dataDir, jobId)).toContain(text);
  };
  /** The real, effective, saved and file-system uids of each process of the job (the host's view). */
  const hostUids = (jobId: string): number[][] =>
    jobPids(jobId).map((pid) => {
      const line =
        fs
          .readFileSync(`/proc/${pid}/status`, 'utf8')
          .split('\n')
          .find((l) => l.startsWith('Uid:')) ?? '';
      return line.split(/\s+/).slice(1, 5).map(Number);
    });
  /** Runs `cat` or `ls` on the host as `uid` (what a process of that job could do, had it left its mounts). */
  const asUid = (uid: number, cmd: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync('/usr/bin/setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...cmd], { encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  };

  test("when two jobs run at once, then each runs as its own host uid (not the worker's), owns its 0700 dirs, and cannot read the other's inputs or outputs", async () => {
    expect(process.getuid?.()).toBe(0);
    const a = job();
    const b = job();
    // each keeps running until the test writes `release` into its outputs (at most 40 s)
    const hold = `const until = Date.now() + 40000; const held = setInterval(() => { if (require('fs').existsSync('/data/outputs/release') || Date.now() > until) clearInterval(held); }, 20);`;
    const release = (): void => {
      for (const id of [a, b]) {
        const outputs = path.join(t.dataDir, 'jobs', id, 'data', 'outputs');
        if (fs.existsSync(outputs)) fs.writeFileSync(path.join(outputs, 'release'), '');
      }
    };
    const runningB = runAlgorithm(t.backend, b, {
      code: `require('fs').writeFileSync('/data/outputs/b-secret.txt', 'only b'); console.log('b up'); ${hold}`,
    });
    await waitForLog(b, 'b up');
    const bRoot = path.join(t.dataDir, 'jobs', b);
    const bFiles = {
      inputs: path.join(bRoot, 'data', 'inputs'),
      code: path.join(bRoot, 'data', 'transformations', 'algorithm'),
      output: path.join(bRoot, 'data', 'outputs', 'b-secret.txt'),
    };
    const targets = [bFiles.inputs, bFiles.code, bFiles.output, bRoot, path.join(t.dataDir, 'jobs')];
    const runningA = runAlgorithm(t.backend, a, {
      code: `
        const fs = require('fs');
        const look = (p) => { try { return fs.statSync(p).isDirectory() ? fs.readdirSync(p) : fs.readFileSync(p, 'utf8'); } catch (e) { return e.code; } };
        fs.writeFileSync('/data/outputs/a.json', JSON.stringify(${JSON.stringify(targets)}.map(look)));
        console.log('a up'); ${hold}`,
    });
    /** Both running now: the host's view of their processes and files. */
    const checkBothRunning = (): void => {
      const uidA = t.backend.jobUid(a);
      const uidB = t.backend.jobUid(b);
      expect(uidA).toBeDefined();
      expect(uidB).toBeDefined();
      expect(uidA).not.toBe(uidB);
      for (const [id, uid] of [
        [a, uidA],
        [b, uidB],
      ] as const) {
        expect(uid).toBeGreaterThanOrEqual(DEFAULT_UID_RANGE.base);
        expect(uid).toBeLessThan(DEFAULT_UID_RANGE.base + DEFAULT_UID_RANGE.count);
        const uids = hostUids(id);
        expect(uids.length).toBeGreaterThan(0);
        for (const u of uids) expect(u).toEqual([uid, uid, uid, uid]); // never the worker's 0, never the other job's
        for (const d of ['data', 'data/inputs', 'data/outputs', 'data/transformations', 'data/logs', 'publish', 'secret']) {
          const st = fs.statSync(path.join(t.dataDir, 'jobs', id, d));
          expect([d, st.uid, st.gid, st.mode & 0o777]).toEqual([d, uid, uid, 0o700]);
        }
      }
      // as job A's uid on the host, B's files stay closed; as B's own uid they open
      for (const cmd of [
        ['ls', bFiles.inputs],
        ['cat', bFiles.code],
        ['cat', bFiles.output],
      ]) {
        const denied = asUid(uidA!, cmd);
        expect(denied.status).not.toBe(0);
        expect(denied.stderr).toContain('Permission denied');
      }
      expect(asUid(uidB!, ['cat', bFiles.output])).toMatchObject({ status: 0 });
    };
    try {
      await waitForLog(a, 'a up');
      checkBothRunning();
    } finally {
      release();
    }
    const [doneA, doneB] = await Promise.all([runningA, runningB]);
    expect(doneA.algorithm.exitCode).toBe(0);
    expect(doneB.algorithm.exitCode).toBe(0);
    // inside its sandbox, A never even sees B's paths
    expect(output(a, 'a.json')).toEqual(targets.map(() => 'ENOENT'));
  });

  test('when a job is cleaned up, then its uid is released and its files are gone', async () => {
    const id = newJobId();
    await runAlgorithm(t.backend, id, { code: `require('fs').writeFileSync('/data/outputs/x', 'x')` });
    const uid = t.backend.jobUid(id);
    expect(uid).toBeGreaterThanOrEqual(DEFAULT_UID_RANGE.base);
    expect(fs.readFileSync(path.join(t.uidSlotsDir, 'uids', String(uid)), 'utf8')).toContain(id);
    await t.backend.cleanup(id);
    expect(t.backend.jobUid(id)).toBeUndefined();
    expect(fs.existsSync(path.join(t.uidSlotsDir, 'uids', String(uid)))).toBe(false);
    expect(fs.existsSync(path.join(t.dataDir, 'jobs', id))).toBe(false);
  });
});

describe('sandbox: the seccomp filter without root', () => {
  test('when a worker that is not root runs a step, then bwrap still loads the filter (unprivileged) and refused calls get EPERM', async () => {
    // a worker running as an ordinary user: the same wrapper and bwrap arguments, no uid switch, started as uid 65534
    const user = 65534;
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-seccomp-user-'));
    try {
      const job = jobPaths(workDir, newJobId());
      const sp = stepPaths(job, 'algorithm');
      createJobDirs(job, sp, undefined);
      fs.writeFileSync(sp.seccomp, seccompProgram(), { mode: 0o600 });
      fs.writeFileSync(
        path.join(job.transformations, 'algorithm'),
        [
          'import ctypes, json, os, platform',
          'libc = ctypes.CDLL(None, use_errno=True)',
          'x86 = platform.machine() == "x86_64"',
          'def call(a, b, *args):',
          '    return "ok" if libc.syscall(a if x86 else b, *args) >= 0 else os.strerror(ctypes.get_errno())',
          'status = [l for l in open("/proc/self/status").read().splitlines() if l.startswith("Seccomp:")]',
          'print(json.dumps({"uid": os.getuid(), "ptrace": call(101, 117, 0, 0, 0, 0), "keyctl": call(250, 219, 0, 0, 0), "status": status}))',
        ].join('\n'),
      );
      chownTree(workDir, user);
      const python = fs.realpathSync('/usr/bin/python3');
      const sandbox = algorithmSandbox(
        job,
        { container: { image: 'python', tag: '3', entrypoint: 'python3 $ALGO', checksum: 'sha256:0' }, env: {}, allowNetwork: false },
        { command: python, names: ['python3'] },
        1 << 20,
      );
      const bin = { sh: '/bin/sh', prlimit: '/usr/bin/prlimit', setpriv: '/usr/bin/setpriv', bwrap: '/usr/bin/bwrap' };
      const argv = wrapSandboxCommand({ cgroupProcs: [], seccompFile: sp.seccomp, bin }, buildSandboxArgs(sandbox));
      let out = '';
      const exit = await runChild([bin.setpriv, `--reuid=${user}`, `--regid=${user}`, '--clear-groups', ...argv], (c) => (out += c.toString()), {
        shell: '/bin/sh',
      });
      expect({ exit, out }).toMatchObject({ exit: { code: 0 } });
      expect(JSON.parse(out)).toEqual({ uid: 1000, ptrace: 'Operation not permitted', keyctl: 'Operation not permitted', status: ['Seccomp:\t2'] });
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });
});

/** What an ordinary user's worker would own: its whole work dir. */
function chownTree(dir: string, uid: number): void {
  fs.chownSync(dir, uid, uid);
  for (const rel of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) fs.chownSync(path.join(dir, rel), uid, uid);
}
