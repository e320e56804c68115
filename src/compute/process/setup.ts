import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config';
import { C2DError } from '../../domain/errors';
import type { Logger } from '../../domain/logger';
import { type CgroupLayout, cgroupAccessProblem, detectCgroups } from './cgroups';
import { findExecutable } from './host';
import { DEFAULT_NETWORK, JobNetworks } from './network';
import { DEFAULT_STAGE_ROOT, placeForSandbox, type SandboxReach, SANDBOXED_PROGRAMS, UnreachableError } from './reach';
import type { ResolvedRuntime, WrapOptions } from './sandbox-args';

export interface ProcessBackendOptions {
  dataDir: string;
  runtimes: Config['runtimes'];
  sandbox: Config['sandbox'];
  /** dir holding the compiled supervisor.js, configure-step.js and publish-step.js */
  programsDir: string;
  logger: Logger;
  /** the Node.js that runs the step programs; default: the worker's own */
  node?: string;
  /** where to place what the sandbox uid cannot reach (see reach.ts); default /var/lib/c2d */
  stageRoot?: string;
}

/** What every step of this host needs, found once when the backend is created. */
export interface ProcessHost {
  /** host uid the sandbox runs as; undefined when the worker is not root (then it runs as the worker) */
  uid: number | undefined;
  bin: WrapOptions['bin'];
  cgroups: CgroupLayout;
  networks: JobNetworks;
  /** the Node.js our step programs run with, as the sandbox reaches it */
  node: ResolvedRuntime;
  runtimes: Config['runtimes'];
  /** the compiled supervisor.js (run on the host) */
  supervisor: string;
  reach: SandboxReach;
  log: Logger;
}

const PROGRAMS = ['supervisor.js', ...SANDBOXED_PROGRAMS];

export function setupError(message: string): C2DError {
  return new C2DError('unavailable', 'process_backend_unavailable', message);
}

/** Finds the sandbox tools, cgroups and network setup, and places what the sandbox needs where it can reach it; throws what is missing. */
export function setUpHost(opts: ProcessBackendOptions, log: Logger): ProcessHost {
  const need = (name: string, pkg: string): string => {
    const p = findExecutable(name);
    if (!p) throw setupError(`${name} is not installed; the process backend needs it (Debian/Ubuntu: apt-get install ${pkg})`);
    return p;
  };
  const root = process.getuid?.() === 0;
  const bin: WrapOptions['bin'] = {
    sh: '/bin/sh',
    bwrap: need('bwrap', 'bubblewrap'),
    prlimit: need('prlimit', 'util-linux'),
    setpriv: root ? need('setpriv', 'util-linux') : '',
  };
  const uid = root ? opts.sandbox.uid : undefined;
  let networks: JobNetworks;
  try {
    networks = new JobNetworks({ settings: opts.sandbox.network ?? DEFAULT_NETWORK, logger: log, isRoot: root });
  } catch (err) {
    throw setupError(`C2D_ALGORITHM_NETWORK_POOL / C2D_ALGORITHM_NETWORK_DENY: ${(err as Error).message}`);
  }
  if (!networks.problem) bin.nsenter = networks.nsenter;
  else log.info({ reason: networks.problem }, 'algorithms cannot get network access on this host: jobs whose datasets all allow it will fail');
  let cgroups: CgroupLayout;
  try {
    cgroups = detectCgroups(opts.sandbox.cgroupRoot);
  } catch (err) {
    throw setupError((err as Error).message);
  }
  const cgroupProblem = cgroupAccessProblem(cgroups);
  if (cgroupProblem) {
    log.warn(
      { reason: cgroupProblem },
      'jobs will fail at configuration: the worker cannot create job cgroups; run it as root, or delegate the c2d cgroup to its user (docs/operations.md)',
    );
  }
  for (const p of PROGRAMS) {
    if (!fs.existsSync(path.join(opts.programsDir, p))) throw setupError(`${p} not found in ${opts.programsDir}: build the project first (npm run build)`);
  }
  let reach: SandboxReach;
  let node: string;
  try {
    reach = placeForSandbox({
      dataDir: opts.dataDir,
      programsDir: opts.programsDir,
      node: opts.node ?? process.execPath,
      uid,
      stageRoot: opts.stageRoot ?? DEFAULT_STAGE_ROOT,
      logger: log,
    });
    node = reach.runtime(fs.realpathSync(opts.node ?? process.execPath));
  } catch (err) {
    if (err instanceof UnreachableError) throw setupError(err.message);
    throw err;
  }
  fs.mkdirSync(path.join(reach.workDir, 'jobs'), { recursive: true, mode: 0o711 });
  return {
    uid,
    bin,
    cgroups,
    networks,
    node: { command: node, names: ['node'] },
    runtimes: opts.runtimes,
    supervisor: path.join(opts.programsDir, 'supervisor.js'),
    reach,
    log,
  };
}
