import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { C2DError } from '../../domain/errors';
import type { ContainerSpec } from '../../domain/job';
import type { Logger } from '../../domain/logger';
import type { ComputeBackend, JobWorkspace, PublishedFile, StepHooks, StepName, StepOutcome, StepRequest } from '../backend';
import type { Environment } from '../../domain/environment';
import { assertJobId, STEPS } from '../steps';
import { cgroupPids, killCgroups, removeCgroups } from './cgroups';
import { aheadId, DirectSteps, stepCgroupDirsOf } from './direct';
import { handBack, hostUid } from './idmap';
import { closeInheritedDescriptors } from './host';
import { type JobPaths, jobPaths, stepPaths } from './layout';
import { streamLog } from './logs';
import { type ProcessStepRequest, unknownImage } from './plan';
import { listPublishedFiles } from './published';
import { processWorkspace } from './workspace';
import { type ProcessBackendOptions, type ProcessHost, setUpHost } from './setup';
import { isSupervisorAlive, readState } from './state';
import { findRuntime } from './steps';
import { SupervisedSteps } from './supervised';

export type { ProcessBackendOptions } from './setup';

const STOP_WAIT_MS = 1800;

/** <repo>/dist/src/entrypoints, whether this module runs from src (ts, under jest) or from dist (js). */
export function defaultProgramsDir(): string {
  const repo = path.resolve(__dirname, __filename.endsWith('.ts') ? '../../..' : '../../../..');
  return path.join(repo, 'dist', 'src', 'entrypoints');
}

/**
 * The embedded backend: each step is a bubblewrap sandbox in its own cgroups, run to its end by one
 * runner (runner.ts). Configuration and publishing run it straight from the worker (direct.ts); the
 * algorithm runs it under a detached supervisor that outlives a crashed worker (supervised.ts). A job's
 * files live under <workDir>/jobs/<jobId> (layout.ts), where the sandbox uid can reach them (reach.ts).
 */
export class ProcessBackend implements ComputeBackend {
  readonly kind = 'process';
  private readonly host: ProcessHost;
  private readonly log: Logger;
  private readonly direct: DirectSteps;
  private readonly supervised: SupervisedSteps;

  constructor(opts: ProcessBackendOptions) {
    this.log = opts.logger;
    // what this process inherited open would reach every sandbox it starts
    const closed = closeInheritedDescriptors();
    if (closed.length > 0) this.log.info({ descriptors: closed }, 'closed descriptors inherited open across exec: no step may inherit them');
    this.host = setUpHost(opts, this.log);
    this.direct = new DirectSteps(this.host);
    // while the algorithm runs, its publish sandbox starts and waits: publishing then costs no Node start-up
    this.supervised = new SupervisedSteps(this.host, (req) => this.direct.prewarmPublish(req));
  }

  /** Where job workspaces and the sandboxed step programs are, and the stage dir when the sandbox uid could not reach the originals. */
  get paths(): { workDir: string; programsDir: string; stageDir?: string } {
    const { workDir, programsDir, stageDir } = this.host.reach;
    return { workDir, programsDir, ...(stageDir ? { stageDir } : {}) };
  }

  /** The host uid the job's steps run as (its own: from the sandbox range, or from the worker's subordinate ids); undefined when the job holds none. */
  jobUid(jobId: string): number | undefined {
    const uid = this.host.uids?.held(jobId) ?? undefined;
    return uid !== undefined && this.host.idmap ? hostUid(this.host.idmap, uid) : uid;
  }

  checkContainer(container: ContainerSpec): string | null {
    return findRuntime(this.host.runtimes, container.image) ? null : unknownImage(this.host, container.image);
  }

  prepareConfigure(req: { jobId: string; environment: Environment; allowedPrivateHosts: string[] }): void {
    const { environment } = req;
    if (environment.backend !== 'process') return;
    try {
      assertJobId(req.jobId);
    } catch {
      return; // not one of ours: nothing to start
    }
    this.direct.startConfigureAhead({ jobId: req.jobId, environment, step: 'configure', allowedPrivateHosts: req.allowedPrivateHosts });
  }

