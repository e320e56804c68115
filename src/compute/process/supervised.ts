import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StepHooks, StepOutcome } from '../backend';
import { killCgroups, stepCgroupDirs } from './cgroups';
import { namespacePrefix } from './idmap';
import { cgroupName, createJobDirs, type JobPaths, jobPaths, type StepPaths, stepPaths } from './layout';
import { type ProcessStepRequest, planStep } from './plan';
import { recordExit, recordStopped } from './runner';
import { fileOwner, type ProcessHost, setupError } from './setup';
import { type ExitedState, isSupervisorAlive, readLaunch, readReport, readState, writeJsonAtomic } from './state';
import { waitForStep } from './wait';

export type AlgorithmStepRequest = Extract<ProcessStepRequest, { step: 'algorithm' }>;

const POLL_MS = 1000;
/** at most this many supervisors wait between steps (each a Node process, ≈40 MB); one unused this long ends */
const SPARES_MAX = 4;
const SPARE_IDLE_MS = 10 * 60_000;
/** a launch file without a supervisor pid this old means the launcher died before spawning it */
const LAUNCH_GRACE_MS = 30_000;

/** Creates the step's launch file, naming this process; false when another call created it first. */
function claimLaunch(sp: StepPaths): boolean {
  try {
    fs.writeFileSync(sp.launch, JSON.stringify({ launchedAt: Date.now(), launcherPid: process.pid }), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  }
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** how long a retry waits for a spare that may have got the spec just before its launcher died to say it runs */
const HANDOVER_WAIT_MS = 2000;

/**
 * True when the launch file's launcher (another worker process) is dead and no supervisor ever took the
 * step: no supervisor pid recorded, and no state file even after HANDOVER_WAIT_MS (a spare writes its
 * state as soon as it reads the spec). A launch file without a launcher (an older one) is left to the
 * grace rule of currentState.
 */
async function neverHandedOver(sp: StepPaths): Promise<boolean> {
  const launch = readLaunch(sp.launch)?.launch;
  const launcher = launch?.launcherPid;
  if (!launch || launch.supervisorPid !== undefined || launcher === undefined || launcher === process.pid || processAlive(launcher)) return false;
  for (let waited = 0; waited < HANDOVER_WAIT_MS && !fs.existsSync(sp.state); waited += 100) await sleep(100);
  return !fs.existsSync(sp.state) && readLaunch(sp.launch)?.launch?.supervisorPid === undefined;
}

/**
 * The algorithm runs under a detached supervisor (src/entrypoints/supervisor.ts: the same runner as the
 * direct steps) that records its outcome in the step's state file and outlives a crashed worker: the
 * one call that creates the launch file starts it, every other call (a retry after a crash) re-attaches
 * and waits for the state file to say it ended.
 */
export class SupervisedSteps {
  /** supervisors waiting for an algorithm step: started ahead (prepareSpare), or back from one they ran (said) */
  private readonly spares: { child: ChildProcess; retire: NodeJS.Timeout }[] = [];
  /** supervisors running a step they were handed here: the step's state file */
  private readonly busy = new Map<ChildProcess, string>();

  /** `onRunning`: called once the algorithm runs (launched or re-attached), e.g. to start its publish ahead */
  constructor(
    private readonly host: ProcessHost,
    private readonly onRunning: (req: AlgorithmStepRequest) => void = () => undefined,
  ) {}

  async run(req: AlgorithmStepRequest, hooks: StepHooks): Promise<StepOutcome> {
    const { jobId, step } = req;
    const job = jobPaths(this.host.reach.workDir, jobId);
    const sp = stepPaths(job, step);
    createJobDirs(job, sp, fileOwner(this.host, jobId));
    let launched = claimLaunch(sp);
    if (!launched && (await neverHandedOver(sp))) {
      // the worker that claimed the launch died before a supervisor got the step: nothing runs it, so this attempt launches it
      this.host.log.warn({ jobId, step }, 'step was never handed to a supervisor: launching it');
      fs.rmSync(sp.launch, { force: true });
      launched = claimLaunch(sp);
    }
    // network only for an algorithm whose datasets all allow it; its own namespace, never the host's
    const network = req.algorithm.allowNetwork;
    if (launched) {
      try {
        const netns = network && !fs.existsSync(job.stopMarker) ? (await this.host.networks.setup(jobId)).netnsPath : undefined;
        this.launch(req, job, sp, netns);
      } catch (err) {
        if (network) await this.host.networks.teardown(jobId);
        fs.rmSync(sp.launch, { force: true }); // let a retry launch it
        throw err;
      }
    } else {
      this.host.log.info({ jobId, step }, 're-attaching to step');
    }
    if (!fs.existsSync(job.stopMarker)) this.onRunning(req);
    const state = await waitForStep(hooks, { step }, (gaveUp) => this.exited(req, job, sp, gaveUp));
    if (network) await this.host.networks.teardown(jobId);
    return { exitCode: state.exitCode, oomKilled: state.oomKilled, reason: state.reason, report: readReport(sp.report), reattached: !launched };
  }

  private launch(req: AlgorithmStepRequest, job: JobPaths, sp: StepPaths, netns: string | undefined): void {
    const { jobId, step } = req;
    if (fs.existsSync(job.stopMarker)) {
      recordStopped(sp.state);
      return;
    }
    writeJsonAtomic(sp.spec, planStep(this.host, req, job, sp, { netns, supervisorLog: sp.supervisorLog }));
    const pid = this.takeSpare(sp) ?? this.coldSupervisor(jobId, sp);
    if (pid === undefined) throw setupError(`cannot start the step supervisor for ${step}`);
    writeJsonAtomic(sp.launch, { supervisorPid: pid, launchedAt: Date.now() });
    this.host.log.info({ jobId, step, supervisorPid: pid }, 'step started');
  }

  /** node supervisor.js <arg>; for a worker that is not root, as root of the job's user namespace (idmap.ts) */
  private supervisorCommand(arg: string): string[] {
    const node = [process.execPath, this.host.supervisor, arg];
    return this.host.idmap ? [...namespacePrefix(this.host.idmap), ...node] : node;
  }

  /** A supervisor started now for this step (no spare was ready). */
  private coldSupervisor(jobId: string, sp: StepPaths): number | undefined {
    const out = fs.openSync(sp.supervisorLog, 'a', 0o600);
    try {
      const [cmd, ...args] = this.supervisorCommand(sp.spec);
      const child = spawn(cmd!, args, { detached: true, stdio: ['ignore', out, out] });
      child.on('error', (err) => this.host.log.error({ jobId, err: err.message }, 'supervisor failed to start'));
      child.unref();
      return child.pid;
    } finally {
      fs.closeSync(out);
    }
  }

  /**
   * Hands the spec to a spare supervisor (already started, detached, its modules loaded, waiting on its
   * stdin), so the algorithm does not wait for a Node start-up. Undefined when none is ready (see
   * prepareSpare for when one starts). A spare whose worker dies sees its stdin close and exits once its
   * step has ended; one that ran its step says so on stdout and waits again (said).
   */
  private takeSpare(sp: StepPaths): number | undefined {
    for (let spare = this.spares.pop(); spare; spare = this.spares.pop()) {
      clearTimeout(spare.retire);
      const { child } = spare;
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null && child.stdin?.writable === true) {
        child.stdin.write(`${sp.spec}\n`);
        this.busy.set(child, sp.state);
        return child.pid;
      }
      child.kill('SIGKILL');
    }
    return undefined;
  }

  /**
   * Starts a spare supervisor unless one is ready: when a job is cleaned up (its result already told, so
   * the Node start-up shares the cores with no job's critical path: not with the publishing and workflow
   * tasks that follow an algorithm's end, where it was started before), and when a job configures with
   * none ready (the first job of a worker, or several at once), so its algorithm need not wait for one.
   */
  prepareSpare(): void {
    if (this.spares.some(({ child }) => child.exitCode === null && child.signalCode === null)) return;
    try {
      const [cmd, ...args] = this.supervisorCommand('--wait');
      const child = spawn(cmd!, args, { detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
      child.on('error', (err) => this.host.log.warn({ err: err.message }, 'spare supervisor failed to start'));
      child.on('exit', () => this.forget(child));
      child.stdin.on('error', () => undefined); // it died: the next launch sees that and starts its own
      readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => this.said(child, line));
      // neither keeps the worker alive
      child.unref();
      for (const pipe of [child.stdin, child.stdout]) (pipe as unknown as { unref?: () => void }).unref?.();
      this.idle(child);
    } catch (err) {
      this.host.log.warn({ err: (err as Error).message }, 'spare supervisor failed to start');
    }
  }

  /**
   * A supervisor that ran its step waits for the next one, unless SPARES_MAX wait already (then it ends).
   * Only once its step's state says it ended: a `ready` that nothing backs (a bug, or a line some process
   * of the step managed to write) ends the supervisor once its step has ended, never hands it a second.
   */
  private said(child: ChildProcess, line: string): void {
    const stateFile = this.busy.get(child);
    this.busy.delete(child);
    const ended = line === 'ready' && stateFile !== undefined && readState(stateFile)?.status === 'exited';
    if (ended && this.spares.length < SPARES_MAX) this.idle(child);
    else child.stdin?.end();
  }

  /** Among the spares, ended (stdin closed: it exits) after SPARE_IDLE_MS unused. */
  private idle(child: ChildProcess): void {
    const retire = setTimeout(() => {
      this.forget(child);
      child.stdin?.end();
    }, SPARE_IDLE_MS).unref();
    this.spares.push({ child, retire });
  }

  private forget(child: ChildProcess): void {
    this.busy.delete(child);
    const i = this.spares.findIndex((s) => s.child === child);
    if (i < 0) return;
    clearTimeout(this.spares[i]!.retire);
    this.spares.splice(i, 1);
  }

  /** Resolves with the step's final state; checks on fs events in the step dir and every second, until `gaveUp`. */
  private exited(req: AlgorithmStepRequest, job: JobPaths, sp: StepPaths, gaveUp: AbortSignal): Promise<ExitedState> {
    return new Promise((resolve, reject) => {
      let watcher: fs.FSWatcher | undefined;
      const finish = (): void => {
        watcher?.close();
        clearInterval(timer);
        gaveUp.removeEventListener('abort', finish);
      };
      const check = (): void => {
        try {
          const state = this.currentState(req, job, sp);
          if (!state) return;
          finish();
          resolve(state);
        } catch (err) {
          finish(); // e.g. the job's workspace was removed under us
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      gaveUp.addEventListener('abort', finish, { once: true });
      try {
        watcher = fs.watch(sp.dir, check);
        watcher.on('error', () => undefined);
      } catch {
        // the interval still polls
      }
      const timer = setInterval(check, POLL_MS);
      check();
    });
  }

  /** The exited state, or null while the step runs. A supervisor that died without recording its exit counts as exited. */
  private currentState(req: AlgorithmStepRequest, job: JobPaths, sp: StepPaths): ExitedState | null {
    const state = readState(sp.state);
    if (state?.status === 'exited') return state;
    let lost: string | null = null;
    if (state?.status === 'running') {
      if (!isSupervisorAlive(state.supervisorPid)) lost = 'signal:SIGKILL';
    } else {
      const launch = readLaunch(sp.launch);
      if (!launch) return { status: 'exited', exitCode: null, signal: null, oomKilled: false, reason: 'stopped', finishedAt: Date.now() }; // cleaned up under us
      const pid = launch.launch?.supervisorPid;
      if (pid !== undefined ? !isSupervisorAlive(pid) : Date.now() - launch.mtimeMs > LAUNCH_GRACE_MS) {
        lost = 'start-failed: the step supervisor exited before recording a state';
      }
    }
    if (!lost) return null;
    const again = readState(sp.state); // it may have written its exit just now
    if (again?.status === 'exited') return again;
    void killCgroups(stepCgroupDirs(this.host.cgroups, cgroupName(req.jobId, req.step)));
    const reason = fs.existsSync(job.stopMarker) ? 'stopped' : lost;
    this.host.log.warn({ jobId: req.jobId, step: req.step, reason }, 'step supervisor lost');
    return recordExit(sp.state, { exitCode: null, signal: null, oomKilled: false, reason });
  }
}
