import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findExecutable } from './host';

/**
 * A worker that is not root gives each job a host uid of its own through the subordinate ids of its
 * user (/etc/subuid, /etc/subgid, granted by `useradd` on most distributions; `newuidmap`/`newgidmap`
 * from the `uidmap` package apply them). Every step runs under a supervisor that is root of a user
 * namespace mapping inner 0 to the worker itself and inner 1…count-1 to those ids: it hands the job's
 * files to the job's inner uid for the step and back to inner 0 (the worker) when the step ends, counts
 * what the step writes, and kills it — with the same code a root worker runs. The worker owns those
 * namespaces, so it can stop their processes too, across its own restarts.
 */
export interface IdMap {
  /** first host uid/gid of the worker's subordinate range: inner 1 */
  uidStart: number;
  gidStart: number;
  /** ids mapped after inner 0 (inner 1…count) */
  count: number;
  unshare: string;
}

/** The first range of `user` (name or uid) in an /etc/subuid-style file, or null. */
export function subordinateRange(text: string, user: { name: string; uid: number }): { start: number; count: number } | null {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (who !== user.name && who !== String(user.uid)) continue;
    if (!/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '')) continue;
    return { start: Number(start), count: Number(count) };
  }
  return null;
}

const readText = (file: string): string => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/**
 * The worker's id map, or why there is none (then its steps run as the worker itself, in bwrap's user
 * namespace). Never for root: it has uids of its own to give (job-uids.ts).
 */
export function detectIdMap(): IdMap | { problem: string } {
  const { username: name, uid } = os.userInfo();
  const users = subordinateRange(readText('/etc/subuid'), { name, uid });
  const groups = subordinateRange(readText('/etc/subgid'), { name, uid });
  if (!users || !groups)
    return {
      problem: `the user ${name} has no subordinate ids in /etc/subuid and /etc/subgid (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${name})`,
    };
  const count = Math.min(users.count, groups.count);
  if (count < 2) return { problem: `the subordinate ranges of ${name} hold fewer than 2 ids` };
  for (const tool of ['newuidmap', 'newgidmap']) {
    if (!findExecutable(tool)) return { problem: `${tool} is not installed (Debian/Ubuntu: apt-get install uidmap)` };
  }
  const unshare = findExecutable('unshare');
  if (!unshare) return { problem: 'unshare is not installed (util-linux)' };
  return { uidStart: users.start, gidStart: groups.start, count, unshare };
}

/** The command prefix that runs a program as root of the worker's mapped user namespace. */
export function namespacePrefix(m: IdMap): string[] {
  return [m.unshare, '--user', '--map-user=0', '--map-group=0', `--map-users=${m.uidStart},1,${m.count}`, `--map-groups=${m.gidStart},1,${m.count}`, '--'];
}

/** The host uid of an inner uid (≥ 1). */
export const hostUid = (m: IdMap, inner: number): number => m.uidStart + inner - 1;

const userStateDir = (): string => path.join(os.homedir(), '.local', 'state', 'c2d');
/** Where a non-root worker records which job holds which inner uid: one place per user, as the ids are the user's. */
export const userUidSlotsDir = (): string => path.join(userStateDir(), 'sandbox-uids');
/** Where a non-root worker stages what its jobs' uids cannot reach (reach.ts): it cannot write /var/lib/c2d. */
export const userStageRoot = (): string => path.join(userStateDir(), 'stage');

/**
 * Gives everything under `paths` (links themselves, never what they point to) to uid:uid. Run by a
 * supervisor that is root of the job's namespace (or by root).
 */
export function chownTree(paths: string[], uid: number): void {
  const walk = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // not there (yet, or any more)
    }
    if (st.uid !== uid || st.gid !== uid) fs.lchownSync(p, uid, uid);
    if (!st.isDirectory()) return;
    let names: string[] = [];
    try {
      names = fs.readdirSync(p);
    } catch {
      return;
    }
    for (const name of names) walk(path.join(p, name));
  };
  for (const p of paths) walk(p);
}

/**
 * Hands what a job left under `dir` back to the worker (inner 0), from outside any supervisor: before the
 * worker removes a job whose step was cut short (a crash) while its files belonged to the job's uid.
 */
export function handBack(m: IdMap, dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const child = spawn(namespacePrefix(m)[0]!, [...namespacePrefix(m).slice(1), 'chown', '-R', '-h', '0:0', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`handing ${dir} back to the worker failed: ${err.trim() || `exit ${code}`}`))));
  });
}
