import fs from 'node:fs';
import path from 'node:path';
import type { StepName } from '../backend';
import { assertJobId } from '../steps';

/** Host paths of one job's workspace. Everything the job leaves on this machine lives under `root`. */
export interface JobPaths {
  root: string;
  /** what the sandbox sees as /data */
  data: string;
  inputs: string;
  transformations: string;
  ddos: string;
  outputs: string;
  dataLogs: string;
  /** step logs written by the supervisor; the sandbox never sees this dir */
  logs: string;
  secretDir: string;
  configureSpec: string;
  publish: string;
  /** its existence means "the job was stopped": supervisors report 'stopped', no new step starts */
  stopMarker: string;
  steps: string;
}

export interface StepPaths {
  dir: string;
  /** created exclusively by the one runStep call that launches the step */
  launch: string;
  state: string;
  report: string;
  /** the supervisor's spec (no secrets: the configure spec stays in its own file) */
  spec: string;
  /** the supervisor's own stdout/stderr */
  supervisorLog: string;
  /** the step's seccomp filter (seccomp.ts), as bwrap reads it */
  seccomp: string;
  log: string;
}

/** `workDir`: the dir holding `jobs/` (the data dir, or where the sandbox uid can reach it: see reach.ts). */
export function jobPaths(workDir: string, jobId: string): JobPaths {
  assertJobId(jobId);
  const root = path.join(workDir, 'jobs', jobId);
  const data = path.join(root, 'data');
  const secretDir = path.join(root, 'secret');
  return {
    root,
    data,
    inputs: path.join(data, 'inputs'),
    transformations: path.join(data, 'transformations'),
    ddos: path.join(data, 'ddos'),
    outputs: path.join(data, 'outputs'),
    dataLogs: path.join(data, 'logs'),
    logs: path.join(root, 'logs'),
    secretDir,
    configureSpec: path.join(secretDir, 'configure.json'),
    publish: path.join(root, 'publish'),
    stopMarker: path.join(root, 'stop'),
    steps: path.join(root, 'steps'),
  };
}

export function stepPaths(job: JobPaths, step: StepName): StepPaths {
  const dir = path.join(job.steps, step);
  return {
    dir,
    launch: path.join(dir, 'launch'),
    state: path.join(dir, 'state.json'),
    report: path.join(dir, 'report.json'),
    spec: path.join(dir, 'spec.json'),
    supervisorLog: path.join(dir, 'supervisor.log'),
    seccomp: path.join(dir, 'seccomp.bpf'),
    log: path.join(job.logs, `${step}.log`),
  };
}

/**
 * Creates the job's workspace and the step's dir. The dirs the sandbox uses belong to the job's own uid
 * (undefined: the worker's own) with mode 0700: no other job's uid may open them. The job root and
 * the step dirs stay the worker's (0711: traversed, never listed). A workspace whose job got another
 * uid since (its record of uids was lost) is handed to the new one.
 */
export function createJobDirs(job: JobPaths, sp: StepPaths, uid: number | undefined): void {
  for (const d of [job.root, job.steps, sp.dir]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
  fs.mkdirSync(job.logs, { recursive: true, mode: 0o700 });
  const sandboxDirs = [job.secretDir, job.data, job.inputs, job.transformations, job.ddos, job.outputs, job.dataLogs, job.publish];
  for (const d of sandboxDirs) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  // lchown: never through a link a step may have left in the job's data
  if (uid !== undefined && fs.lstatSync(job.data).uid !== uid) for (const d of sandboxDirs) fs.lchownSync(d, uid, uid);
}

/** The name of a step's cgroups (one per v1 controller, or one v2 dir). */
export const cgroupName = (jobId: string, step: StepName): string => `${jobId}-${step}`;
