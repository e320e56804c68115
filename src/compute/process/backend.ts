import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../../config';
import { maxOutputBytes } from '../../domain/environment';
import { C2DError } from '../../domain/errors';
import type { ContainerSpec } from '../../domain/job';
import type { Logger } from '../../domain/logger';
import type { ComputeBackend, JobWorkspace, PublishedFile, StepHooks, StepName, StepOutcome, StepRequest } from '../backend';
import { CgroupError, type CgroupLayout, cgroupPids, createStepCgroups, detectCgroups, killCgroups, memoryCgroupDir, oomKills, removeCgroups, stepCgroupDirs } from './cgroups';
import { chownTo, findExecutable, readableBy, untraversable } from './host';
import { type JobPaths, jobPaths, STEPS, type StepPaths, stepPaths } from './layout';
import { runChild } from './child';
import { streamLog } from './logs';
import { DEFAULT_NETWORK, JobNetworks } from './network';
import { listPublishedFiles } from './published';
import { processWorkspace } from './workspace';
import { buildSandboxArgs, type ResolvedRuntime, type SandboxOptions, wrapSandboxCommand } from './sandbox-args';
import { isSupervisorAlive, openStepLog, readState, type StepState, type SupervisorSpec, writeJsonAtomic } from './state';
import { algorithmSandbox, configureSandbox, findRuntime, publishSandbox } from './steps';

export interface ProcessBackendOptions {
  dataDir: string;
  runtimes: Config['runtimes'];
  sandbox: Config['sandbox'];
  /** dir holding the compiled supervisor.js, configure-step.js and publish-step.js */
  programsDir: string;
  logger: Logger;
}

const PROGRAMS = ['supervisor.js', 'configure-step.js', 'publish-step.js'];
const HEARTBEAT_MS = 1000;
/** processes of the sandbox itself (sh → bwrap, bwrap's init) on top of the algorithm's own */
const WRAPPER_PIDS = 4;
const MAX_LOG_BYTES = 64 * 1024 * 1024;
/** a launch file without a supervisor pid this old means the launcher died before spawning it */
const LAUNCH_GRACE_MS = 30_000;
const STOP_WAIT_MS = 1800;

/** <repo>/dist/src/entrypoints, whether this module runs from src (ts, under jest) or from dist (js). */
export function defaultProgramsDir(): string {
  const repo = path.resolve(__dirname, __filename.endsWith('.ts') ? '../../..' : '../../../..');
  return path.join(repo, 'dist', 'src', 'entrypoints');
}

function setupError(message: string): C2DError {
  return new C2DError('unavailable', 'process_backend_unavailable', message);
}

function abortError(signal: AbortSignal): Error {
  const err = new Error('stopped waiting for the step: the activity was cancelled', { cause: signal.reason });
  err.name = 'AbortError';
  return err;
}

/** A configuration or publishing run of this worker; abandoned once the attempt waiting for it was cancelled (it is being killed). */
interface DirectRun {
  run: Promise<StepOutcome>;
  abandoned: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The embedded backend: each step is a bubblewrap sandbox in its own cgroups. The algorithm runs under a
 * detached supervisor (src/entrypoints/supervisor.ts) that records its outcome under <dataDir>/jobs/<jobId>
 * and outlives a crashed worker; configuration and publishing run straight from the worker (see runDirect).
 */
export class ProcessBackend implements ComputeBackend {
  readonly kind = 'process';
  private readonly cgroups: CgroupLayout;
  /** host uid the sandbox runs as; undefined when the worker is not root (then it runs as the worker) */
  private readonly uid: number | undefined;
  private readonly bin: { sh: string; prlimit: string; setpriv: string; bwrap: string; nsenter?: string };
  private readonly node: ResolvedRuntime;
  private readonly networks: JobNetworks;
  private readonly log: Logger;
  /** a supervisor started ahead of the next algorithm step (the first step starts one) */
  private spare: ChildProcess | undefined;
  /** configuration and publishing runs of this worker, by `<jobId>/<step>` */
  private readonly direct = new Map<string, DirectRun>();

