import fs from 'node:fs';
import { diskUsage, openStepLog } from '../files';
import { killCgroups, oomKills, removeCgroups } from './cgroups';
import { runChild } from './child';
import { chownTree } from './idmap';
import { type StepSpec, writeJsonAtomic } from './spec';
import type { ExitedState } from './state';

const SIZE_CHECK_MS = 500;
const SIGXFSZ_EXIT = 128 + 25; // bwrap reports a child killed by signal n as 128 + n
const KILL_TIMEOUT_MS = 10_000;

export type StepExit = Omit<ExitedState, 'status' | 'startedAt' | 'finishedAt'>;

const stopped = (): StepExit => ({ exitCode: null, signal: null, oomKilled: false, reason: 'stopped' });

/** Writes the step's final state (best effort: the job may have been cleaned up under us) and returns it. */
export function recordExit(stateFile: string, exit: StepExit, startedAt?: number): ExitedState {
  const state: ExitedState = { status: 'exited', ...exit, ...(startedAt !== undefined ? { startedAt } : {}), finishedAt: Date.now() };
  try {
    writeJsonAtomic(stateFile, state);
  } catch {
    // the job's workspace is gone
  }
  return state;
}

/** The state of a step that never started because its job was stopped first. */
export const recordStopped = (stateFile: string): ExitedState => recordExit(stateFile, stopped());

/**
 * Runs one planned step to its end and records how it ended — the one runner of the process backend,
 * used by the worker for configure and publish and by the detached supervisor for the algorithm.
 * The step is killed (its whole cgroup) at the deadline or when its outputs pass their limit; the
 * reason says which, else the kernel's OOM kill, else the signal; a stop requested meanwhile wins.
 * `detached`: its own session, so a Ctrl-C meant for the worker does not reach the step.
 * `go`: the step was started ahead of its turn, its program waiting on its stdin: the line it is given
 * once its turn comes (null: it is not wanted, and ends on end of file); deadline and limits count from then.
 */
export async function runPlannedStep(spec: StepSpec, opts: { shell: string; detached: boolean; go?: Promise<string | null> }): Promise<ExitedState> {
  let startedAt = Date.now();
  const stopRequested = (): boolean => spec.stopMarker !== undefined && fs.existsSync(spec.stopMarker);
  const end = (exit: StepExit): ExitedState => {
    for (const f of spec.removeOnExit) fs.rmSync(f, { force: true });
    // the worker reads the outputs and removes the job: everything is its own again before the state says the step ended
    if (spec.handOver) chownTree(spec.handOver.paths, 0);
    try {
      removeCgroups(spec.cgroupDirs);
    } catch {
      // still busy: cleanup removes it later
    }
    return recordExit(spec.stateFile, exit, startedAt);
  };
  if (stopRequested()) return end(stopped());
  if (spec.handOver) chownTree(spec.handOver.paths, spec.handOver.uid);

  let killReason: string | null = null;
  const kill = (reason: string): void => {
    killReason ??= reason;
    void killCgroups(spec.cgroupDirs, KILL_TIMEOUT_MS);
  };
  const limit = spec.outputLimit;
  const overLimit = (): boolean => {
    if (limit === undefined) return false;
    const used = diskUsage(limit.dirs, { bytes: limit.maxBytes, files: limit.maxFiles });
    return used.bytes > limit.maxBytes || used.files > limit.maxFiles;
  };
  const log = openStepLog(spec.logFile, spec.maxLogBytes);
  let deadline: NodeJS.Timeout | undefined;
  let sizeCheck: NodeJS.Timeout | undefined;
  let ended = false;
  const watch = (): void => {
    if (ended) return;
    deadline = setTimeout(() => kill('deadline'), spec.deadlineMs);
    sizeCheck = limit ? setInterval(() => overLimit() && kill('output-limit'), SIZE_CHECK_MS) : undefined;
  };
  // A step started ahead (`go`: its program waits on its stdin for its arguments) counts from its go.
  if (opts.go)
    void opts.go.then((line) => {
      if (line === null) return;
      startedAt = Date.now();
      watch();
    });
  else watch();
  const result = await runChild(spec.argv, log.append, { ...opts, ...(opts.go ? { stdin: opts.go } : {}) });
  ended = true;
  clearTimeout(deadline);
  clearInterval(sizeCheck);
  log.close();
  await killCgroups(spec.cgroupDirs, KILL_TIMEOUT_MS);
  if (result.error) return end({ exitCode: null, signal: null, oomKilled: false, reason: `start-failed: ${result.error.message}` });
  const oomKilled = oomKills(spec.cgroupVersion, spec.memoryCgroup) > 0;
  // Runtimes that ignore SIGXFSZ (node, python) get EFBIG at limit + 1 byte instead: the final size tells.
  const cutOff =
    limit !== undefined &&
    (result.signal === 'SIGXFSZ' || result.code === SIGXFSZ_EXIT || (limit.exitCode !== undefined && result.code === limit.exitCode) || overLimit());
  const reason = stopRequested() ? 'stopped' : (killReason ?? (oomKilled ? 'oom' : cutOff ? 'output-limit' : result.signal ? `signal:${result.signal}` : ''));
  return end({ exitCode: result.code, signal: result.signal, oomKilled, reason });
}
