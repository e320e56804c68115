import fs from 'node:fs';

/** What a supervisor records in steps/<step>/state.json. Written atomically (tmp + rename). */
export type StepState =
  | { status: 'running'; supervisorPid: number; startedAt: number }
  | {
      status: 'exited';
      exitCode: number | null;
      signal: string | null;
      oomKilled: boolean;
      reason: string;
      startedAt?: number;
      finishedAt: number;
    };

/**
 * The supervisor's instructions, written by runStep next to the state file. It runs the step with
 * Node built-ins only, so everything it needs is precomputed here.
 */
export interface SupervisorSpec {
  jobId: string;
  step: string;
  /** full command: cgroup join wrapper, rlimits, uid switch, bwrap, the step's program */
  argv: string[];
  /** cgroup directories of the step (one per v1 controller, or one v2 dir) */
  cgroupDirs: string[];
  /** the cgroup dir whose OOM counter tells whether the kernel killed for memory */
  memoryCgroup: string;
  cgroupVersion: 1 | 2;
  stateFile: string;
  logFile: string;
  /** a step is reported 'stopped' when this file exists; absent for publishing, which runs after a stop too */
  stopMarker?: string;
  /** wall-clock limit of the step, ms */
  deadlineMs: number;
  /** when set, the total size of this dir is checked against maxOutputBytes */
  outputsDir?: string;
  maxOutputBytes?: number;
  /** removed as soon as the step ends (the configure spec holds decrypted file locations) */
  removeOnExit?: string[];
  /** the most bytes of step output kept in the log */
  maxLogBytes: number;
  /** where the supervisor's own errors go (a spare supervisor was started before it knew the step) */
  supervisorLog?: string;
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value));
  fs.renameSync(tmp, file);
}

export function readState(file: string): StepState | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as StepState;
    return v && (v.status === 'running' || v.status === 'exited') ? v : null;
  } catch {
    return null;
  }
}

/** True while `pid` is a live (not zombie) supervisor process; guards against pid reuse by checking its command line. */
export function isSupervisorAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('supervisor');
  } catch {
    return false;
  }
}

/** Appends a step's output to its log file, at most maxLogBytes of it (then one truncation line). */
export function openStepLog(logFile: string, maxLogBytes: number): { append: (chunk: Buffer) => void; close: () => void } {
  const fd = fs.openSync(logFile, 'a', 0o640);
  let written = 0;
  let truncated = false;
  return {
    append: (chunk) => {
      if (written >= maxLogBytes) {
        if (!truncated) fs.writeSync(fd, `\n[log truncated at ${maxLogBytes} bytes]\n`);
        truncated = true;
        return;
      }
      const part = chunk.subarray(0, maxLogBytes - written);
      fs.writeSync(fd, part);
      written += part.length;
    },
    close: () => fs.closeSync(fd),
  };
}