  runStep(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    const { environment } = req;
    if (environment.backend !== 'process')
      return Promise.reject(new C2DError('internal', 'wrong_backend', `environment ${environment.id} is not a process environment`));
    const processReq: ProcessStepRequest = { ...req, environment };
    if (processReq.step === 'algorithm') return this.supervised.run(processReq, hooks);
    if (processReq.step === 'configure') this.supervised.prepareSpare();
    return this.direct.run(processReq, hooks);
  }

  private job(jobId: string): JobPaths {
    return jobPaths(this.host.reach.workDir, jobId);
  }

  async stopJob(jobId: string): Promise<void> {
    const job = this.job(jobId);
    if (fs.existsSync(job.root)) fs.writeFileSync(job.stopMarker, '');
    this.direct.discardWarm(jobId);
    await this.direct.discardAhead(jobId);
    await this.killJob(jobId, job);
    await this.host.networks.teardown(jobId);
    this.log.info({ jobId }, 'job stopped');
  }

  /** Every cgroup a step of the job may run in (a configure sandbox started ahead included). */
  private jobCgroupDirs(jobId: string): string[] {
    return STEPS.flatMap((s) => stepCgroupDirsOf(this.host, jobId, s));
  }

  /** Kills every step cgroup of the job until empty and waits (briefly) for the supervisors to record their exit. */
  private async killJob(jobId: string, job: JobPaths): Promise<void> {
    const dirs = this.jobCgroupDirs(jobId);
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
    return Promise.resolve(listPublishedFiles(this.job(jobId)));
  }

  workspace(jobId: string): JobWorkspace {
    return processWorkspace(this.job(jobId));
  }

  openLog(jobId: string, step: StepName, opts: { follow: boolean; signal?: AbortSignal }): Readable | null {
    const job = this.job(jobId);
    const sp = stepPaths(job, step);
    // launched: follow until the step records its exit, or until its files are gone (the job was cleaned up)
    if (fs.existsSync(sp.launch)) return streamLog(sp.log, sp.state, { ...opts, abandoned: () => !fs.existsSync(sp.launch) });
    // Configured, algorithm not launched yet: the job shows status 40 just before the algorithm's activity
    // starts, so follow the log from its first byte; the stream ends if the job is stopped or removed first.
    const configured = readState(stepPaths(job, 'configure').state);
    const next = step === 'algorithm' && opts.follow && configured?.status === 'exited' && configured.exitCode === 0 && configured.reason === '';
    if (!next || fs.existsSync(job.stopMarker)) return null;
    return streamLog(sp.log, sp.state, { ...opts, abandoned: () => !fs.existsSync(sp.launch) && (!fs.existsSync(job.root) || fs.existsSync(job.stopMarker)) });
  }

  async cleanup(jobId: string): Promise<void> {
    const job = this.job(jobId);
    if (fs.existsSync(job.root)) fs.writeFileSync(job.stopMarker, '');
    this.direct.discardWarm(jobId);
    await this.direct.discardAhead(jobId);
    await this.killJob(jobId, job);
    await this.host.networks.teardown(jobId);
    // a configure sandbox started ahead whose worker died (a crash) left its namespace behind
    await this.host.networks.teardown(aheadId(this.host.reach.workDir, jobId));
    // a step cut short (a crash) may have left files of the job's uid, which the worker cannot remove as itself
    if (this.host.idmap) await handBack(this.host.idmap, job.root);
    fs.rmSync(job.root, { recursive: true, force: true });
    removeCgroups(this.jobCgroupDirs(jobId));
    // nothing of the job runs or remains: its uid may serve another job (and that of a sandbox started ahead whose worker died)
    this.host.uids?.release(jobId);
    this.host.uids?.release(aheadId(this.host.reach.workDir, jobId));
    this.log.info({ jobId }, 'job cleaned up');
    // once the cleanup has answered: its spawn is not the cleanup's to wait for
    setImmediate(() => this.supervised.prepareSpare());
  }
}
