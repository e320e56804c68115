import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { allowsLoopback } from '../../net/guarded-fetch';
import type { StepHooks, StepOutcome } from '../backend';
import { killCgroups, stepCgroupDirs } from './cgroups';
import { type IdMap, namespacePrefix } from './idmap';
import { cgroupName, createJobDirs, jobPaths, type StepPaths, stepPaths } from './layout';
import { type ProcessStepRequest, planStep, publishBudget } from './plan';
import { recordExit, recordStopped, runPlannedStep } from './runner';
import type { StepSpec } from './spec';
import { fileOwner, type ProcessHost } from './setup';
import { type ExitedState, readReport, readState, writeJsonAtomic } from './state';
import { publishFlags } from './steps';
import { waitForStep } from './wait';

/** Configuration and publishing: the steps the worker runs itself. */
export type DirectStepRequest = Extract<ProcessStepRequest, { step: 'configure' | 'publish' }>;

/** A run of this worker; abandoned once the attempt waiting for it was cancelled (it is being killed). */
interface DirectRun {
  run: Promise<StepOutcome>;
  abandoned: boolean;
}

/** A publish sandbox started ahead of its turn, its program waiting on its stdin for its flags. */
interface WarmPublish {
  /** the program's flags (one line), or null: not wanted, it ends */
  go: (line: string | null) => void;
  run: Promise<ExitedState>;
  settled: boolean;
  /** not to be used: the job was stopped or cleaned up, or it waited too long */
  discarded: boolean;
  timer: NodeJS.Timeout;
}

/** A publish started ahead waits at most the algorithm's own bound and this. */
const WARM_MARGIN_MS = 5 * 60_000;

/**
 * Configuration and publishing run straight from the worker (same sandbox, same cgroup limits, same
 * runner), without a detached supervisor: they are idempotent, so a retry after a worker crash runs
 * them again (bwrap's --die-with-parent takes the old run down with the worker) instead of
 * re-attaching. That saves a Node start-up per step. A second call while this worker still runs the
 * step waits for that run.
 */
export class DirectSteps {
  /** runs of this worker, by `<jobId>/<step>` */
  private readonly runs = new Map<string, DirectRun>();
  /** publish sandboxes started ahead, by job id */
  private readonly warm = new Map<string, WarmPublish>();

  constructor(private readonly host: ProcessHost) {}

  /**
   * Starts the job's publish sandbox now, while its algorithm runs: its program starts (Node's start-up,
   * the sandbox's set-up) and waits on its stdin, reading nothing, until publishing's turn gives it its
   * flags. Publishing then costs the copy alone. Best effort: a publish that finds none starts its own. Not
   * for a worker that is not root (its steps run under a supervisor of their own). It dies with the worker
   * (--die-with-parent), and a stop or cleanup of the job discards it.
   */
  prewarmPublish(req: { jobId: string; environment: ProcessStepRequest['environment'] }): void {
    const { jobId, environment } = req;
    if (this.host.idmap || this.warm.has(jobId)) return;
    const job = jobPaths(this.host.reach.workDir, jobId);
    const sp = stepPaths(job, 'publish');
    if (fs.existsSync(job.stopMarker) || fs.existsSync(sp.launch) || !fs.existsSync(job.root)) return;
    try {
      let go: (line: string | null) => void = () => undefined;
      const gate = new Promise<string | null>((resolve) => (go = resolve));
      createJobDirs(job, sp, fileOwner(this.host, jobId));
      const spec = planStep(this.host, { jobId, environment, step: 'publish' }, job, sp, { flagsOnStdin: true });
      const entry: WarmPublish = {
        go,
        run: runPlannedStep(spec, { shell: this.host.bin.sh, detached: true, go: gate }),
        settled: false,
        discarded: false,
        timer: setTimeout(() => this.discardWarm(jobId), environment.maxJobDuration * 1000 + WARM_MARGIN_MS).unref(),
      };
      const settled = (): void => {
        entry.settled = true;
        clearTimeout(entry.timer);
        if (this.warm.get(jobId) === entry) this.warm.delete(jobId);
      };
      entry.run.then(settled, settled);
      this.warm.set(jobId, entry);
    } catch (err) {
      this.host.log.warn({ jobId, err: (err as Error).message }, 'could not start the publish step ahead; it starts when its turn comes');
    }
  }

  /** The job's publish started ahead is not to be used (a stop, a cleanup): it ends. */
  discardWarm(jobId: string): void {
    const entry = this.warm.get(jobId);
    if (!entry || entry.discarded) return;
    entry.discarded = true;
    entry.go(null);
  }

  /** The job's publish started ahead, still waiting, taken for this run; undefined when there is none (one discarded has ended first). */
  private async takeWarm(jobId: string): Promise<WarmPublish | undefined> {
    const entry = this.warm.get(jobId);
    if (!entry) return undefined;
    if (!entry.discarded && !entry.settled) {
      this.warm.delete(jobId);
      clearTimeout(entry.timer);
      return entry;
    }
    this.discardWarm(jobId);
    // its runner removes its cgroups as it ends: the run that replaces it starts after
    await entry.run.catch(() => undefined);
    return undefined;
  }

