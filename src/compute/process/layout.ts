import path from 'node:path';
import { ValidationError } from '../../domain/errors';
import type { StepName } from '../backend';

export const STEPS: readonly StepName[] = ['configure', 'algorithm', 'publish'];

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
  log: string;
}

const JOB_ID = /^[0-9a-f]{32}$/;

/** Job ids become path and cgroup names: only the 32-hex form reaches the file system. */
export function assertJobId(jobId: string): void {
  if (!JOB_ID.test(jobId)) throw new ValidationError({ jobId: ['must be 32 lower-case hex characters'] }, 'invalid job id');
}

export function jobPaths(dataDir: string, jobId: string): JobPaths {
  assertJobId(jobId);
  const root = path.join(dataDir, 'jobs', jobId);
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
    log: path.join(job.logs, `${step}.log`),
  };
}
