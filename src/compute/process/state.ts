/**
 * The files the worker and a step's supervisor exchange under <job>/steps/<step>/ (see layout.ts):
 * `spec.json` (worker → supervisor: how to run the step), `launch` (worker: who launched it),
 * `state.json` (runner → worker: running or how it ended). Each has a zod schema; a file that does
 * not parse reads as absent (it is being written, or is not ours).
 */
import fs from 'node:fs';
import { z } from 'zod';
import { STEPS } from '../steps';

export const exitedStateSchema = z.object({
  status: z.literal('exited'),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  oomKilled: z.boolean(),
  /** '' for a plain exit, else StepOutcome.reason */
  reason: z.string(),
  startedAt: z.number().optional(),
  finishedAt: z.number(),
});
export type ExitedState = z.infer<typeof exitedStateSchema>;

/** What steps/<step>/state.json holds. Written atomically (tmp + rename). */
export const stepStateSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('running'), supervisorPid: z.number().int().positive(), startedAt: z.number() }),
  exitedStateSchema,
]);
export type StepState = z.infer<typeof stepStateSchema>;

/**
 * How to run one step, everything precomputed by the worker (plan.ts): the runner (runner.ts) needs
 * nothing else, whether the worker runs it itself or a detached supervisor does (then it is spec.json).
 */
export const stepSpecSchema = z.object({
  jobId: z.string(),
  step: z.enum(STEPS),
  /** full command: cgroup join wrapper, rlimits, uid switch, bwrap, the step's program */
  argv: z.array(z.string()).min(1),
  /** cgroup directories of the step (one per v1 controller, or one v2 dir) */
  cgroupDirs: z.array(z.string()),
  /** the cgroup dir whose OOM counter tells whether the kernel killed for memory */
  memoryCgroup: z.string(),
  cgroupVersion: z.union([z.literal(1), z.literal(2)]),
  stateFile: z.string(),
  logFile: z.string(),
  /** the most bytes of step output kept in the log */
  maxLogBytes: z.number().int().positive(),
  /** a step is reported 'stopped' when this file exists; absent for publishing, which runs after a stop too */
  stopMarker: z.string().optional(),
  /** wall-clock limit of the step, ms */
  deadlineMs: z.number().positive(),
  /**
   * What the step may leave in `dirs` (src/compute/files.ts diskUsage: blocks, hard links once, names
   * counted); `exitCode`: the step program's own way of saying it stopped at the limit (publishing)
   */
  outputLimit: z
    .object({
      dirs: z.array(z.string()).min(1),
      maxBytes: z.number().int().positive(),
      maxFiles: z.number().int().positive(),
      exitCode: z.number().int().optional(),
    })
    .optional(),
  /** removed as soon as the step ends (the configure spec holds decrypted file locations) */
  removeOnExit: z.array(z.string()).default([]),
  /** where a supervisor's own errors go (a spare supervisor was started before it knew the step) */
  supervisorLog: z.string().optional(),
});
export type StepSpec = z.infer<typeof stepSpecSchema>;
export type StepSpecInput = z.input<typeof stepSpecSchema>;

/**
 * steps/<step>/launch: created empty and exclusively by the one runStep call that launches the step,
 * then filled in. Direct steps (configure, publish) record only when; supervised ones the supervisor's pid.
 */
export const launchSchema = z.object({
  launchedAt: z.number(),
  supervisorPid: z.number().int().positive().optional(),
  direct: z.literal(true).optional(),
});
export type Launch = z.infer<typeof launchSchema>;

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value));
  fs.renameSync(tmp, file);
}

/** The file's content if it is there and matches the schema; null otherwise. */
export function readJsonFile<S extends z.ZodType>(file: string, schema: S): z.output<S> | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export const readState = (file: string): StepState | null => readJsonFile(file, stepStateSchema);

/** The launch record: null when there is no launch file (never launched, or cleaned up); `pending` while it is being written. */
export function readLaunch(file: string): { launch: Launch | null; mtimeMs: number } | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return null;
  }
  return { launch: readJsonFile(file, launchSchema), mtimeMs: st.mtimeMs };
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

/** steps/<step>/report.json, written by the step program: JSON whose shape its reader checks (StepOutcome.report); undefined when empty or not JSON. */
export function readReport(file: string): unknown {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.trim() ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
}
