/**
 * A process backend run by a worker that is not root (started by test/integration/process-backend-subids.test.ts
 * as a throw-away user with subordinate ids): one job through configure, algorithm and publish, then its
 * cleanup. While the algorithm runs, it records the host uids of the processes in the algorithm's cgroup.
 * Prints one JSON line with what it saw. Usage: node subid-worker.js <dataDir>
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultProgramsDir, ProcessBackend } from '../../src/compute/process/backend';
import { cgroupPids, detectCgroups, stepCgroupDirs } from '../../src/compute/process/cgroups';
import { cgroupName } from '../../src/compute/process/layout';
import { defaultRuntimes } from '../../src/config';
import { hooks, newJobId, readAll, runAlgorithm, silentLogger, testEnvironment, testSandbox } from './process-backend';

const hostUidOf = (pid: number): number | null => {
  try {
    const line = fs
      .readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Uid:'));
    return line ? Number(line.split(/\s+/)[1]) : null;
  } catch {
    return null; // gone
  }
};

/** the programs sandbox-args.ts chains before bwrap */
const LAUNCHERS = new Set(['sh', 'dash', 'bash', 'prlimit', 'nsenter', 'setpriv']);

const cmdline = (pid: number): string => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};

/** Every path under dir whose owner is not `uid`. */
const notOwnedBy = (dir: string, uid: number): string[] => {
  const out: string[] = [];
  const walk = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.uid !== uid) out.push(`${path.relative(dir, p)} (uid ${st.uid})`);
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) walk(path.join(p, n));
  };
  walk(dir);
  return out;
};

async function main(): Promise<void> {
  const dataDir = process.argv[2] ?? '';
  const workerUid = process.getuid?.() ?? -1;
  const backend = new ProcessBackend({
    dataDir,
    runtimes: defaultRuntimes(process.execPath),
    sandbox: testSandbox,
    programsDir: defaultProgramsDir(),
    logger: silentLogger,
  });
  const jobId = newJobId();
  const cgroups = detectCgroups(testSandbox.cgroupRoot);
  const seen = new Set<number>();
  let watching = true;
  const watch = (async () => {
    while (watching) {
      for (const pid of cgroupPids(stepCgroupDirs(cgroups, cgroupName(jobId, 'algorithm')))) {
        // the algorithm's own processes: not the launch chain that joins the cgroup and then drops to the job's
        // uid (sh → prlimit → setpriv, the supervisor's uid until setpriv execs bwrap), whose argv names it too
        const argv = cmdline(pid).split('\0');
        if (!argv.some((a) => a.includes('/data/transformations/algorithm')) || LAUNCHERS.has(path.basename(argv[0] ?? ''))) continue;
        const uid = hostUidOf(pid);
        if (uid !== null) seen.add(uid);
      }
      await sleep(50);
    }
  })();
  const code = `
const fs = require('fs');
fs.writeFileSync('/data/outputs/result.txt', 'made by ' + process.getuid());
fs.chmodSync('/data/outputs/result.txt', 0o600);
fs.mkdirSync('/data/outputs/private', { mode: 0o700 });
fs.writeFileSync('/data/outputs/private/secret.txt', 'x');
setTimeout(() => console.log('done'), 1500);`;
  const { algorithm } = await runAlgorithm(backend, jobId, { code, env: testEnvironment() });
  watching = false;
  await watch;
  const jobUid = backend.jobUid(jobId);
  const publish = await backend.runStep({ jobId, environment: testEnvironment(), step: 'publish' }, hooks());
  const files = await backend.listPublished(jobId);
  const result = files.find((f) => f.filename === 'result.txt');
  const resultText = result ? await readAll(result.open()) : null;
  const jobRoot = path.join(backend.paths.workDir, 'jobs', jobId);
  const foreignBeforeCleanup = notOwnedBy(jobRoot, workerUid);
  await backend.cleanup(jobId);

  // a second job, stopped while its algorithm runs: the worker kills processes of a uid not its own
  const stoppedJob = newJobId();
  const long = runAlgorithm(backend, stoppedJob, { code: "console.log('started'); setTimeout(() => undefined, 60000);", env: testEnvironment() });
  const algorithmDirs = stepCgroupDirs(cgroups, cgroupName(stoppedJob, 'algorithm'));
  for (let i = 0; i < 200 && !cgroupPids(algorithmDirs).some((pid) => cmdline(pid).includes('/data/transformations/algorithm')); i++) await sleep(50);
  const stopAt = Date.now();
  await backend.stopJob(stoppedJob);
  const stopped = (await long).algorithm;
  const stopMs = Date.now() - stopAt;
  const stoppedRoot = path.join(backend.paths.workDir, 'jobs', stoppedJob);
  await backend.cleanup(stoppedJob);
  console.log(
    JSON.stringify({
      workerUid,
      jobUid,
      algorithmUids: [...seen],
      algorithm: { exitCode: algorithm.exitCode, reason: algorithm.reason },
      publish: { exitCode: publish.exitCode, reason: publish.reason },
      published: files.map((f) => f.filename),
      resultText,
      foreignBeforeCleanup,
      jobRootGone: !fs.existsSync(jobRoot),
      stopped: { reason: stopped.reason, withinMs: stopMs < 10_000, leftPids: cgroupPids(algorithmDirs).length, rootGone: !fs.existsSync(stoppedRoot) },
    }),
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
