/**
 * Runs job steps of the process backend (the algorithm) and records how each ended. Started detached
 * (own session) by the worker, so it outlives a crashed worker the way a pod outlives its operator: a
 * retried activity finds the step running (and waits) or finished (and reads state.json).
 * Usage: node supervisor.js <spec.json>: that one step, then it exits. `node supervisor.js --wait`: a
 * spare started ahead of time (its modules already loaded) that reads specs' paths from stdin, one a line,
 * runs each step to its end and then says `ready` on stdout, for its worker to hand it the next one; at end
 * of file (its worker is gone, or wants no more of it) it exits, once the step it runs has ended.
 * `node supervisor.js <spec.json> --attached`: a step its worker waits for (configuration and publishing
 * of a worker that is not root, which runs every step under a supervisor: idmap.ts); at EOF on stdin (the
 * worker is gone) it kills the step and exits, as bwrap's --die-with-parent does when the worker runs it.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { format } from 'node:util';
import { killCgroups } from '../compute/process/cgroups';
import { recordExit, runPlannedStep } from '../compute/process/runner';
import { readStepSpec, writeJsonAtomic } from '../compute/process/spec';

const defaultError = console.error;

/** The step of `file` to its end, its state recorded whatever happens. */
async function runStep(file: string, attached: boolean): Promise<void> {
  const spec = readStepSpec(file);
  if (!spec) throw new Error(`no valid step spec in ${file}`);
  const own = spec.supervisorLog;
  console.error = own ? (...args: unknown[]) => fs.appendFileSync(own, `${format(...args)}\n`, { mode: 0o600 }) : defaultError;
  if (attached) {
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

/** --wait: one step after the other, as its worker hands them over; the worker's end (EOF) ends it only between steps. */
async function serve(): Promise<void> {
  process.stdout.on('error', () => process.exit(0)); // its worker is gone
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line) continue;
    await runStep(line, false);
    console.error = defaultError;
    process.stdout.write('ready\n');
  }
}

async function main(): Promise<void> {
  const arg = process.argv[2] ?? '';
  if (arg === '--wait') await serve();
  else await runStep(arg, process.argv[3] === '--attached');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('supervisor crashed', err);
    process.exit(1);
  },
);
