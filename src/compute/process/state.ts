/**
 * The files the worker and a step's supervisor exchange under <job>/steps/<step>/ (see layout.ts):
 * `spec.json` (worker → supervisor: how to run the step), `launch` (worker: who launched it),
 * `state.json` (runner → worker: running or how it ended). Each has a zod schema; a file that does
 * not parse reads as absent (it is being written, or is not ours).
 */
import fs from 'node:fs';
import { z } from 'zod';

// zod-free helpers shared with the supervisor (which must not load zod: it costs a cold supervisor 150–250 ms)
export { writeJsonAtomic } from './spec';

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

export type { StepSpec } from './spec';

/**
 * steps/<step>/launch: created exclusively by the one runStep call that launches the step, then filled
 * in. Direct steps (configure, publish) record only when; supervised ones their launcher's pid, then the
 * supervisor's.
 */
export const launchSchema = z.object({
  launchedAt: z.number(),
  /** the worker process that created it (supervised steps): dead and no supervisorPid = the step was never handed over */
  launcherPid: z.number().int().positive().optional(),
  supervisorPid: z.number().int().positive().optional(),
  direct: z.literal(true).optional(),
});
export type Launch = z.infer<typeof launchSchema>;

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

/** steps/<step>/report.json, written by the step program: JSON whose shape its reader checks (StepOutcome.report); undefined when empty or not JSON. */
export function readReport(file: string): unknown {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.trim() ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
}
