import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { createActivities } from '../../src/activities';
import type { AuthorizedJob, FileDecryptor } from '../../src/assets/authorize';
import type { ComputeBackend, ConfigureSpec, PublishedFile, StepHooks, StepName, StepOutcome, StepRequest } from '../../src/compute/backend';
import type { Ddo, DdoService } from '../../src/domain/ddo';
import { type Environment, type EnvironmentInput, environmentSchema } from '../../src/domain/environment';
import type { ResultEntry, JobInput } from '../../src/domain/job';
import type { Logger } from '../../src/domain/logger';
import type { PluginRegistry } from '../../src/plugins';
import type { OpenedResult, ResultSource, ResultStore, StoredResults } from '../../src/storage/store';

/** Workflow-logic tests only: a scripted backend, an in-memory store and a fake authorizer stand in for the real parts. */

/** Appears in every decrypted file location; must never reach workflow history. */
export const SECRET = 'SECRET-TOKEN-3f9a1c';

export interface StepScript {
  /** what the step ends with (default: a clean exit) */
  outcome?: Partial<StepOutcome>;
  /** run this long before ending */
  ms?: number;
  /** wait until release(jobId, step) or stopJob(jobId) */
  hold?: boolean;
}

export type JobScript = Partial<Record<StepName, StepScript>> & {
  /** authorize throws this (every call) */
  authorizeError?: Error;
  /** prepareAlgorithm (docker environments: the image pull) */
  prepare?: StepScript;
};

const ok: StepOutcome = { exitCode: 0, oomKilled: false, reason: '', reattached: false };

export class ScriptedBackend implements ComputeBackend {
  readonly kind = 'scripted';
  readonly scripts = new Map<string, JobScript>();
  readonly calls: { jobId: string; step: StepName; at: number }[] = [];
  readonly stopCalls: { jobId: string; at: number }[] = [];
  readonly cleanups: string[] = [];
  readonly configureSpecs = new Map<string, ConfigureSpec>();
  readonly algorithmRequests = new Map<string, Extract<StepRequest, { step: 'algorithm' }>>();
  /** job ids whose algorithm step is running now */
  readonly running = new Set<string>();
  maxConcurrentAlgorithms = 0;
  private readonly stopped = new Set<string>();
  private readonly waiters = new Map<string, () => void>();

  checkContainer(): string | null {
    return null;
  }

  release(jobId: string, step: StepName): void {
    this.waiters.get(`${jobId}/${step}`)?.();
  }

  isWaiting(jobId: string, step: StepName): boolean {
    return this.waiters.has(`${jobId}/${step}`);
  }

  /** jobs whose algorithm image was prepared, and when */
  readonly prepares: { jobId: string; at: number; endedAt?: number }[] = [];

  /** As the docker backend's (called for docker environments only): the image pull, scripted like a step. */
  async prepareAlgorithm(req: { jobId: string }, hooks: StepHooks): Promise<StepOutcome> {
    const call: { jobId: string; at: number; endedAt?: number } = { jobId: req.jobId, at: Date.now() };
    this.prepares.push(call);
    const script = this.scripts.get(req.jobId)?.prepare ?? {};
    const beat = setInterval(() => hooks.heartbeat(), 200);
    await new Promise((resolve) => setTimeout(resolve, script.ms ?? 0)).finally(() => clearInterval(beat));
    call.endedAt = Date.now();
    return { ...ok, ...script.outcome };
  }

  async runStep(req: StepRequest, hooks: StepHooks): Promise<StepOutcome> {
    const { jobId, step } = req;
    this.calls.push({ jobId, step, at: Date.now() });
    if (step === 'configure' && req.configure) this.configureSpecs.set(jobId, req.configure);
    if (step === 'algorithm') this.algorithmRequests.set(jobId, req);
    // as the real backends: after a stop none of the consumer's steps starts; publishing still collects what exists
    if (this.stopped.has(jobId) && step !== 'publish') return { ...ok, exitCode: null, reason: 'stopped' };
    const script = this.scripts.get(jobId)?.[step] ?? {};
    if (step === 'algorithm') {
      this.running.add(jobId);
      this.maxConcurrentAlgorithms = Math.max(this.maxConcurrentAlgorithms, this.running.size);
    }
    try {
      const key = `${jobId}/${step}`;
      const ended = new Promise<'released' | 'stopped'>((resolve) => {
        this.waiters.set(key, () => resolve(this.stopped.has(jobId) ? 'stopped' : 'released'));
        if (!script.hold) setTimeout(() => resolve('released'), script.ms ?? 0);
      });
      const beat = setInterval(() => hooks.heartbeat(), 200);
      const how = await ended.finally(() => {
        clearInterval(beat);
        this.waiters.delete(key);
      });
      if (how === 'stopped') return { ...ok, exitCode: null, reason: 'stopped' };
      return { ...ok, ...script.outcome };
    } finally {
      if (step === 'algorithm') this.running.delete(jobId);
    }
  }

  stopJob(jobId: string): Promise<void> {
    this.stopCalls.push({ jobId, at: Date.now() });
    this.stopped.add(jobId);
    for (const step of ['configure', 'algorithm', 'publish'] as const) this.release(jobId, step);
    return Promise.resolve();
  }

