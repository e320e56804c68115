import fs from 'node:fs';
import path from 'node:path';
import { maxOutputBytes, type ProcessEnvironment } from '../../domain/environment';
import { C2DError } from '../../domain/errors';
import { PUBLISH_STEP_MAX_SECONDS, type StepRequest } from '../backend';
import { MAX_STEP_LOG_BYTES, PUBLISH_OVER_LIMIT_EXIT } from '../steps';
import { CgroupError, createStepCgroups, memoryCgroupDir } from './cgroups';
import { chownTo } from './host';
import { cgroupName, type JobPaths, type StepPaths, stepPaths } from './layout';
import { UnreachableError } from './reach';
import { seccompProgram } from './seccomp';
import { buildSandboxArgs, type SandboxOptions, wrapSandboxCommand } from './sandbox-args';
import { jobUid, type ProcessHost, setupError } from './setup';
import { readState, type StepSpec } from './state';
import { algorithmSandbox, configureSandbox, findRuntime, type PublishBudget, publishSandbox } from './steps';

/** A step request of a process environment (the backend checks that before anything else). */
export type ProcessStepRequest = StepRequest & { environment: ProcessEnvironment };

/** A configure step started ahead of its turn: no spec yet (its program reads it on its stdin once its turn comes). */
export type ConfigureAhead = Omit<Extract<ProcessStepRequest, { step: 'configure' }>, 'configure'> & { configure?: undefined };

/** processes of the sandbox itself (sh → bwrap, bwrap's init) on top of the algorithm's own */
const WRAPPER_PIDS = 4;

export function unknownImage(host: ProcessHost, image: string): string {
  return `unknown image "${image}"; this provider runs: ${Object.keys(host.runtimes).join(', ')}`;
}

/**
 * Prepares one step for the runner: its report file, the configure spec (configure only; none for one
 * started ahead), its cgroups with the environment's limits, and the full sandboxed command. Throws when
 * the host cannot run it; nothing of the step runs yet. `claimAs`: the id whose uid and cgroups the step
 * takes, when not the job's own (a configure started ahead: aheadId in direct.ts).
 */
export function planStep(
  host: ProcessHost,
  req: ProcessStepRequest | ConfigureAhead,
  job: JobPaths,
  sp: StepPaths,
  extra: { netns?: string; supervisorLog?: string; flagsOnStdin?: boolean; claimAs?: string } = {},
): StepSpec {
  const { jobId, step, environment: env } = req;
  const claimant = extra.claimAs ?? jobId;
  const name = cgroupName(claimant, step);
  const specFile = req.step === 'configure' && req.configure !== undefined;
  try {
    const uid = jobUid(host, claimant, job.root);
    // root gives the step's files to the job's uid now; a worker that is not root has its supervisor do it (handOver)
    const owner = host.idmap ? undefined : uid;
    fs.writeFileSync(sp.report, '', { mode: 0o600 });
    chownTo([sp.report], owner);
    // opened by the wrapper shell before it drops privileges: the worker's own file
    fs.writeFileSync(sp.seccomp, seccompProgram(), { mode: 0o600 });
    const sandbox = sandboxFor(host, req, job, sp, owner, extra.netns, extra.flagsOnStdin === true);
    const dirs = createStepCgroups(host.cgroups, name, {
      memoryBytes: env.ramGB * 1024 ** 3,
      cpus: env.cpuNumber,
      maxProcesses: env.process.maxProcesses + WRAPPER_PIDS,
    });
    const outputLimit = maxOutputBytes(env);
    const maxFiles = env.process.maxOutputFiles;
    // the algorithm: what it leaves where it may write; publishing: what it copies (it stops itself, saying so by its exit code)
    const limitOn =
      step === 'algorithm'
        ? { dirs: [job.outputs, job.dataLogs], maxBytes: outputLimit, maxFiles }
        : step === 'publish'
          ? { dirs: [job.publish], maxBytes: outputLimit, maxFiles, exitCode: PUBLISH_OVER_LIMIT_EXIT }
          : undefined;
    const argv = wrapSandboxCommand(
      // one byte over the limit, so a file cut off by RLIMIT_FSIZE is seen as over it
      {
        cgroupProcs: dirs.map((d) => path.join(d, 'cgroup.procs')),
        fsizeBytes: limitOn === undefined ? undefined : outputLimit + 1,
        uid,
        netns: extra.netns,
        seccompFile: sp.seccomp,
        bin: host.bin,
      },
      buildSandboxArgs(sandbox),
    );
    return {
      jobId,
      step,
      argv,
      cgroupDirs: dirs,
      memoryCgroup: memoryCgroupDir(host.cgroups, name),
      cgroupVersion: host.cgroups.version,
      stateFile: sp.state,
      logFile: sp.log,
      // a step's log is a result too: it fits the output limit on its own
      maxLogBytes: Math.min(MAX_STEP_LOG_BYTES, outputLimit),
      // After a stop nothing of the consumer's runs any more; publishing still collects what the
      // algorithm wrote so far (it runs none of the consumer's code), as Ocean keeps a stopped job's outputs.
      ...(step === 'publish' ? {} : { stopMarker: job.stopMarker }),
      deadlineMs: (step === 'publish' ? PUBLISH_STEP_MAX_SECONDS : env.maxJobDuration) * 1000,
      ...(limitOn !== undefined ? { outputLimit: limitOn } : {}),
      removeOnExit: specFile ? [job.configureSpec] : [],
      ...(host.idmap && uid !== undefined ? { handOver: { uid, paths: [job.data, job.secretDir, job.publish, sp.report] } } : {}),
      ...(extra.supervisorLog ? { supervisorLog: extra.supervisorLog } : {}),
    };
  } catch (err) {
    if (specFile) fs.rmSync(job.configureSpec, { force: true });
    if (err instanceof CgroupError) throw new C2DError('unavailable', 'cgroup_unavailable', err.message, undefined, { cause: err });
    if (err instanceof UnreachableError) throw setupError(err.message);
    throw err;
  }
}

