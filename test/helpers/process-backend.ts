import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ComputeBackend, ConfigureSpec, StepHooks, StepOutcome } from '../../src/compute/backend';
import { defaultProgramsDir, ProcessBackend } from '../../src/compute/process/backend';
import { DEFAULT_UID_RANGE } from '../../src/compute/process/job-uids';
import { defaultRuntimes } from '../../src/config';
import { type ProcessEnvironment, type ProcessEnvironmentInput, processEnvironmentSchema } from '../../src/domain/environment';
import type { Logger } from '../../src/domain/logger';

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

export const newJobId = (): string => randomBytes(16).toString('hex');

/** A small environment so sandbox tests stay fast: 256 MiB, 1 CPU, 30 s. */
export const testEnvironment = (overrides: Partial<ProcessEnvironmentInput> = {}): ProcessEnvironment =>
  processEnvironmentSchema.parse({ id: 'test', ramGB: 0.25, cpuNumber: 1, maxJobDuration: 30, ...overrides });

export const hooks = (signal: AbortSignal = new AbortController().signal): StepHooks => ({ heartbeat: () => undefined, signal });

export interface TestBackend {
  backend: ProcessBackend;
  dataDir: string;
  /** where the backend records which job holds which sandbox uid (a temp dir of its own) */
  uidSlotsDir: string;
  dispose(): void;
}

/** The sandbox settings of test backends: the default uid range, the host's cgroups. */
export const testSandbox = { uids: DEFAULT_UID_RANGE, cgroupRoot: '/sys/fs/cgroup' };

/** A temp dir for the record of sandbox uids (the default, /var/lib/c2d/sandbox-uids, would outlive the test). */
export const tempUidSlotsDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-uids-'));

/** A process backend over a fresh data dir the sandbox uids can traverse (mkdtemp makes 0700 dirs). */
export function createTestBackend(): TestBackend {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-process-'));
  fs.chmodSync(dataDir, 0o711);
  const uidSlotsDir = tempUidSlotsDir();
  const backend = new ProcessBackend({
    dataDir,
    runtimes: defaultRuntimes(process.execPath),
    sandbox: testSandbox,
    programsDir: defaultProgramsDir(),
    uidSlotsDir,
    logger: silentLogger,
  });
  return {
    backend,
    dataDir,
    uidSlotsDir,
    dispose: () => {
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(uidSlotsDir, { recursive: true, force: true });
      // placed there when this clone is out of the sandbox uid's reach (e.g. root's 0700 home)
      const { stageDir } = backend.paths;
      if (stageDir) fs.rmSync(stageDir, { recursive: true, force: true });
    },
  };
}

export interface AlgorithmJob {
  code: string;
  image?: string;
  entrypoint?: string;
  datasets?: ConfigureSpec['datasets'];
  allowNetwork?: boolean;
  env?: ProcessEnvironment;
}

/** Configure (raw code) then the algorithm step: what every sandbox test needs. */
export async function runAlgorithm(backend: ComputeBackend, jobId: string, job: AlgorithmJob): Promise<{ configure: StepOutcome; algorithm: StepOutcome }> {
  const environment = job.env ?? testEnvironment();
  const image = job.image ?? 'node';
  const configure = await backend.runStep(
    {
      jobId,
      environment,
      step: 'configure',
      configure: { datasets: job.datasets ?? [], algorithm: { did: null, ddo: null, rawcode: job.code }, maxInputBytes: 10 * 1024 * 1024 },
    },
    hooks(),
  );
  if (configure.exitCode !== 0) throw new Error(`configure failed: ${JSON.stringify(configure)}`);
  const algorithm = await backend.runStep(
    {
      jobId,
      environment,
      step: 'algorithm',
      algorithm: {
        container: { image, tag: 'latest', entrypoint: job.entrypoint ?? `${image === 'python' ? 'python3' : 'node'} $ALGO`, checksum: 'sha256:0' },
        env: {
          VOLUME: '/data',
          INPUTS: '/data/inputs',
          OUTPUTS: '/data/outputs',
          LOGS: '/data/logs',
          DIDS: JSON.stringify((job.datasets ?? []).map((d) => d.did)),
        },
        allowNetwork: job.allowNetwork ?? false,
      },
    },
    hooks(),
  );
  return { configure, algorithm };
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks).toString('utf8');
}

export const algorithmLog = (dataDir: string, jobId: string): string => {
  try {
    return fs.readFileSync(path.join(dataDir, 'jobs', jobId, 'logs', 'algorithm.log'), 'utf8');
  } catch {
    return '';
  }
};