  constructor(private readonly opts: ProcessBackendOptions) {
    this.log = opts.logger;
    const need = (name: string, pkg: string): string => {
      const p = findExecutable(name);
      if (!p) throw setupError(`${name} is not installed; the process backend needs it (Debian/Ubuntu: apt-get install ${pkg})`);
      return p;
    };
    const root = process.getuid?.() === 0;
    this.bin = { sh: '/bin/sh', bwrap: need('bwrap', 'bubblewrap'), prlimit: need('prlimit', 'util-linux'), setpriv: root ? need('setpriv', 'util-linux') : '' };
    this.uid = root ? opts.sandbox.uid : undefined;
    try {
      this.networks = new JobNetworks({ settings: opts.sandbox.network ?? DEFAULT_NETWORK, logger: this.log, isRoot: root });
    } catch (err) {
      throw setupError(`C2D_ALGORITHM_NETWORK_POOL / C2D_ALGORITHM_NETWORK_DENY: ${(err as Error).message}`);
    }
    if (!this.networks.problem) this.bin.nsenter = this.networks.nsenter;
    else this.log.info({ reason: this.networks.problem }, 'algorithms cannot get network access on this host: jobs whose datasets all allow it will fail');
    try {
      this.cgroups = detectCgroups(opts.sandbox.cgroupRoot);
    } catch (err) {
      throw setupError((err as Error).message);
    }
    for (const p of PROGRAMS) {
      if (!fs.existsSync(path.join(opts.programsDir, p))) throw setupError(`${p} not found in ${opts.programsDir}: build the project first (npm run build)`);
    }
    this.node = { command: fs.realpathSync(process.execPath), names: ['node'] };
    fs.mkdirSync(path.join(opts.dataDir, 'jobs'), { recursive: true, mode: 0o711 });
    if (this.uid !== undefined) this.checkSandboxAccess(this.uid);
  }

  private checkSandboxAccess(uid: number): void {
    // The data dir is ours (the settings create it 0700 for the provider key): traversing it lists nothing
    // and the key file stays 0600, so let the sandbox uid through rather than refuse to start.
    const own = fs.statSync(this.opts.dataDir);
    if (own.uid === process.getuid?.() && (own.mode & 0o001) === 0) {
      fs.chmodSync(this.opts.dataDir, (own.mode & 0o7777) | 0o001);
      this.log.info({ dataDir: this.opts.dataDir }, 'made the data dir traversable for the sandbox uid');
    }
    for (const dir of [path.join(this.opts.dataDir, 'jobs'), this.opts.programsDir]) {
      const blocked = untraversable(dir, uid, uid);
      if (blocked) throw setupError(`the sandbox uid ${uid} cannot traverse ${blocked} (on the way to ${dir}): make it o+x (chmod o+x ${blocked}) or choose another C2D_DATA_DIR`);
    }
    for (const p of PROGRAMS.slice(1)) {
      if (!readableBy(path.join(this.opts.programsDir, p), uid, uid)) throw setupError(`the sandbox uid ${uid} cannot read ${path.join(this.opts.programsDir, p)}`);
    }
  }

  checkContainer(container: ContainerSpec): string | null {
    if (findRuntime(this.opts.runtimes, container.image)) return null;
    return `unknown image "${container.image}"; this provider runs: ${Object.keys(this.opts.runtimes).join(', ')}`;
  }

