import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { allowsLoopback } from '../../net/guarded-fetch';
import type { StepHooks, StepName, StepOutcome } from '../backend';
import { killCgroups, stepCgroupDirs } from './cgroups';
import { type IdMap, namespacePrefix } from './idmap';
import { cgroupName, createJobDirs, type JobPaths, jobPaths, type StepPaths, stepPaths } from './layout';
import { type ConfigureAhead, type ProcessStepRequest, planStep, publishBudget } from './plan';
import { recordExit, recordStopped, runPlannedStep } from './runner';
import type { StepSpec } from './spec';
import { fileOwner, jobUid, type ProcessHost } from './setup';
import { type ExitedState, readReport, readState, writeJsonAtomic } from './state';
import { publishFlags } from './steps';
import { STEPS } from '../steps';
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

/** A configure sandbox started ahead of its turn (startConfigureAhead), its program waiting on its stdin for its spec. */
interface AheadConfigure {
  /** the id it holds its uid, cgroups and namespace under until its job takes it (aheadId) */
  id: string;
  /** the spec (one line), or null: not wanted, it ends */
  go: (line: string | null) => void;
  /** its sandbox spawned (true), or it could not be (false) */
  ready: Promise<boolean>;
  /** its end, once it has given back what it held (not taken) and its namespace is gone; null when it never started */
  run: Promise<ExitedState | null>;
  /** the job took it: its uid is the job's now */
  taken: boolean;
  discarded: boolean;
  ended: boolean;
  timer: NodeJS.Timeout;
}

/** Configure sandboxes started ahead and not taken yet, at most, per worker. */
const AHEAD_MAX = 4;
/** How long one waits for its job's configure step (a job granted its slot later starts its own). */
const AHEAD_WAIT_MS = 60_000;
/** Jobs waiting for a configure started ahead while AHEAD_MAX wait already: at most this many, this old. */
const AHEAD_QUEUE_MAX = 1000;
const AHEAD_QUEUE_AGE_MS = 10 * 60_000;

type AheadRequest = ConfigureAhead & { allowedPrivateHosts: string[] };

/**
 * The id a configure started ahead claims its uid and cgroups and names its namespace by, until its job
 * takes it: derived from the job's and the worker's work dir (32 hex, like a job id), never the job's own,
 * so that the job configured meanwhile by another worker of this host (a work dir of its own) never shares
 * a uid, a cgroup or a namespace with it, nor two such sandboxes of one job with each other.
 */
export const aheadId = (workDir: string, jobId: string): string =>
  createHash('sha256').update(`configure-ahead:${workDir}:${jobId}`).digest('hex').slice(0, 32);

