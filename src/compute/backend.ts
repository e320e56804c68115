import type { Readable } from 'node:stream';
import type { FileObject } from '../domain/ddo';
import type { Environment } from '../domain/environment';
import type { ContainerSpec, ResultType } from '../domain/job';
import type { StepName } from './steps';

export type { StepName } from './steps';

/**
 * The publishing step's own bound, in seconds (as long as its activity's start-to-close, activity-options `step`). It runs after the
 * algorithm, also after a deadline or a stop, so maxJobDuration does not bound it: a publish that started
 * a second before the deadline, or on a node slow to start its pod, must still collect the logs.
 */
export const PUBLISH_STEP_MAX_SECONDS = 3600;

/**
 * What the configuration step fetches. Holds decrypted file locations: a secret. It is built by an
 * activity at run time (never passed through workflow history) and a backend hands it only to the
 * configuration step (process: a 0600 file bound into that sandbox alone, removed when the step
 * ends; kubernetes: a per-job Secret mounted into that pod alone).
 */
export interface ConfigureSpec {
  /** Main dataset first. File n goes to /data/inputs/<did without did:op:>/<n>, the DDO to /data/ddos/<did>. */
  datasets: { did: string; ddo: unknown; files: FileObject[] }[];
  /** Written to /data/transformations/algorithm: the algorithm's single file, or the raw code. */
  algorithm: { did: string | null; ddo: unknown; files?: FileObject[]; rawcode?: string };
  /** Written to /data/inputs/algoCustomData.json when present. */
  algoCustomData?: Record<string, unknown>;
  /** The consumer's `userdata` (validated against consumerParameters), keyed by dataset DID and `algorithm`;
   * written to /data/inputs/userdata.json when any was given. */
  userdata?: Record<string, Record<string, unknown>>;
  /** Bytes all inputs together may take. */
  maxInputBytes: number;
  /** C2D_ALLOWED_PRIVATE_HOSTS: what the step's guarded fetcher may reach besides public addresses (absent: public only) */
  allowedPrivateHosts?: string[];
}

/** The algorithm step: which host runtime stands for the container image, and what to run with it. */
export interface AlgorithmSpec {
  container: ContainerSpec;
  /** Environment variables of the algorithm (§5: DIDS, TRANSFORMATION_DID, VOLUME, INPUTS, OUTPUTS, LOGS, ALGO). No secrets. */
  env: Record<string, string>;
  /** Outbound network for the algorithm: only when every dataset allows it (issue: publisher control). */
  allowNetwork: boolean;
}

/** One step of one job, with exactly what that step needs: the union says so, no run-time "required for step X" checks. */
export type StepRequest = { jobId: string; environment: Environment } & (
  { step: 'configure'; configure: ConfigureSpec } | { step: 'algorithm'; algorithm: AlgorithmSpec } | { step: 'publish'; withholdOutputs?: boolean }
);

/** How a step ended. A non-zero exit is an outcome, not an exception: the workflow decides the status. */
export interface StepOutcome {
  /** exit status of the step's main process; null when it was killed by a signal */
  exitCode: number | null;
  oomKilled: boolean;
  /** '' for a plain exit; otherwise one of 'deadline' | 'stopped' | 'output-limit' | 'oom' | 'signal:<NAME>' | 'start-failed: <text>' | 'image-pull: <text>' (the step's image cannot be pulled) */
  reason: string;
  /** JSON the step program wrote to its report file (configure: which input failed and why; publish: the files it collected) */
  report?: unknown;
  /** true when this call found the step already started by an earlier attempt and re-attached to it */
  reattached: boolean;
}

export interface StepHooks {
  /** called at least every few seconds while the step runs */
  heartbeat: (details?: unknown) => void;
  /** aborting stops waiting (the activity was cancelled); it does not kill the step — use stopJob */
  signal: AbortSignal;
  /** a one-line summary of long preparation (an image pull) for the job's workflow to show; the caller throttles it */
  progress?: (summary: string) => void;
}

/** A file the publishing step collected (top-level regular files of /data/outputs) or one of the step logs. */
export interface PublishedFile {
  filename: string;
  type: ResultType;
  size: number;
  open(): Readable;
}

/** A file of a job's workspace as plugins see it. */
export interface WorkspaceFile {
  /** input: `<dataset dir>/<n>` (the dataset's files); output: the file name in /data/outputs; log: `algorithm.log` */
  name: string;
  kind: 'input' | 'output' | 'log';
  size: number;
}

/**
 * What publisher plugins may see of a job between its steps: the dataset inputs, the outputs the
 * publishing step is about to collect, and the algorithm's log. Reading never follows a link the
 * algorithm planted. The one write, `replaceOutput`, lets an output filter redact or withhold a file
 * before the publishing step collects it.
 */
export interface JobWorkspace {
  inputs(): Promise<WorkspaceFile[]>;
  /** top-level regular files of /data/outputs (what publishing collects) and the algorithm log */
  outputs(): Promise<WorkspaceFile[]>;
  open(file: WorkspaceFile): Readable;
  /** replaces an output or log file with `content`, or withholds it (null): publishing will not collect it */
  replaceOutput(file: WorkspaceFile, content: Buffer | null): Promise<void>;
}

/**
 * A place that runs job steps. Every method is idempotent per job id: names are derived from job id +
 * step, "already exists" on create and "not found" on delete count as success, so a retried activity
 * re-attaches instead of starting a step twice.
 */
export interface ComputeBackend {
  readonly kind: string;
  /** null when this backend can run the container, otherwise a message saying why not (e.g. unknown image). */
  checkContainer(container: ContainerSpec): string | null;
  /**
   * Makes the algorithm's image ready to start (docker: pulls it, its progress at the start of the
   * algorithm log), before the algorithm's deadline starts: a pull has its own bound, never maxJobDuration.
   * Resolves with reason '' when ready, else 'image-pull: <why, naming the image>'. Backends that run no
   * images leave it out (the algorithm step then does all).
   */
  prepareAlgorithm?(req: { jobId: string; environment: Environment; container: ContainerSpec }, hooks: StepHooks): Promise<StepOutcome>;
  /**
   * A hint, from the worker that asked for the job's slot (the host its steps will run on): the job may
   * soon configure here, so its configuration may start ahead of its turn (process: its sandbox and
   * program started, waiting for its spec). Best effort; returns at once; backends without it do nothing.
   */
  prepareConfigure?(req: { jobId: string; environment: Environment; allowedPrivateHosts: string[] }): void;
  /** Starts the step, or re-attaches to it if an earlier attempt started it; resolves when it has ended. */
  runStep(req: StepRequest, hooks: StepHooks): Promise<StepOutcome>;
  /** Kills every running step of the job; resolves once their processes are gone. */
  stopJob(jobId: string): Promise<void>;
  /** After the publish step: the collected outputs and the three step logs. */
  listPublished(jobId: string): Promise<PublishedFile[]>;
  /** A step's log so far; with follow, keeps streaming until the step ends. null when the step never started. */
  openLog(jobId: string, step: StepName, opts: { follow: boolean; signal?: AbortSignal }): Readable | null;
  /** Removes the job's workspace, secrets and limits. Safe to call twice and for unknown jobs. */
  cleanup(jobId: string): Promise<void>;
  /** The job's workspace for publisher plugins; absent on backends that offer none (plugins that need it then fail the job, saying so). */
  workspace?(jobId: string): JobWorkspace;
}