  async runStep(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    if (req.step !== 'algorithm') return this.runDirect(req, hooks);
    const job = jobPaths(this.opts.dataDir, req.jobId);
    const sp = stepPaths(job, req.step);
    if (!req.algorithm) throw new C2DError('internal', 'bad_step_request', 'algorithm step without an algorithm spec');
    this.ensureJobDirs(job, sp);
    let launched = false;
    try {
      fs.writeFileSync(sp.launch, '', { flag: 'wx' });
      launched = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // network only for an algorithm whose datasets all allow it; its own namespace, never the host's
    const network = req.step === 'algorithm' && req.algorithm?.allowNetwork === true;
    if (launched) {
      try {
        const netns = network && !fs.existsSync(job.stopMarker) ? (await this.networks.setup(req.jobId)).netnsPath : undefined;
        this.launch(req, job, sp, netns);
      } catch (err) {
        if (network) await this.networks.teardown(req.jobId);
        fs.rmSync(sp.launch, { force: true }); // let a retry launch it
        if (err instanceof CgroupError) throw new C2DError('unavailable', 'cgroup_unavailable', err.message, undefined, { cause: err });
        throw err;
      }
    } else {
      this.log.info({ jobId: req.jobId, step: req.step }, 're-attaching to step');
    }
    const state = await this.waitForExit(req, sp, hooks);
    if (!this.spare) this.startSpare();
    if (network) await this.networks.teardown(req.jobId);
    return {
      exitCode: state.exitCode,
      oomKilled: state.oomKilled,
      reason: state.reason,
      report: readReport(sp.report),
      reattached: !launched,
    };
  }

  /**
   * Configuration and publishing run straight from the worker (same sandbox, same cgroup limits), without
   * a detached supervisor: they are idempotent, so a retry after a worker crash runs them again (bwrap's
   * --die-with-parent takes the old run down with the worker) instead of re-attaching. That saves a Node
   * start-up per step. A second call while this worker still runs the step waits for that run.
   */
  private runDirect(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    const key = `${req.jobId}/${req.step}`;
    const current = this.direct.get(key);
    if (current && !current.abandoned) return this.waitDirect(req, current, hooks);
    // a run given up by a cancelled attempt is being killed: the retry starts after it ended
    const before = current ? current.run.then(() => undefined, () => undefined) : Promise.resolve();
    const entry: DirectRun = { run: before.then(() => this.startDirect(req)), abandoned: false };
    this.direct.set(key, entry);
    const forget = (): void => {
      if (this.direct.get(key) === entry) this.direct.delete(key);
    };
    entry.run.then(forget, forget);
    return this.waitDirect(req, entry, hooks);
  }

  private waitDirect(req: StepRequest, entry: DirectRun, hooks: StepHooks): Promise<StepOutcome> {
    if (hooks.signal.aborted) return Promise.reject(abortError(hooks.signal));
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => hooks.heartbeat({ step: req.step }), HEARTBEAT_MS);
      const done = (): void => {
        clearInterval(timer);
        hooks.signal.removeEventListener('abort', onAbort);
      };
      // Cancelled (a stop, or the worker shutting down): nothing re-attaches to this run, so end it; a retry runs the step again.
      const onAbort = (): void => {
        done();
        entry.abandoned = true;
        void killCgroups(stepCgroupDirs(this.cgroups, `${req.jobId}-${req.step}`));
        reject(abortError(hooks.signal));
      };
      hooks.signal.addEventListener('abort', onAbort, { once: true });
      hooks.heartbeat({ step: req.step });
      entry.run.then(
        (outcome) => {
          done();
          resolve(outcome);
        },
        (err: unknown) => {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  private async startDirect(req: StepRequest): Promise<StepOutcome> {
    const { jobId, step, environment: env } = req;
    const job = jobPaths(this.opts.dataDir, jobId);
    const sp = stepPaths(job, step);
    if (step === 'configure' && !req.configure) throw new C2DError('internal', 'bad_step_request', 'configure step without a configure spec');
    this.ensureJobDirs(job, sp);
    const cgName = `${jobId}-${step}`;
    const reattached = fs.existsSync(sp.launch);
    // what an earlier attempt (a crashed worker) may have left running
    if (reattached) await killCgroups(stepCgroupDirs(this.cgroups, cgName), 10_000);
    fs.writeFileSync(sp.launch, JSON.stringify({ direct: true, launchedAt: Date.now() }));
    fs.rmSync(sp.state, { force: true });
    const stopped = (): boolean => step !== 'publish' && fs.existsSync(job.stopMarker);
    const outcome = (exitCode: number | null, signal: string | null, oomKilled: boolean, reason: string, startedAt: number): StepOutcome => {
      if (step === 'configure') fs.rmSync(job.configureSpec, { force: true });
      try {
        writeJsonAtomic(sp.state, { status: 'exited', exitCode, signal, oomKilled, reason, startedAt, finishedAt: Date.now() } satisfies StepState);
      } catch {
        // the job was cleaned up under us
      }
      return { exitCode, oomKilled, reason, report: readReport(sp.report), reattached };
    };
    const startedAt = Date.now();
    if (stopped()) return outcome(null, null, false, 'stopped', startedAt);
    let dirs: string[];
    let argv: string[];
    try {
      fs.writeFileSync(sp.report, '', { mode: 0o600 });
      chownTo([sp.report], this.uid);
      const sandbox = this.sandboxFor(req, job, sp, undefined);
      dirs = createStepCgroups(this.cgroups, cgName, { memoryBytes: env.ramGB * 1024 ** 3, cpus: env.cpuNumber, maxProcesses: env.process.maxProcesses + WRAPPER_PIDS });
      argv = wrapSandboxCommand({ cgroupProcs: dirs.map((d) => path.join(d, 'cgroup.procs')), uid: this.uid, bin: this.bin }, buildSandboxArgs(sandbox));
    } catch (err) {
      if (step === 'configure') fs.rmSync(job.configureSpec, { force: true });
      if (err instanceof CgroupError) throw new C2DError('unavailable', 'cgroup_unavailable', err.message, undefined, { cause: err });
      throw err;
    }
    this.log.info({ jobId, step }, 'step started');
    const log = openStepLog(sp.log, MAX_LOG_BYTES);
    let killReason: string | null = null;
    const deadline = setTimeout(() => {
      killReason ??= 'deadline';
      void killCgroups(dirs, 10_000);
    }, env.maxJobDuration * 1000);
    // its own session: a Ctrl-C meant for the worker does not reach the step (the worker ends it itself)
    const result = await runChild(argv, log.append, { shell: this.bin.sh, detached: true });
    clearTimeout(deadline);
    log.close();
    await killCgroups(dirs, 10_000);
    const oomKilled = oomKills(this.cgroups.version, memoryCgroupDir(this.cgroups, cgName)) > 0;
    try {
      removeCgroups(dirs);
    } catch {
      // still busy: cleanup removes it later
    }
    if (result.error) return outcome(null, null, false, `start-failed: ${result.error.message}`, startedAt);
    const reason = stopped() ? 'stopped' : (killReason ?? (oomKilled ? 'oom' : result.signal ? `signal:${result.signal}` : ''));
    return outcome(result.code, result.signal, oomKilled, reason, startedAt);
  }

  private ensureJobDirs(job: JobPaths, sp: StepPaths): void {
    const fresh = !fs.existsSync(job.data);
    for (const d of [job.root, job.steps, sp.dir]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    fs.mkdirSync(job.logs, { recursive: true, mode: 0o700 });
    fs.mkdirSync(job.secretDir, { recursive: true, mode: 0o700 });
    for (const d of [job.data, job.inputs, job.transformations, job.ddos, job.outputs, job.dataLogs, job.publish]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    if (fresh) chownTo([job.secretDir, job.data, job.inputs, job.transformations, job.ddos, job.outputs, job.dataLogs, job.publish], this.uid);
  }

  private launch(req: StepRequest, job: JobPaths, sp: StepPaths, netns?: string): void {
    const { jobId, step, environment: env } = req;
    // After a stop nothing of the consumer's runs any more; publishing still collects what the
    // algorithm wrote so far (it runs none of the consumer's code), as Ocean keeps a stopped job's outputs.
    const stopped = step !== 'publish' && fs.existsSync(job.stopMarker);
    if (stopped) {
      writeJsonAtomic(sp.state, { status: 'exited', exitCode: null, signal: null, oomKilled: false, reason: 'stopped', finishedAt: Date.now() } satisfies StepState);
      return;
    }
    fs.writeFileSync(sp.report, '', { mode: 0o600 });
    chownTo([sp.report], this.uid);
    const sandbox = this.sandboxFor(req, job, sp, netns);
    const cgName = `${jobId}-${step}`;
    const dirs = createStepCgroups(this.cgroups, cgName, {
      memoryBytes: env.ramGB * 1024 ** 3,
      cpus: env.cpuNumber,
      maxProcesses: env.process.maxProcesses + WRAPPER_PIDS,
    });
    const outputLimit = step === 'algorithm' ? maxOutputBytes(env) : undefined;
    const argv = wrapSandboxCommand(
      // one byte over the limit, so a file cut off by RLIMIT_FSIZE is seen as over it
      { cgroupProcs: dirs.map((d) => path.join(d, 'cgroup.procs')), fsizeBytes: outputLimit === undefined ? undefined : outputLimit + 1, uid: this.uid, netns, bin: this.bin },
      buildSandboxArgs(sandbox),
    );
    const spec: SupervisorSpec = {
      jobId,
      step,
      argv,
      cgroupDirs: dirs,
      memoryCgroup: memoryCgroupDir(this.cgroups, cgName),
      cgroupVersion: this.cgroups.version,
      stateFile: sp.state,
      logFile: sp.log,
      ...(step === 'publish' ? {} : { stopMarker: job.stopMarker }),
      deadlineMs: env.maxJobDuration * 1000,
      maxLogBytes: MAX_LOG_BYTES,
      ...(outputLimit !== undefined ? { outputsDir: job.outputs, maxOutputBytes: outputLimit } : {}),
      ...(step === 'configure' ? { removeOnExit: [job.configureSpec] } : {}),
      supervisorLog: sp.supervisorLog,
    };
    writeJsonAtomic(sp.spec, spec);
    const pid = this.takeSpare(sp.spec) ?? this.coldSupervisor(jobId, step, sp);
    if (pid === undefined) throw setupError(`cannot start the step supervisor for ${step}`);
    fs.writeFileSync(sp.launch, JSON.stringify({ supervisorPid: pid, launchedAt: Date.now() }));
    this.log.info({ jobId, step, supervisorPid: pid }, 'step started');
  }

  /** A supervisor started now for this step (no spare was ready). */
  private coldSupervisor(jobId: string, step: StepName, sp: StepPaths): number | undefined {
    const out = fs.openSync(sp.supervisorLog, 'a', 0o600);
    try {
      const child = spawn(process.execPath, [this.supervisorProgram(), sp.spec], { detached: true, stdio: ['ignore', out, out] });
      child.on('error', (err) => this.log.error({ jobId, step, err: err.message }, 'supervisor failed to start'));
      child.unref();
      return child.pid;
    } finally {
      fs.closeSync(out);
    }
  }

  private supervisorProgram(): string {
    return path.join(this.opts.programsDir, 'supervisor.js');
  }

  /**
   * Hands the spec to the spare supervisor (already started, detached, waiting on its stdin), so the
   * algorithm does not wait for a Node start-up. Undefined when none is ready. The next spare starts when
   * an algorithm step ends (not beside one that is starting, on a small machine). A spare whose worker
   * dies sees its stdin close and exits.
   */
  private takeSpare(specFile: string): number | undefined {
    const spare = this.spare;
    this.spare = undefined;
    const ready = spare?.pid !== undefined && spare.exitCode === null && spare.signalCode === null && spare.stdin?.writable === true;
    if (ready) spare.stdin?.end(`${specFile}\n`);
    else spare?.kill('SIGKILL');
    return ready ? spare.pid : undefined;
  }

  private startSpare(): void {
    try {
      const child = spawn(process.execPath, [this.supervisorProgram(), '--wait'], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
      child.on('error', (err) => this.log.warn({ err: err.message }, 'spare supervisor failed to start'));
      child.stdin.on('error', () => undefined); // it died: the next launch sees that and starts its own
      child.unref();
      (child.stdin as unknown as { unref?: () => void }).unref?.();
      this.spare = child;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'spare supervisor failed to start');
    }
  }

  private sandboxFor(req: StepRequest, job: JobPaths, sp: StepPaths, netns: string | undefined): SandboxOptions {
    const tmpBytes = req.environment.process.tmpBytes;
    if (req.step === 'configure') {
      fs.writeFileSync(job.configureSpec, JSON.stringify(req.configure), { mode: 0o400 });
      chownTo([job.configureSpec], this.uid);
      return configureSandbox({ job, node: this.node, programsDir: this.opts.programsDir, reportFile: sp.report, tmpBytes });
    }
    if (req.step === 'publish') return publishSandbox({ job, node: this.node, programsDir: this.opts.programsDir, reportFile: sp.report, tmpBytes });
    const spec = req.algorithm;
    if (!spec) throw new C2DError('internal', 'bad_step_request', 'algorithm step without an algorithm spec');
    const runtime = findRuntime(this.opts.runtimes, spec.container.image);
    if (!runtime) throw new C2DError('validation', 'unknown_image', this.checkContainer(spec.container) ?? 'unknown image');
    let command: string;
    try {
      command = fs.realpathSync(runtime.command);
    } catch (err) {
      throw setupError(`runtime ${runtime.command} of image "${spec.container.image}" is not installed: ${(err as Error).message}`);
    }
    return algorithmSandbox(job, spec, { command, names: runtime.names }, tmpBytes, netns);
  }

  /** Resolves with the step's final state; polls on fs events in the step dir and every heartbeat. */
  private waitForExit(req: StepRequest, sp: StepPaths, hooks: StepHooks): Promise<Extract<StepState, { status: 'exited' }>> {
    return new Promise((resolve, reject) => {
      let watcher: fs.FSWatcher | undefined;
      const finish = (): void => {
        watcher?.close();
        clearInterval(timer);
        hooks.signal.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        finish();
        reject(abortError(hooks.signal));
      };
      const check = (): void => {
        try {
          const state = this.currentState(req, sp);
          if (!state) return;
          finish();
          resolve(state);
        } catch (err) {
          finish(); // e.g. the job's workspace was removed under us
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      if (hooks.signal.aborted) {
        reject(abortError(hooks.signal));
        return;
      }
      hooks.signal.addEventListener('abort', onAbort, { once: true });
      try {
        watcher = fs.watch(sp.dir, check);
        watcher.on('error', () => undefined);
      } catch {
        // the heartbeat interval still polls
      }
      const timer = setInterval(() => {
        hooks.heartbeat({ step: req.step });
        check();
      }, HEARTBEAT_MS);
      hooks.heartbeat({ step: req.step });
      check();
    });
  }

  /** The exited state, or null while the step runs. A supervisor that died without recording its exit counts as exited. */
  private currentState(req: StepRequest, sp: StepPaths): Extract<StepState, { status: 'exited' }> | null {
    const state = readState(sp.state);
    if (state?.status === 'exited') return state;
    let lost: string | null = null;
    if (state?.status === 'running') {
      if (!isSupervisorAlive(state.supervisorPid)) lost = 'signal:SIGKILL';
    } else {
      const launch = readLaunch(sp.launch);
      if (!launch) return { status: 'exited', exitCode: null, signal: null, oomKilled: false, reason: 'stopped', finishedAt: Date.now() }; // cleaned up under us
      if (launch.supervisorPid !== undefined ? !isSupervisorAlive(launch.supervisorPid) : Date.now() - launch.mtimeMs > LAUNCH_GRACE_MS) {
        lost = 'start-failed: the step supervisor exited before recording a state';
      }
    }
    if (!lost) return null;
    const again = readState(sp.state); // it may have written its exit just now
    if (again?.status === 'exited') return again;
    const job = jobPaths(this.opts.dataDir, req.jobId);
    void killCgroups(stepCgroupDirs(this.cgroups, `${req.jobId}-${req.step}`));
    const exited: Extract<StepState, { status: 'exited' }> = {
      status: 'exited',
      exitCode: null,
      signal: null,
      oomKilled: false,
      reason: fs.existsSync(job.stopMarker) ? 'stopped' : lost,
      finishedAt: Date.now(),
    };
    this.log.warn({ jobId: req.jobId, step: req.step, reason: exited.reason }, 'step supervisor lost');
    writeJsonAtomic(sp.state, exited);
    return exited;
  }

  async stopJob(jobId: string): Promise<void> {
    const job = jobPaths(this.opts.dataDir, jobId);
    if (fs.existsSync(job.root)) fs.writeFileSync(job.stopMarker, '');
    await this.killJob(jobId, job);
    await this.networks.teardown(jobId);
    this.log.info({ jobId }, 'job stopped');
  }

  /** Kills every step cgroup of the job until empty and waits (briefly) for the supervisors to record their exit. */
  private async killJob(jobId: string, job: JobPaths): Promise<void> {
    const dirs = STEPS.flatMap((s) => stepCgroupDirs(this.cgroups, `${jobId}-${s}`));
    const deadline = Date.now() + STOP_WAIT_MS;
    for (;;) {
      await killCgroups(dirs, Math.max(0, deadline - Date.now()));
      const running = STEPS.filter((s) => {
        const st = readState(stepPaths(job, s).state);
        return st?.status === 'running' && isSupervisorAlive(st.supervisorPid);
      });
      if ((running.length === 0 && cgroupPids(dirs).length === 0) || Date.now() > deadline) return;
      await sleep(20);
    }
  }

  listPublished(jobId: string): Promise<PublishedFile[]> {
    return Promise.resolve(listPublishedFiles(jobPaths(this.opts.dataDir, jobId)));
  }

  workspace(jobId: string): JobWorkspace {
    return processWorkspace(jobPaths(this.opts.dataDir, jobId));
  }

  openLog(jobId: string, step: StepName, opts: { follow: boolean; signal?: AbortSignal }): Readable | null {
    const job = jobPaths(this.opts.dataDir, jobId);
    const sp = stepPaths(job, step);
    if (fs.existsSync(sp.launch)) return streamLog(sp.log, sp.state, opts);
    // Configured, algorithm not launched yet: the job shows status 40 just before the algorithm's activity
    // starts, so follow the log from its first byte; the stream ends if the job is stopped or removed first.
    const configured = readState(stepPaths(job, 'configure').state);
    const next = step === 'algorithm' && opts.follow && configured?.status === 'exited' && configured.exitCode === 0 && configured.reason === '';
    if (!next || fs.existsSync(job.stopMarker)) return null;
    return streamLog(sp.log, sp.state, { ...opts, abandoned: () => !fs.existsSync(sp.launch) && (!fs.existsSync(job.root) || fs.existsSync(job.stopMarker)) });
  }

  async cleanup(jobId: string): Promise<void> {
    const job = jobPaths(this.opts.dataDir, jobId);
    if (fs.existsSync(job.root)) fs.writeFileSync(job.stopMarker, '');
    await this.killJob(jobId, job);
    await this.networks.teardown(jobId);
    fs.rmSync(job.root, { recursive: true, force: true });
    removeCgroups(STEPS.flatMap((s) => stepCgroupDirs(this.cgroups, `${jobId}-${s}`)));
    this.log.info({ jobId }, 'job cleaned up');
  }
}

/** The launch record; null when the launch file is gone (the job was cleaned up). */
function readLaunch(file: string): { supervisorPid?: number; mtimeMs: number } | null {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const v = text ? (JSON.parse(text) as { supervisorPid?: unknown }) : {};
    return typeof v.supervisorPid === 'number' ? { supervisorPid: v.supervisorPid, mtimeMs: st.mtimeMs } : { mtimeMs: st.mtimeMs };
  } catch {
    return { mtimeMs: st.mtimeMs }; // being written
  }
}

function readReport(file: string): unknown {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.trim() ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
}
