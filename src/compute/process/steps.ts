import path from 'node:path';
import type { Runtime } from '../../config';
import type { AlgorithmSpec } from '../backend';
import { imageCandidates } from '../images';
import type { JobPaths } from './layout';
import { SANDBOXED_MODULES } from './reach';
import { type Bind, type ResolvedRuntime, SANDBOX, SANDBOX_PATH, type SandboxOptions } from './sandbox-args';

export const ALGORITHM_FILE = `${SANDBOX.data}/transformations/algorithm`;
const REPORT = `${SANDBOX.run}/report.json`;
const CONFIGURE_SPEC = `${SANDBOX.run}/configure.json`;

/** What a step that talks to the network needs to resolve names and verify TLS. */
const networkFiles: Bind[] = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl', '/etc/ca-certificates'].map((p) => ({
  src: p,
  dest: p,
  writable: false,
  optional: true,
}));

/** The host runtime standing for an image (see imageCandidates for the names tried), or null. */
export function findRuntime(runtimes: Record<string, Runtime>, image: string): Runtime | null {
  for (const name of imageCandidates(image.toLowerCase())) {
    const r = runtimes[name] ?? runtimes[name.replace(/^library\//, '')];
    if (r) return r;
  }
  return null;
}

/**
 * The algorithm's sandbox. Without network access it gets a private namespace with only `lo`. With it
 * (`jobNetns`, every dataset allowed it), it keeps the job's own namespace that the wrapper enters
 * (see network.ts), never the host's: asking for network without a job namespace is a bug.
 */
export function algorithmSandbox(job: JobPaths, spec: AlgorithmSpec, runtime: ResolvedRuntime, tmpBytes: number, jobNetns?: string): SandboxOptions {
  if (spec.allowNetwork && !jobNetns) throw new Error('an algorithm with network access needs its job network namespace');
  return {
    tmpBytes,
    shareNetwork: spec.allowNetwork,
    runtimes: [runtime],
    binds: [
      { src: job.inputs, dest: `${SANDBOX.data}/inputs`, writable: false },
      { src: job.transformations, dest: `${SANDBOX.data}/transformations`, writable: false },
      { src: job.ddos, dest: `${SANDBOX.data}/ddos`, writable: false },
      { src: job.outputs, dest: `${SANDBOX.data}/outputs`, writable: true },
      { src: job.dataLogs, dest: `${SANDBOX.data}/logs`, writable: true },
      ...(spec.allowNetwork ? networkFiles : []),
    ],
    env: { ...spec.env, ALGO: ALGORITHM_FILE, PATH: SANDBOX_PATH, HOME: '/tmp' },
    chdir: SANDBOX.data,
    command: ['/bin/sh', '-c', spec.container.entrypoint],
  };
}

export interface ProgramStep {
  job: JobPaths;
  /** host Node.js that runs our step programs */
  node: ResolvedRuntime;
  programsDir: string;
  reportFile: string;
  tmpBytes: number;
}

const stepEnv = { PATH: SANDBOX_PATH, HOME: '/tmp' };
const program = (name: string): string => path.posix.join(SANDBOX.programs, name);

/**
 * Configure: network (it downloads inputs, through the guarded fetcher): the job's egress-only namespace
 * when the wrapper enters one (see direct.ts), else the host's; /data writable, its secret spec read-only.
 * `specOnStdin`: started ahead of its turn, the program reads its spec on its stdin (no spec file at all).
 */
export function configureSandbox(s: ProgramStep, specOnStdin = false): SandboxOptions {
  return {
    tmpBytes: s.tmpBytes,
    shareNetwork: true,
    runtimes: [s.node],
    binds: [
      ...networkFiles,
      { src: s.job.data, dest: SANDBOX.data, writable: true },
      { src: s.programsDir, dest: SANDBOX.programs, writable: false },
      // our modules, where configure-step.js requires them (../net/guarded-fetch.js, ../net/network-gate.js)
      ...SANDBOXED_MODULES.map((m) => ({ src: path.join(s.programsDir, '..', m), dest: path.posix.join(SANDBOX.programs, '..', m), writable: false })),
      ...(specOnStdin ? [] : [{ src: s.job.configureSpec, dest: CONFIGURE_SPEC, writable: false }]),
      { src: s.reportFile, dest: REPORT, writable: true },
    ],
    env: stepEnv,
    chdir: SANDBOX.data,
    command: [`${SANDBOX.bin}/node`, program('configure-step.js'), specOnStdin ? '--spec-on-stdin' : CONFIGURE_SPEC, REPORT],
  };
}

/** What publishing may copy, and whether it copies no output at all (a refusal, or the algorithm passed the limit). */
export interface PublishBudget {
  maxBytes: number;
  maxFiles: number;
  withhold: boolean;
}

/** The publish program's flags for a budget. */
export const publishFlags = (budget: PublishBudget): string[] => [
  `--max-bytes=${budget.maxBytes}`,
  `--max-files=${budget.maxFiles}`,
  ...(budget.withhold ? ['--withhold'] : []),
];

/**
 * Publish: no network, outputs read-only, only the job's publish dir writable; it stops at its budget.
 * Budget null: started ahead of its turn, the program reads its flags on its stdin (publishFlags, one line).
 */
export function publishSandbox(s: ProgramStep, budget: PublishBudget | null): SandboxOptions {
  return {
    tmpBytes: s.tmpBytes,
    shareNetwork: false,
    runtimes: [s.node],
    binds: [
      { src: s.job.outputs, dest: `${SANDBOX.data}/outputs`, writable: false },
      { src: s.job.publish, dest: SANDBOX.publish, writable: true },
      { src: s.programsDir, dest: SANDBOX.programs, writable: false },
      { src: s.reportFile, dest: REPORT, writable: true },
    ],
    env: stepEnv,
    chdir: SANDBOX.data,
    command: [
      `${SANDBOX.bin}/node`,
      program('publish-step.js'),
      `${SANDBOX.data}/outputs`,
      SANDBOX.publish,
      REPORT,
      ...(budget ? publishFlags(budget) : ['--flags-on-stdin']),
    ],
  };
}