/** Nothing is published once the algorithm passed the output limit: what it left is cut off, and may be the flood itself. */
function algorithmPassedLimit(job: JobPaths): boolean {
  const state = readState(stepPaths(job, 'algorithm').state);
  return state?.status === 'exited' && state.reason === 'output-limit';
}

/** What publishing may copy, decided when its turn comes (after the algorithm). */
export function publishBudget(req: Extract<ProcessStepRequest, { step: 'publish' }>, job: JobPaths): PublishBudget {
  return {
    maxBytes: maxOutputBytes(req.environment),
    maxFiles: req.environment.process.maxOutputFiles,
    withhold: req.withholdOutputs === true || algorithmPassedLimit(job),
  };
}

function sandboxFor(
  host: ProcessHost,
  req: ProcessStepRequest | ConfigureAhead,
  job: JobPaths,
  sp: StepPaths,
  uid: number | undefined,
  netns: string | undefined,
  flagsOnStdin: boolean,
): SandboxOptions {
  const tmpBytes = req.environment.process.tmpBytes;
  const programStep = { job, node: host.node, programsDir: host.reach.programsDir, reportFile: sp.report, tmpBytes };
  switch (req.step) {
    case 'configure':
      if (req.configure === undefined) return configureSandbox(programStep, true);
      fs.writeFileSync(job.configureSpec, JSON.stringify(req.configure), { mode: 0o400 });
      chownTo([job.configureSpec], uid);
      return configureSandbox(programStep);
    case 'publish':
      return publishSandbox(programStep, flagsOnStdin ? null : publishBudget(req, job));
    case 'algorithm': {
      const spec = req.algorithm;
      const runtime = findRuntime(host.runtimes, spec.container.image);
      if (!runtime) throw new C2DError('validation', 'unknown_image', unknownImage(host, spec.container.image));
      let command: string;
      try {
        command = fs.realpathSync(runtime.command);
      } catch (err) {
        throw setupError(`runtime ${runtime.command} of image "${spec.container.image}" is not installed: ${(err as Error).message}`);
      }
      return algorithmSandbox(job, spec, { command: host.reach.runtime(command), names: runtime.names }, tmpBytes, netns);
    }
  }
}
