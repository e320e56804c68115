import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { subordinateRange } from '../../src/compute/process/idmap';
import { describeAsRoot } from '../helpers/privilege';

const REPO = path.resolve(__dirname, '../..');
const CGROUP_CONTROLLERS = ['memory', 'cpu', 'pids'].map((c) => `/sys/fs/cgroup/${c}/c2d`);

const run = (cmd: string, args: string[]): void => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
};

/** The most end of the ranges in an /etc/subuid-style file (where a new range may start). */
const rangesEnd = (file: string): number => {
  let end = 100_000;
  for (const line of (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '').split('\n')) {
    const [, start, count] = line.split(':');
    if (start && count) end = Math.max(end, Number(start) + Number(count));
  }
  return end;
};

interface WorkerReport {
  workerUid: number;
  jobUid: number;
  algorithmUids: number[];
  algorithm: { exitCode: number | null; reason: string };
  publish: { exitCode: number | null; reason: string };
  published: string[];
  resultText: string | null;
  foreignBeforeCleanup: string[];
  jobRootGone: boolean;
  stopped: { reason: string; withinMs: boolean; leftPids: number; rootGone: boolean };
}

/**
 * A worker that is not root gives each job a host uid of its own from its user's subordinate ids
 * (src/compute/process/idmap.ts). The test creates a throw-away user with such ids, delegates the job
 * cgroups to it, and runs test/helpers/subid-worker.ts as that user in a mount namespace of its own
 * (this clone may sit in root's 0700 home: dist/ and node_modules/ are bound where the user reaches them).
 */
describeAsRoot('creates a throw-away user with subordinate ids and delegates the c2d cgroups to it')('process backend run by a worker that is not root', () => {
  const user = `c2dsub${randomBytes(3).toString('hex')}`;
  const bindRoot = `/run/c2d-subids-${randomBytes(4).toString('hex')}`;
  let dataDir = '';
  let uid = 0;
  let subuids: { start: number; count: number } | null = null;
  const cgroupOwners = new Map<string, { uid: number; gid: number } | null>();

  /** the subordinate-id files this test created (a fresh machine may have none): removed again afterwards */
  const createdFiles: string[] = [];

  beforeAll(() => {
    for (const file of ['/etc/subuid', '/etc/subgid']) {
      if (fs.existsSync(file)) continue;
      fs.writeFileSync(file, '', { mode: 0o644 });
      createdFiles.push(file);
    }
    run('useradd', ['--create-home', '--user-group', '--shell', '/bin/sh', user]);
    uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
    if (!subordinateRange(fs.existsSync('/etc/subuid') ? fs.readFileSync('/etc/subuid', 'utf8') : '', { name: user, uid })) {
      const start = Math.max(rangesEnd('/etc/subuid'), rangesEnd('/etc/subgid'));
      run('usermod', ['--add-subuids', `${start}-${start + 65_535}`, '--add-subgids', `${start}-${start + 65_535}`, user]);
    }
    subuids = subordinateRange(fs.readFileSync('/etc/subuid', 'utf8'), { name: user, uid });
    for (const dir of CGROUP_CONTROLLERS) {
      const st = fs.existsSync(dir) ? fs.statSync(dir) : null;
      cgroupOwners.set(dir, st ? { uid: st.uid, gid: st.gid } : null);
    }
    run('bash', [path.join(REPO, 'tools/delegate-cgroups.sh'), user]);
    dataDir = path.join('/home', user, 'c2d-data');
    for (const d of [bindRoot, path.join(bindRoot, 'dist'), path.join(bindRoot, 'node_modules')]) fs.mkdirSync(d, { mode: 0o755 });
  });

  afterAll(() => {
    // the worker removed its job cgroups; the delegation is undone (or the dirs it created removed)
    for (const [dir, owner] of cgroupOwners) {
      if (owner) run('chown', ['-R', `${owner.uid}:${owner.gid}`, dir]);
      else if (fs.existsSync(dir)) fs.rmdirSync(dir);
    }
    // the spare supervisor leaves once its worker is gone (EOF on its stdin): wait for the user's last process, then remove the user
    for (let i = 0; i < 100 && spawnSync('pgrep', ['-u', user]).status === 0; i++) spawnSync('sleep', ['0.1']);
    spawnSync('pkill', ['-KILL', '-u', user]);
    for (let i = 0; i < 50 && spawnSync('userdel', ['--remove', user]).status !== 0; i++) spawnSync('sleep', ['0.1']);
    if (fs.readFileSync('/etc/passwd', 'utf8').includes(`${user}:`)) throw new Error(`could not remove the test user ${user}`);
    for (const file of ['/etc/subuid', '/etc/subgid']) {
      if (!fs.existsSync(file)) continue;
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const kept = lines.filter((l) => !l.startsWith(`${user}:`) && !l.startsWith(`${uid}:`));
      if (kept.length !== lines.length) fs.writeFileSync(file, kept.join('\n'));
    }
    fs.rmSync(bindRoot, { recursive: true, force: true });
    for (const file of createdFiles) for (const f of [file, `${file}-`]) fs.rmSync(f, { force: true });
  });

  /** Runs the worker program as the user; resolves with its report. */
  const runWorker = (): Promise<WorkerReport> =>
    new Promise((resolve, reject) => {
      const script = [
        `mount --bind ${REPO}/dist ${bindRoot}/dist`,
        `mount --bind ${REPO}/node_modules ${bindRoot}/node_modules`,
        `exec setpriv --reuid=${uid} --regid=${uid} --init-groups env HOME=/home/${user} PATH=/usr/bin:/bin ${process.execPath} ${bindRoot}/dist/test/helpers/subid-worker.js ${dataDir}`,
      ].join(' && ');
      const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        const line = out.trim().split('\n').pop() ?? '';
        if (code !== 0) return reject(new Error(`the worker failed (${code}): ${err}${out}`));
        resolve(JSON.parse(line) as WorkerReport);
      });
    });

  test('when a job runs, then its algorithm runs as a host uid of its own from the subordinate ids, never as the worker, and the worker still publishes, stops and removes everything', async () => {
    const report = await runWorker();
    expect(report.workerUid).toBe(uid);
    expect(subuids).not.toBeNull();
    const range = subuids!;
    // its own uid: one of the user's subordinate ids, not the worker's
    expect(report.jobUid).toBeGreaterThanOrEqual(range.start);
    expect(report.jobUid).toBeLessThan(range.start + range.count);
    expect(report.algorithmUids).toEqual([report.jobUid]);
    expect(report.algorithm).toEqual({ exitCode: 0, reason: '' });
    // what the algorithm wrote (0600, in a 0700 dir of its own) went back to the worker, which published it
    expect(report.publish).toEqual({ exitCode: 0, reason: '' });
    expect(report.published).toEqual(['result.txt', 'algorithm.log', 'configure.log', 'publish.log']);
    expect(report.resultText).toBe('made by 1000');
    expect(report.foreignBeforeCleanup).toEqual([]);
    expect(report.jobRootGone).toBe(true);
    // the worker stops a job whose processes run as a uid not its own (it owns their namespace), and removes it
    expect(report.stopped).toEqual({ reason: 'stopped', withinMs: true, leftPids: 0, rootGone: true });
  }, 120_000);
});
