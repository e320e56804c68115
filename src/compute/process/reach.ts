import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../domain/logger';
import { readableBy, untraversable } from './host';

/** The step programs that run inside the sandbox (the supervisor runs on the host, as the worker's user). */
export const SANDBOXED_PROGRAMS = ['configure-step.js', 'publish-step.js'] as const;
/** Modules of ours they load (Node built-ins only), relative to the programs dir's parent: configure-step.js requires ../net/guarded-fetch.js and ../net/network-gate.js. */
export const SANDBOXED_MODULES = ['net/guarded-fetch.js', 'net/network-gate.js'] as const;

/** Where job workspaces, the step programs and node live when the sandbox uid cannot reach the originals. */
export const DEFAULT_STAGE_ROOT = '/var/lib/c2d';

export interface SandboxReach {
  /** holds `jobs/<jobId>`: the data dir, or the stage dir */
  workDir: string;
  /** the step programs as the sandbox binds them */
  programsDir: string;
  /** maps a runtime binary (symlinks resolved) to one the sandbox uid can run; throws when there is none */
  runtime(command: string): string;
  /** the stage dir when anything was placed there (tests remove it) */
  stageDir?: string;
}

export class UnreachableError extends Error {}

/**
 * As root the steps run as the jobs' sandbox uids (job-uids.ts; `uid` is the range's first: no host
 * file belongs to any of them, so what one reaches they all do), which must traverse every directory on
 * the way to what bwrap binds (it opens them after privileges are dropped), so a clone in a 0700 home, or Node.js
 * installed there (nvm), is out of its reach. Then the worker keeps what the sandbox needs in a
 * root-owned 0711 stage dir, <stageRoot>/<hash of the data dir> (stable, so a restarted worker finds
 * its jobs): the job workspaces, a copy of the step programs (Node built-ins only: they run without
 * our other modules) and a link or copy of node. Nobody's home is opened up. Not root: the steps run
 * as the worker, which reaches everything it could start from.
 */
export function placeForSandbox(o: {
  dataDir: string;
  programsDir: string;
  node: string;
  uid: number | undefined;
  stageRoot: string;
  logger: Logger;
}): SandboxReach {
  const node = fs.realpathSync(o.node);
  const { uid } = o;
  fs.mkdirSync(o.dataDir, { recursive: true, mode: 0o711 });
  if (uid === undefined) return { workDir: o.dataDir, programsDir: o.programsDir, runtime: (command) => command };
  const reaches = (target: string): boolean => untraversable(target, uid, uid) === null;
  const stageDir = path.join(o.stageRoot, crypto.createHash('sha256').update(path.resolve(o.dataDir)).digest('hex').slice(0, 16));
  let staged = false;
  const stage = (): string => {
    if (!staged) {
      fs.mkdirSync(stageDir, { recursive: true, mode: 0o711 });
      fs.chmodSync(o.stageRoot, 0o711);
      fs.chmodSync(stageDir, 0o711);
      const blocked = untraversable(stageDir, uid, uid);
      if (blocked) throw new UnreachableError(`the sandbox uid ${uid} cannot traverse ${blocked} (on the way to the stage dir ${stageDir})`);
      staged = true;
    }
    return stageDir;
  };

  let workDir = o.dataDir;
  const blocked = untraversable(path.join(o.dataDir, 'jobs'), uid, uid);
  const own = fs.statSync(o.dataDir);
  if (blocked === path.resolve(o.dataDir) && own.uid === process.getuid?.()) {
    // Our own data dir (the settings create it 0700 for the provider key): traversing it lists nothing and the key stays 0600.
    fs.chmodSync(o.dataDir, (own.mode & 0o7777) | 0o001);
  } else if (blocked) {
    workDir = stage();
    o.logger.info({ workDir, blocked }, 'job workspaces live in the stage dir: the sandbox uid cannot reach the data dir');
  }

  let programsDir = o.programsDir;
  const modules = SANDBOXED_MODULES.map((m) => ({ src: path.join(o.programsDir, '..', m), rel: m }));
  if (
    !reaches(o.programsDir) ||
    !SANDBOXED_PROGRAMS.every((p) => readableBy(path.join(o.programsDir, p), uid, uid)) ||
    !modules.every((m) => readableBy(m.src, uid, uid))
  ) {
    programsDir = path.join(stage(), 'programs');
    fs.mkdirSync(programsDir, { recursive: true, mode: 0o755 });
    for (const p of SANDBOXED_PROGRAMS) copyAtomic(path.join(o.programsDir, p), path.join(programsDir, p), 0o644);
    for (const m of modules) {
      fs.mkdirSync(path.join(stage(), path.dirname(m.rel)), { recursive: true, mode: 0o755 });
      copyAtomic(m.src, path.join(stage(), m.rel), 0o644);
    }
  }

  let stagedNode: string | undefined;
  const runtime = (command: string): string => {
    if (reaches(path.dirname(command))) return command;
    if (command !== node)
      throw new UnreachableError(`the sandbox uid ${uid} cannot traverse ${untraversable(path.dirname(command), uid, uid)} (on the way to ${command})`);
    // node needs nothing of its install prefix to run a script: the binary alone will do
    stagedNode ??= linkOrCopy(node, path.join(stage(), 'node', 'bin', 'node'));
    return stagedNode;
  };
  return { workDir, programsDir, runtime, ...(staged || programsDir !== o.programsDir ? { stageDir } : {}) };
}

function copyAtomic(src: string, dest: string, mode: number): void {
  const tmp = `${dest}.${process.pid}.tmp`;
  fs.copyFileSync(src, tmp);
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, dest);
}

/** A hard link to `src` at `dest` (same file system), else a copy; kept when it is already that file or an equal copy. */
function linkOrCopy(src: string, dest: string): string {
  const s = fs.statSync(src);
  try {
    const d = fs.statSync(dest);
    if ((d.ino === s.ino && d.dev === s.dev) || (d.size === s.size && d.mtimeMs === s.mtimeMs)) return dest;
  } catch {
    // not there yet
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
  fs.chmodSync(path.dirname(path.dirname(dest)), 0o755);
  const tmp = `${dest}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  let linked = false;
  if ((s.mode & 0o005) === 0o005) {
    // a link shares the file's mode: only when others may already read and run it (never chmod the original)
    try {
      fs.linkSync(src, tmp);
      linked = true;
    } catch {
      // another file system
    }
  }
  if (!linked) {
    fs.copyFileSync(src, tmp);
    fs.chmodSync(tmp, 0o755);
    fs.utimesSync(tmp, s.atime, s.mtime);
  }
  fs.renameSync(tmp, dest);
  return dest;
}
