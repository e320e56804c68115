import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where step cgroups live: the v1 per-controller hierarchies, or the v2 unified tree. */
export type CgroupLayout = { version: 1; memory: string; cpu: string; pids: string } | { version: 2; root: string };

export interface CgroupLimits {
  memoryBytes: number;
  /** CPUs the step may use (fractions allowed) */
  cpus: number;
  maxProcesses: number;
}

/** Parent cgroup of every step cgroup we create. */
export const CGROUP_PARENT = 'c2d';
const CPU_PERIOD_US = 100_000;

export class CgroupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CgroupError';
  }
}

export function detectCgroups(root: string): CgroupLayout {
  if (fs.existsSync(path.join(root, 'cgroup.controllers'))) return { version: 2, root };
  const v1 = { memory: path.join(root, 'memory'), cpu: path.join(root, 'cpu'), pids: path.join(root, 'pids') };
  const missing = Object.entries(v1).filter(([, dir]) => !fs.existsSync(path.join(dir, 'cgroup.procs')));
  if (missing.length === 0) return { version: 1, ...v1 };
  throw new CgroupError(
    `no usable cgroup hierarchy under ${root}: neither cgroup v2 (cgroup.controllers) nor the v1 controllers ${missing.map(([c]) => c).join(', ')} are mounted (set C2D_CGROUP_ROOT)`,
  );
}

/**
 * Why this worker could not create its step cgroups, or null. Root can; an ordinary user needs the
 * parent cgroup delegated to it (tools/delegate-cgroups.sh, docs/operations.md).
 */
export function cgroupAccessProblem(layout: CgroupLayout): string | null {
  const parents = layout.version === 2 ? [layout.root] : [layout.memory, layout.cpu, layout.pids];
  for (const parent of parents.map((p) => path.join(p, CGROUP_PARENT))) {
    const target = fs.existsSync(parent) ? parent : path.dirname(parent);
    try {
      fs.accessSync(target, fs.constants.W_OK);
    } catch {
      return `${target} is not writable by this worker's user`;
    }
  }
  return null;
}

/** The cgroup dirs of one job step: one per v1 controller, or one v2 dir. */
export function stepCgroupDirs(layout: CgroupLayout, name: string): string[] {
  return layout.version === 2
    ? [path.join(layout.root, CGROUP_PARENT, name)]
    : [path.join(layout.memory, CGROUP_PARENT, name), path.join(layout.cpu, CGROUP_PARENT, name), path.join(layout.pids, CGROUP_PARENT, name)];
}

export const memoryCgroupDir = (layout: CgroupLayout, name: string): string =>
  layout.version === 2 ? path.join(layout.root, CGROUP_PARENT, name) : path.join(layout.memory, CGROUP_PARENT, name);

/**
 * Which files get which values, in write order (v1 memsw must follow the memory limit it may not
 * undercut). Keys are `<controller>/<file>` for v1 and `<file>` for v2. Files that may be absent
 * (swap accounting off) end with `?`.
 */
export function cgroupLimitWrites(version: 1 | 2, limits: CgroupLimits): [string, string][] {
  const mem = String(Math.floor(limits.memoryBytes));
  const quota = Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US));
  const pids = String(limits.maxProcesses);
  if (version === 1) {
    return [
      ['memory/memory.limit_in_bytes', mem],
      ['memory/memory.memsw.limit_in_bytes?', mem],
      ['cpu/cpu.cfs_period_us', String(CPU_PERIOD_US)],
      ['cpu/cpu.cfs_quota_us', String(quota)],
      ['pids/pids.max', pids],
    ];
  }
  return [
    ['memory.max', mem],
    ['memory.swap.max?', '0'],
    ['cpu.max', `${quota} ${CPU_PERIOD_US}`],
    ['pids.max', pids],
  ];
}

function writeControl(file: string, value: string, optional: boolean): void {
  try {
    fs.writeFileSync(file, value);
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CgroupError(`cannot write ${value} to ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function enableV2Controllers(dir: string): void {
  const available = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/);
  const wanted = ['memory', 'cpu', 'pids'];
  const missing = wanted.filter((c) => !available.includes(c));
  if (missing.length > 0) throw new CgroupError(`cgroup v2 controllers ${missing.join(', ')} are not available in ${dir}`);
  const enabled = fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
  for (const c of wanted.filter((w) => !enabled.includes(w))) writeControl(path.join(dir, 'cgroup.subtree_control'), `+${c}`, false);
}

/** Creates (or reuses) the step's cgroups with its limits. Throws CgroupError saying what failed. */
export function createStepCgroups(layout: CgroupLayout, name: string, limits: CgroupLimits): string[] {
  const dirs = stepCgroupDirs(layout, name);
  try {
    if (layout.version === 2) {
      enableV2Controllers(layout.root);
      fs.mkdirSync(path.join(layout.root, CGROUP_PARENT), { recursive: true });
      enableV2Controllers(path.join(layout.root, CGROUP_PARENT));
    }
    for (const dir of dirs) fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    if (err instanceof CgroupError) throw err;
    throw new CgroupError(
      `cannot create cgroup ${name}: ${(err as Error).message} (the worker needs write access to the cgroup hierarchy: run it as root, or delegate the c2d cgroup to its user, see docs/operations.md)`,
      { cause: err },
    );
  }
  for (const [key, value] of cgroupLimitWrites(layout.version, limits)) {
    const optional = key.endsWith('?');
    const rel = optional ? key.slice(0, -1) : key;
    const file = layout.version === 2 ? path.join(dirs[0] ?? '', rel) : cgroupFileV1(layout, name, rel);
    writeControl(file, value, optional);
  }
  return dirs;
}

function cgroupFileV1(layout: Extract<CgroupLayout, { version: 1 }>, name: string, rel: string): string {
  const [controller, file] = rel.split('/') as ['memory' | 'cpu' | 'pids', string];
  return path.join(layout[controller], CGROUP_PARENT, name, file);
}

export function cgroupPids(dirs: readonly string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    let text = '';
    try {
      text = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) if (line.trim()) pids.add(Number(line));
  }
  return [...pids];
}

/** SIGKILLs every process of the cgroups until they are empty (a fork bomb refills them while we kill). */
export async function killCgroups(dirs: readonly string[], timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = cgroupPids(dirs);
    if (pids.length === 0) return true;
    if (Date.now() > deadline) return false;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(10);
  }
}

/** How many times the kernel OOM-killed inside the cgroup (v1 memory.oom_control, v2 memory.events). */
export function oomKills(version: 1 | 2, memoryDir: string): number {
  try {
    const text = fs.readFileSync(path.join(memoryDir, version === 1 ? 'memory.oom_control' : 'memory.events'), 'utf8');
    const m = /^oom_kill (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Removes emptied step cgroups; missing ones count as removed. */
export function removeCgroups(dirs: readonly string[]): void {
  for (const dir of dirs) {
    try {
      fs.rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