  listPublished(jobId: string): Promise<PublishedFile[]> {
    const file = (filename: string, type: PublishedFile['type'], text: string): PublishedFile => ({
      filename,
      type,
      size: Buffer.byteLength(text),
      open: () => Readable.from([Buffer.from(text)]),
    });
    const ran = (step: StepName): boolean => this.calls.some((c) => c.jobId === jobId && c.step === step);
    const files: PublishedFile[] = [];
    if (ran('algorithm')) files.push(file('out.txt', 'output', `result of ${jobId}\n`));
    if (ran('algorithm')) files.push(file('algorithm.log', 'algorithmLog', 'algorithm says hi\n'));
    files.push(file('configure.log', 'configrationLog', 'fetched inputs\n'));
    return Promise.resolve(files);
  }

  openLog(): Readable | null {
    return null;
  }

  cleanup(jobId: string): Promise<void> {
    this.cleanups.push(jobId);
    return Promise.resolve();
  }
}

export class MemoryResultStore implements ResultStore {
  readonly jobs = new Map<string, StoredResults & { files: Map<string, Buffer> }>();

  async save(jobId: string, owner: string, files: ResultSource[], expiresAtMs: number): Promise<ResultEntry[]> {
    const stored = new Map<string, Buffer>();
    for (const f of files) {
      const chunks: Buffer[] = [];
      for await (const chunk of f.open()) chunks.push(Buffer.from(chunk as Buffer));
      stored.set(f.filename, Buffer.concat(chunks));
    }
    const results = files.map((f) => ({ filename: f.filename, filesize: stored.get(f.filename)?.length ?? 0, type: f.type }));
    this.jobs.set(jobId, { jobId, owner, results, expireTimestamp: Math.floor(expiresAtMs / 1000), removed: false, files: stored });
    return results;
  }

  get(jobId: string): Promise<StoredResults | null> {
    const j = this.jobs.get(jobId);
    return Promise.resolve(j ? { jobId: j.jobId, owner: j.owner, results: j.results, expireTimestamp: j.expireTimestamp, removed: j.removed } : null);
  }

  open(): Promise<OpenedResult> {
    return Promise.reject(new Error('not used in workflow tests'));
  }

  remove(jobId: string): Promise<void> {
    const j = this.jobs.get(jobId);
    if (j) {
      j.removed = true;
      j.files.clear();
    }
    return Promise.resolve();
  }

  sweepExpired(): Promise<number> {
    return Promise.resolve(0);
  }
}

export const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

const ddoOf = (did: string, type: 'dataset' | 'algorithm'): Ddo =>
  ({ id: did, metadata: { type, name: did }, services: [{ id: 'compute', type: 'compute', files: '0x00', timeout: 0 }] }) as unknown as Ddo;

export const environment = (input: EnvironmentInput): Environment => environmentSchema.parse(input);

export const newJobId = (): string => crypto.randomBytes(16).toString('hex');
export const newOwner = (): string => `0x${crypto.randomBytes(20).toString('hex')}`;

export function jobInput(environmentId: string, over: Partial<JobInput> = {}): JobInput {
  return {
    jobId: newJobId(),
    owner: newOwner(),
    environmentId,
    datasets: [{ did: `did:op:${crypto.randomBytes(32).toString('hex')}`, serviceId: 'compute', transferTxId: '0xabc' }],
    algorithm: { kind: 'published', did: `did:op:${crypto.randomBytes(32).toString('hex')}`, serviceId: 'compute' },
    createdAt: Date.now(),
    ...over,
  };
}

/** The fakes wired into the real activities. */
export function fakeWorld(environments: Environment[], plugins?: PluginRegistry, opts: { hostQueue?: string } = {}) {
  const backend = new ScriptedBackend();
  const results = new MemoryResultStore();
  const authorizeCalls: string[] = [];
  const authorize = (input: JobInput): Promise<AuthorizedJob> => {
    authorizeCalls.push(input.jobId);
    const err = backend.scripts.get(input.jobId)?.authorizeError;
    if (err) return Promise.reject(err);
    const service = (ddo: Ddo): DdoService => ddo.services[0] as DdoService;
    const datasets = input.datasets.map((d, i) => {
      const ddo = ddoOf(d.did, 'dataset');
      return { did: d.did, ddo, service: service(ddo), serviceIndex: i };
    });
    if (input.algorithm.kind === 'raw')
      return Promise.resolve({ datasets, algorithm: { kind: 'raw', container: input.algorithm.container }, allowNetwork: false });
    const ddo = ddoOf(input.algorithm.did, 'algorithm');
    return Promise.resolve({
      datasets,
      algorithm: {
        kind: 'published',
        did: input.algorithm.did,
        ddo,
        service: service(ddo),
        serviceIndex: 0,
        container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: 'sha256:00' },
      },
      allowNetwork: false,
    });
  };
  const decryptor: FileDecryptor = {
    decryptServiceFiles: (ddo) => Promise.resolve({ files: [{ type: 'url', url: `https://files.example/${ddo.id}?token=${SECRET}`, method: 'GET' }] }),
  };
  const activities = createActivities({
    environments,
    backendFor: () => backend,
    results,
    authorize,
    decryptor,
    logger: silent,
    heartbeatMs: 200,
    ...(plugins ? { plugins } : {}),
    ...(opts.hostQueue ? { hostQueue: opts.hostQueue } : {}),
  });
  return { backend, results, activities, authorizeCalls };
}