  run(req: DirectStepRequest, hooks: StepHooks): Promise<StepOutcome> {
    const key = `${req.jobId}/${req.step}`;
    const current = this.runs.get(key);
    if (current && !current.abandoned) return this.wait(req, current, hooks);
    // a run given up by a cancelled attempt is being killed: the retry starts after it ended
    const before = current
      ? current.run.then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
    const entry: DirectRun = { run: before.then(() => this.start(req)), abandoned: false };
    this.runs.set(key, entry);
    const forget = (): void => {
      if (this.runs.get(key) === entry) this.runs.delete(key);
    };
    entry.run.then(forget, forget);
    return this.wait(req, entry, hooks);
  }

  private wait(req: DirectStepRequest, entry: DirectRun, hooks: StepHooks): Promise<StepOutcome> {
    // Cancelled (a stop, or the worker shutting down): nothing re-attaches to this run, so end it; a retry runs the step again.
    return waitForStep(
      hooks,
      { step: req.step },
      () => entry.run,
      () => {
        entry.abandoned = true;
        void killCgroups(stepCgroupDirs(this.host.cgroups, cgroupName(req.jobId, req.step)));
      },
    );
  }

  private async start(req: DirectStepRequest): Promise<StepOutcome> {
    const { jobId, step } = req;
    const warm = req.step === 'publish' ? await this.takeWarm(jobId) : undefined;
    const job = jobPaths(this.host.reach.workDir, jobId);
    const sp = stepPaths(job, step);
    createJobDirs(job, sp, fileOwner(this.host, jobId));
    const reattached = fs.existsSync(sp.launch);
    // what an earlier attempt (a crashed worker) may have left running
    if (reattached) await killCgroups(stepCgroupDirs(this.host.cgroups, cgroupName(jobId, step)), 10_000);
    writeJsonAtomic(sp.launch, { direct: true, launchedAt: Date.now() });
    fs.rmSync(sp.state, { force: true });
    const outcome = (state: { exitCode: number | null; oomKilled: boolean; reason: string }): StepOutcome => ({
      exitCode: state.exitCode,
      oomKilled: state.oomKilled,
      reason: state.reason,
      report: readReport(sp.report),
      reattached,
    });
    if (step !== 'publish' && fs.existsSync(job.stopMarker)) {
      if (step === 'configure') fs.rmSync(job.configureSpec, { force: true });
      return outcome(recordStopped(sp.state));
    }
    if (warm && req.step === 'publish') {
      this.host.log.info({ jobId, step, ahead: true }, 'step started');
      warm.go(publishFlags(publishBudget(req, job)).join(' '));
      return outcome(await warm.run);
    }
    const netns = req.step === 'configure' ? await this.configureNetns(req) : undefined;
    try {
      const spec = planStep(this.host, req, job, sp, netns ? { netns } : {});
      this.host.log.info({ jobId, step }, 'step started');
      if (this.host.idmap) return outcome(await runUnderSupervisor(this.host.idmap, this.host.supervisor, spec, sp));
      // its own session: a Ctrl-C meant for the worker does not reach the step (the worker ends it itself)
      return outcome(await runPlannedStep(spec, { shell: this.host.bin.sh, detached: true }));
    } finally {
      if (netns) await this.host.networks.teardown(jobId);
    }
  }

  /**
   * The configure step downloads from the network that the file URLs name, so it gets the job's
   * egress-only namespace (network.ts: never the host, other jobs or the deny list), as an algorithm
   * with network access does, on top of the guarded fetcher. The host's own network only where there
   * is none (a worker that is not root), or where the operator allowed an address on this host itself
   * (loopback, `localhost` in C2D_ALLOWED_PRIVATE_HOSTS: a dev data server), which no namespace reaches.
   */
  private async configureNetns(req: Extract<DirectStepRequest, { step: 'configure' }>): Promise<string | undefined> {
    const { datasets, algorithm, allowedPrivateHosts } = req.configure;
    const downloads = datasets.some((d) => d.files.length > 0) || (!algorithm.rawcode && (algorithm.files?.length ?? 0) > 0);
    if (!downloads || this.host.networks.problem || allowsLoopback(allowedPrivateHosts ?? [])) return undefined;
    return (await this.host.networks.setup(req.jobId)).netnsPath;
  }
}

/**
 * A worker that is not root runs configuration and publishing under an attached supervisor, root of the
 * job's user namespace (idmap.ts), which hands the job's files over and back; it dies with the worker.
 */
async function runUnderSupervisor(idmap: IdMap, supervisor: string, spec: StepSpec, sp: StepPaths): Promise<ExitedState> {
  writeJsonAtomic(sp.spec, spec);
  const [cmd, ...args] = [...namespacePrefix(idmap), process.execPath, supervisor, sp.spec, '--attached'];
  const out = fs.openSync(sp.supervisorLog, 'a', 0o600);
  let error: Error | undefined;
  try {
    // its own session: a Ctrl-C meant for the worker does not reach the step (the worker ends it itself)
    const child = spawn(cmd, args, { detached: true, stdio: ['pipe', out, out] });
    await new Promise<void>((resolve) => {
      child.on('error', (err) => {
        error = err;
        resolve();
      });
      child.on('close', () => resolve());
    });
  } finally {
    fs.closeSync(out);
  }
  const state = readState(sp.state);
  if (state?.status === 'exited') return state;
  return recordExit(sp.state, {
    exitCode: null,
    signal: null,
    oomKilled: false,
    reason: `start-failed: ${error?.message ?? 'the step supervisor exited before recording its end'}`,
  });
}
