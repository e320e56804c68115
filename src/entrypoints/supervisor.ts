/**
 * Runs one job step of the process backend and records how it ended. Started detached (own session)
 * by the worker, so it outlives a crashed worker the way a pod outlives its operator: a retried
 * activity finds the step running (and waits) or finished (and reads state.json).
 * Usage: node supervisor.js <spec.json>, or `node supervisor.js --wait`: a spare started ahead of time
 * that reads the spec's path from stdin (and exits at EOF without one: its worker is gone). Node built-ins only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import { killCgroups, oomKills, removeCgroups } from '../compute/process/cgroups';
import { runChild } from '../compute/process/child';
import { openStepLog, type StepState, type SupervisorSpec, writeJsonAtomic } from '../compute/process/state';

const SIZE_CHECK_MS = 500;
const SIGXFSZ_EXIT = 128 + 25; // bwrap reports a child killed by signal n as 128 + n

function dirSize(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = path.join(d, name);
      try {
        const st = fs.lstatSync(p);
        if (st.isDirectory()) stack.push(p);
        else total += st.size;
      } catch {
        // removed while we looked
      }
    }
  }
  return total;
}

function removeQuietly(files: string[] | undefined): void {
  for (const f of files ?? []) fs.rmSync(f, { force: true });
}

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
  const spec = JSON.parse(fs.readFileSync(await specPath(), 'utf8')) as SupervisorSpec;
  const own = spec.supervisorLog;
  if (own) console.error = (...args: unknown[]) => fs.appendFileSync(own, `${format(...args)}\n`, { mode: 0o600 });
  const startedAt = Date.now();
  const finish = (s: Omit<Extract<StepState, { status: 'exited' }>, 'status' | 'startedAt' | 'finishedAt'>): void => {
    removeQuietly(spec.removeOnExit);
    try {
      removeCgroups(spec.cgroupDirs);
    } catch {
      // still busy: cleanup removes it later
    }
    writeJsonAtomic(spec.stateFile, { status: 'exited', ...s, startedAt, finishedAt: Date.now() } satisfies StepState);
  };
  try {
    writeJsonAtomic(spec.stateFile, { status: 'running', supervisorPid: process.pid, startedAt } satisfies StepState);
    const stopRequested = (): boolean => spec.stopMarker !== undefined && fs.existsSync(spec.stopMarker);
    if (stopRequested()) {
      finish({ exitCode: null, signal: null, oomKilled: false, reason: 'stopped' });
      return;
    }
    const { append } = openStepLog(spec.logFile, spec.maxLogBytes);
    let killReason: string | null = null;
    const kill = (reason: string): void => {
      killReason ??= reason;
      void killCgroups(spec.cgroupDirs, 10_000);
    };
    const deadline = setTimeout(() => kill('deadline'), spec.deadlineMs);
    const { outputsDir, maxOutputBytes } = spec;
    const sizeCheck =
      outputsDir !== undefined && maxOutputBytes !== undefined
        ? setInterval(() => {
            if (dirSize(outputsDir) > maxOutputBytes) kill('output-limit');
          }, SIZE_CHECK_MS)
        : undefined;
    const result = await runChild(spec.argv, append, { shell: '/bin/sh' });
    clearTimeout(deadline);
    clearInterval(sizeCheck);
    await killCgroups(spec.cgroupDirs, 10_000);
    if (result.error) {
      finish({ exitCode: null, signal: null, oomKilled: false, reason: `start-failed: ${result.error.message}` });
      return;
    }
    const oomKilled = oomKills(spec.cgroupVersion, spec.memoryCgroup) > 0;
    // Runtimes that ignore SIGXFSZ (node, python) get EFBIG at limit + 1 byte instead: the final size tells.
    const overLimit =
      outputsDir !== undefined &&
      maxOutputBytes !== undefined &&
      (result.signal === 'SIGXFSZ' || result.code === SIGXFSZ_EXIT || dirSize(outputsDir) > maxOutputBytes);
    const reason = stopRequested()
      ? 'stopped'
      : (killReason ?? (oomKilled ? 'oom' : overLimit ? 'output-limit' : result.signal ? `signal:${result.signal}` : ''));
    finish({ exitCode: result.code, signal: result.signal, oomKilled, reason });
  } catch (err) {
    console.error('supervisor failed', err);
    finish({ exitCode: null, signal: null, oomKilled: false, reason: `start-failed: ${(err as Error).message}` });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('supervisor crashed', err);
    process.exit(1);
  },
);