/** The cgroup dirs a step of the job may run in: its own, and for configure those of the sandbox started ahead that it took. */
export function stepCgroupDirsOf(host: ProcessHost, jobId: string, step: StepName): string[] {
  const names = step === 'configure' ? [cgroupName(jobId, step), cgroupName(aheadId(host.reach.workDir, jobId), step)] : [cgroupName(jobId, step)];
  return names.flatMap((name) => stepCgroupDirs(host.cgroups, name));
}

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
  /** configure sandboxes started ahead, by job id */
  private readonly ahead = new Map<string, AheadConfigure>();
  /** jobs to start one for when there is room, first asked first (the order their slots are granted in) */
  private aheadQueue: (AheadRequest & { at: number })[] = [];

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

  /**
   * Starts the job's configure sandbox now, while the job waits for its slot (called by the worker that
   * asked for the slot, the host its steps run on): its program starts (Node's start-up, the sandbox's
   * set-up, the job's egress-only namespace when its downloads will need one) and waits on its stdin,
   * reading nothing, until the configure step gives it its spec. The step then costs the downloads alone.
   * Best effort, at most AHEAD_MAX at once (the jobs asking beyond them queue, first asked first, and get
   * theirs as those are taken or end): a configure step that finds none starts its own. Not for a
   * worker that is not root. Until its step takes it, it holds its uid, cgroups and namespace under
   * aheadId(workDir, jobId); a stop or cleanup of the job, or AHEAD_WAIT_MS without its step, ends it and gives
   * back what it held (and the job's workspace, when no step of the job ran here).
   */
  startConfigureAhead(req: AheadRequest): void {
    const { jobId } = req;
    if (this.host.idmap || this.ahead.has(jobId)) return;
    if (this.ahead.size >= AHEAD_MAX) {
      // its turn comes when one of those waiting is taken or ends (the jobs queued for their slots)
      if (this.aheadQueue.length < AHEAD_QUEUE_MAX && !this.aheadQueue.some((q) => q.jobId === jobId)) this.aheadQueue.push({ ...req, at: Date.now() });
      return;
    }
    const job = jobPaths(this.host.reach.workDir, jobId);
    // the job has a workspace here already (a repeated request, a later attempt): its configure starts its own
    if (fs.existsSync(job.root)) return;
    const id = aheadId(this.host.reach.workDir, jobId);
    let go: (line: string | null) => void = () => undefined;
    const gate = new Promise<string | null>((resolve) => (go = resolve));
    let spawned: (ok: boolean) => void = () => undefined;
    const entry: AheadConfigure = {
      id,
      go,
      ready: new Promise<boolean>((resolve) => (spawned = resolve)),
      run: Promise.resolve(null),
      taken: false,
      discarded: false,
      ended: false,
      timer: setTimeout(() => void this.discardAhead(jobId), AHEAD_WAIT_MS).unref(),
    };
    // the step's namespace, as configureNetns decides it (a job that downloads nothing gets one it does not use)
    const wantsNetns = !this.host.networks.problem && !allowsLoopback(req.allowedPrivateHosts);
    const started = async (): Promise<ExitedState | null> => {
      const netns = wantsNetns ? (await this.host.networks.setup(id)).netnsPath : undefined;
      if (entry.discarded) return null;
      const sp = stepPaths(job, 'configure');
      createJobDirs(job, sp, jobUid(this.host, id, job.root));
      const spec = planStep(this.host, req, job, sp, { claimAs: id, ...(netns ? { netns } : {}) });
      const run = runPlannedStep(spec, { shell: this.host.bin.sh, detached: true, go: gate });
      spawned(true);
      return run;
    };
    entry.run = started()
      .catch((err: unknown) => {
        this.host.log.warn({ jobId, err: (err as Error).message }, 'could not start the configure step ahead; it starts when its turn comes');
        return null;
      })
      .then(async (state) => {
        entry.ended = true;
        spawned(false);
        clearTimeout(entry.timer);
        if (this.ahead.get(jobId) === entry) this.ahead.delete(jobId);
        await this.host.networks.teardown(id);
        if (!entry.taken) this.giveBackAhead(jobId, job, id);
        this.startNextAhead();
        return state;
      });
    this.ahead.set(jobId, entry);
  }

  /** Starts those queued, first asked first, while there is room. */
  private startNextAhead(): void {
    while (this.ahead.size < AHEAD_MAX && this.aheadQueue.length > 0) {
      const next = this.aheadQueue.shift()!;
      if (Date.now() - next.at <= AHEAD_QUEUE_AGE_MS) this.startConfigureAhead(next);
    }
  }

  /** What a configure started ahead and not taken held: its uid, and the job's workspace when no step of the job ran here. */
  private giveBackAhead(jobId: string, job: JobPaths, id: string): void {
    this.host.uids?.release(id);
    const stepsHere = this.runs.has(`${jobId}/configure`) || STEPS.some((step) => fs.existsSync(stepPaths(job, step).launch));
    if (!stepsHere) fs.rmSync(job.root, { recursive: true, force: true });
  }

  /** The job's configure started ahead is not to be used (a stop, a cleanup, its wait ran out): it ends; resolves once it has. */
  async discardAhead(jobId: string): Promise<void> {
    this.aheadQueue = this.aheadQueue.filter((q) => q.jobId !== jobId);
    const entry = this.ahead.get(jobId);
    if (!entry || entry.taken) return;
    entry.discarded = true;
    entry.go(null);
    await entry.run;
  }

  /**
   * The job's configure started ahead, taken for this run with what it holds (its uid becomes the job's);
   * undefined when there is none, or it cannot serve (it did not start, it ended, or the job holds a uid
   * already): then it has ended, and given back what it held, before this returns.
   */
  private async takeAhead(jobId: string): Promise<AheadConfigure | undefined> {
    this.aheadQueue = this.aheadQueue.filter((q) => q.jobId !== jobId);
    const entry = this.ahead.get(jobId);
    if (!entry) return undefined;
    const usable = !entry.discarded && (await entry.ready) && !entry.discarded && !entry.ended;
    if (usable && this.host.uids?.transfer(entry.id, jobId) !== false) {
      entry.taken = true;
      clearTimeout(entry.timer);
      this.ahead.delete(jobId);
      this.startNextAhead();
      return entry;
    }
    await this.discardAhead(jobId);
    return undefined;
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
        void killCgroups(stepCgroupDirsOf(this.host, req.jobId, req.step));
      },
    );
  }

  private async start(req: DirectStepRequest): Promise<StepOutcome> {
    const { jobId, step } = req;
    const warm = req.step === 'publish' ? await this.takeWarm(jobId) : undefined;
    // before the job's uid is claimed: taken, the sandbox started ahead hands its uid to the job
    const ahead = req.step === 'configure' ? await this.takeAhead(jobId) : undefined;
    const job = jobPaths(this.host.reach.workDir, jobId);
    const sp = stepPaths(job, step);
    createJobDirs(job, sp, fileOwner(this.host, jobId));
    const reattached = fs.existsSync(sp.launch);
    // what an earlier attempt (a crashed worker) may have left running
    if (reattached) await killCgroups(stepCgroupDirsOf(this.host, jobId, step), 10_000);
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
      ahead?.go(null);
      await ahead?.run;
      return outcome(recordStopped(sp.state));
    }
    if (warm && req.step === 'publish') {
      this.host.log.info({ jobId, step, ahead: true }, 'step started');
      warm.go(publishFlags(publishBudget(req, job)).join(' '));
      return outcome(await warm.run);
    }
    if (ahead && req.step === 'configure') {
      this.host.log.info({ jobId, step, ahead: true }, 'step started');
      ahead.go(JSON.stringify(req.configure));
      const state = await ahead.run;
      return outcome(
        state ?? recordExit(sp.state, { exitCode: null, signal: null, oomKilled: false, reason: 'start-failed: the configure step started ahead did not run' }),
      );
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
