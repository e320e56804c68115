/**
 * The step spec (worker → supervisor) and the file helpers the runner needs, without zod: the detached
 * supervisor loads this module and the runner only, and zod alone would add 150–250 ms to a cold
 * supervisor's start (the algorithm waits for it). The other files of a step dir keep their zod schemas
 * in state.ts, read by the worker only.
 */
import fs from 'node:fs';
import { STEPS, type StepName } from '../steps';

/**
 * How to run one step, everything precomputed by the worker (plan.ts): the runner (runner.ts) needs
 * nothing else, whether the worker runs it itself or a detached supervisor does (then it is spec.json).
 */
export interface StepSpec {
  jobId: string;
  step: StepName;
  /** full command: cgroup join wrapper, rlimits, uid switch, bwrap, the step's program */
  argv: string[];
  /** cgroup directories of the step (one per v1 controller, or one v2 dir) */
  cgroupDirs: string[];
  /** the cgroup dir whose OOM counter tells whether the kernel killed for memory */
  memoryCgroup: string;
  cgroupVersion: 1 | 2;
  stateFile: string;
  logFile: string;
  /** the most bytes of step output kept in the log */
  maxLogBytes: number;
  /** a step is reported 'stopped' when this file exists; absent for publishing, which runs after a stop too */
  stopMarker?: string;
  /** wall-clock limit of the step, ms */
  deadlineMs: number;
  /**
   * What the step may leave in `dirs` (src/compute/files.ts diskUsage: blocks, hard links once, names
   * counted); `exitCode`: the step program's own way of saying it stopped at the limit (publishing)
   */
  outputLimit?: { dirs: string[]; maxBytes: number; maxFiles: number; exitCode?: number };
  /**
   * A worker that is not root (idmap.ts): the supervisor, root of the job's user namespace, gives these
   * paths (recursively) to the job's inner uid for the step, and back to inner 0, the worker, when it ends
   */
  handOver?: { uid: number; paths: string[] };
  /** removed as soon as the step ends (the configure spec holds decrypted file locations) */
  removeOnExit: string[];
  /** where a supervisor's own errors go (a spare supervisor was started before it knew the step) */
  supervisorLog?: string;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isPositiveInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const optional = (v: unknown, check: (x: unknown) => boolean): boolean => v === undefined || check(v);

function isOutputLimit(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const l = v as Record<string, unknown>;
  return isStrings(l.dirs) && l.dirs.length > 0 && isPositiveInt(l.maxBytes) && isPositiveInt(l.maxFiles) && optional(l.exitCode, Number.isInteger);
}

/** The spec if `value` has its shape (a file that is being written, or not ours, does not); else null. */
export function parseStepSpec(value: unknown): StepSpec | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const s = value as Record<string, unknown>;
  const ok =
    isString(s.jobId) &&
    (STEPS as readonly unknown[]).includes(s.step) &&
    isStrings(s.argv) &&
    s.argv.length > 0 &&
    isStrings(s.cgroupDirs) &&
    isString(s.memoryCgroup) &&
    (s.cgroupVersion === 1 || s.cgroupVersion === 2) &&
    isString(s.stateFile) &&
    isString(s.logFile) &&
    isPositiveInt(s.maxLogBytes) &&
    optional(s.stopMarker, isString) &&
    typeof s.deadlineMs === 'number' &&
    s.deadlineMs > 0 &&
    optional(s.outputLimit, isOutputLimit) &&
    optional(s.removeOnExit, isStrings) &&
    optional(s.supervisorLog, isString);
  return ok ? ({ ...s, removeOnExit: s.removeOnExit ?? [] } as unknown as StepSpec) : null;
}

/** The spec in `file`, or null when it is missing, not JSON or not a spec. */
export function readStepSpec(file: string): StepSpec | null {
  try {
    return parseStepSpec(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch {
    return null;
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value));
  fs.renameSync(tmp, file);
}
