/**
 * Runs one job step of the process backend (the algorithm) and records how it ended. Started detached
 * (own session) by the worker, so it outlives a crashed worker the way a pod outlives its operator: a
 * retried activity finds the step running (and waits) or finished (and reads state.json).
 * Usage: node supervisor.js <spec.json>, or `node supervisor.js --wait`: a spare started ahead of time
 * (its modules already loaded) that reads the spec's path from stdin, and exits at EOF without one: its worker is gone.
 * `node supervisor.js <spec.json> --attached`: a step its worker waits for (configuration and publishing
 * of a worker that is not root, which runs every step under a supervisor: idmap.ts); at EOF on stdin (the
 * worker is gone) it kills the step and exits, as bwrap's --die-with-parent does when the worker runs it.
 */
import fs from 'node:fs';
import { format } from 'node:util';
import { killCgroups } from '../compute/process/cgroups';
import { recordExit, runPlannedStep } from '../compute/process/runner';
import { readStepSpec, writeJsonAtomic } from '../compute/process/spec';

/** The spec's path: the argument, or (--wait) the first line on stdin. */
function specPath(): Promise<string> {
  const arg = process.argv[2] ?? '';
  if (arg !== '--wait') return Promise.resolve(arg);
  return new Promise((resolve) => {
    let buf = '';
    let got = false;
    const gone = (): void => {
      if (!got) process.exit(0);
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0 || got) return;
      got = true;
      process.stdin.destroy(); // from now on it lives on its own, whatever happens to the worker
      resolve(buf.slice(0, nl));
    });
    process.stdin.on('end', gone);
    process.stdin.on('error', gone);
  });
}

async function main(): Promise<void> {
  const file = await specPath();
  const spec = readStepSpec(file);
  if (!spec) throw new Error(`no valid step spec in ${file}`);
  const own = spec.supervisorLog;
  if (own) console.error = (...args: unknown[]) => fs.appendFileSync(own, `${format(...args)}\n`, { mode: 0o600 });
  if (process.argv[3] === '--attached') {
    const workerGone = (): void => void killCgroups(spec.cgroupDirs, 10_000).finally(() => process.exit(1));
    process.stdin.on('end', workerGone);
    process.stdin.on('error', workerGone);
    process.stdin.resume();
  }
  try {
    writeJsonAtomic(spec.stateFile, { status: 'running', supervisorPid: process.pid, startedAt: Date.now() });
    await runPlannedStep(spec, { shell: '/bin/sh', detached: false });
  } catch (err) {
    console.error('supervisor failed', err);
    recordExit(spec.stateFile, { exitCode: null, signal: null, oomKilled: false, reason: `start-failed: ${(err as Error).message}` });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('supervisor crashed', err);
    process.exit(1);
  },
);
