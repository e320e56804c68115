import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config';
import { C2DError } from '../../domain/errors';
import type { Logger } from '../../domain/logger';
import { type CgroupLayout, cgroupAccessProblem, detectCgroups } from './cgroups';
import { findExecutable } from './host';
import { jobPaths } from './layout';
import { detectIdMap, hostUid, type IdMap, userStageRoot, userUidSlotsDir } from './idmap';
import { hostAccounts, JobUids, UidRangeError, uidRangeProblem } from './job-uids';
import { DEFAULT_NETWORK, JobNetworks } from './network';
import { DEFAULT_STAGE_ROOT, placeForSandbox, type SandboxReach, SANDBOXED_PROGRAMS, UnreachableError } from './reach';
import { type ResolvedRuntime, runtimePrefix, type WrapOptions } from './sandbox-args';

export interface ProcessBackendOptions {
  dataDir: string;
  runtimes: Config['runtimes'];
  sandbox: Config['sandbox'];
  /** dir holding the compiled supervisor.js, configure-step.js and publish-step.js */
  programsDir: string;
  logger: Logger;
  /** the Node.js that runs the step programs; default: the worker's own */
  node?: string;
  /** where to place what the sandbox uids cannot reach (see reach.ts); default /var/lib/c2d */
  stageRoot?: string;
  /** the host-wide record of which job holds which sandbox uid (job-uids.ts); default <stageRoot>/sandbox-uids */
  uidSlotsDir?: string;
}

/** What every step of this host needs, found once when the backend is created. */
export interface ProcessHost {
  /** the uids jobs run as, one each: host uids (root), or inner uids of the worker's user namespace (idmap) */
  uids: JobUids | undefined;
  /** a worker that is not root: its subordinate ids, through which each job gets a host uid of its own (idmap.ts) */
  idmap?: IdMap;
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

/**
 * The uid the job's steps run as (claimed at its first step, held until its cleanup): a host uid (root),
 * or an inner uid of the worker's user namespace (idmap). Throws when every uid of the range is held.
 * `root`: the job dir the claim names (the uid is the claimant's while it exists), when the claimant is
 * not the job itself (a configure started ahead, direct.ts).
 */
export function jobUid(host: ProcessHost, jobId: string, root?: string): number | undefined {
  try {
    return host.uids?.claim(jobId, root ?? jobPaths(host.reach.workDir, jobId).root);
  } catch (err) {
    if (err instanceof UidRangeError) throw setupError(err.message);
    throw err;
  }
}

/**
 * Who owns the job's sandbox dirs between its steps: its own host uid (root), or the worker itself
 * (idmap: the supervisor hands them to the job's inner uid for each step, then back).
 */
export const fileOwner = (host: ProcessHost, jobId: string): number | undefined => (host.idmap ? undefined : jobUid(host, jobId));

const passwd = (): string => {
  try {
    return fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return ''; // no passwd file: the usual places only
  }
};

/** Home directories of the host's users (/etc/passwd), plus /root and /home. */
function homeDirs(): string[] {
  const homes = new Set(['/root', '/home']);
  for (const line of passwd().split('\n')) {
    const home = line.split(':')[5];
    if (home && home.startsWith('/') && home !== '/' && !home.startsWith('/nonexistent')) homes.add(path.resolve(home));
  }
  return [...homes];
}

const within = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

/**
 * Why a runtime's install prefix may not be bound into sandboxes, or null. The sandbox binds the prefix
 * of a runtime outside /usr read-only (/x/bin/node → /x): a binary in /bin, /home/bin or <data dir>/../bin
 * would show the algorithm the whole root, every home (keys, tokens) or every job's data and the provider key.
 */
export function unsafeRuntimePrefix(prefix: string, o: { dataDir: string; homes: string[] }): string | null {
  const p = path.resolve(prefix);
  if (p === '/') return 'it is / (the whole host)';
  // a prefix inside a home (nvm's ~/.nvm/versions/node/vX) shows that install only, not the home
  for (const home of o.homes) if (within(home, p)) return `it holds the home directory ${home}`;
  const data = path.resolve(o.dataDir);
  if (within(data, p)) return `it holds the data dir ${data}`;
  return null;
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
    setpriv: need('setpriv', 'util-linux'),
  };
  let uids: JobUids | undefined;
  let idmap: IdMap | undefined;
  if (root) {
    const problem = uidRangeProblem(opts.sandbox.uids, hostAccounts(passwd()));
    if (problem) throw setupError(problem);
    uids = new JobUids(opts.sandbox.uids, opts.uidSlotsDir ?? path.join(opts.stageRoot ?? DEFAULT_STAGE_ROOT, 'sandbox-uids'));
  } else {
    const found = detectIdMap();
    if ('problem' in found) throw setupError(`${found.problem}: a worker that is not root needs them to run every job as a uid of its own, never as itself`);
    idmap = found;
    // inner 0 is the worker; the jobs take inner 1…, as many as the settings allow
    uids = new JobUids({ base: 1, count: Math.min(found.count, opts.sandbox.uids.count) }, opts.uidSlotsDir ?? userUidSlotsDir());
  }
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
      // no host file belongs to a uid of the range, so its first one reaches exactly what each of them does
      uid: idmap ? hostUid(idmap, 1) : uids?.range.base,
      stageRoot: opts.stageRoot ?? (root ? DEFAULT_STAGE_ROOT : userStageRoot()),
      logger: log,
    });
    node = reach.runtime(fs.realpathSync(opts.node ?? process.execPath));
  } catch (err) {
    if (err instanceof UnreachableError) throw setupError(err.message);
    throw err;
  }
  checkRuntimePrefixes([node, ...Object.values(opts.runtimes).map((r) => installed(r.command))], reach, opts.dataDir);
  fs.mkdirSync(path.join(reach.workDir, 'jobs'), { recursive: true, mode: 0o711 });
  return {
    uids,
    ...(idmap ? { idmap } : {}),
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

const installed = (command: string): string | null => {
  try {
    return fs.realpathSync(command);
  } catch {
    return null; // a runtime not installed fails the jobs that ask for it, saying so
  }
};

function checkRuntimePrefixes(commands: (string | null)[], reach: SandboxReach, dataDir: string): void {
  const homes = homeDirs();
  for (const command of commands) {
    if (command === null) continue;
    let bound: string;
    try {
      bound = command === commands[0] ? command : reach.runtime(command);
    } catch {
      continue; // out of the sandbox's reach: its jobs fail, saying so
    }
    const prefix = runtimePrefix(bound);
    const why = prefix === null ? null : unsafeRuntimePrefix(prefix, { dataDir, homes });
    if (why) throw setupError(`runtime ${command} would bind ${prefix} into every sandbox, and ${why}: install it under /usr or /opt (C2D_RUNTIMES)`);
  }
}
