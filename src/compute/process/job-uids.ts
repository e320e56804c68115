import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { assertJobId } from '../steps';

/**
 * A host uid of its own for every job (when the worker is root): its sandboxes run as it and its work
 * dirs belong to it with mode 0700, so no other job's uid (nor any account) can open them, and per-uid
 * kernel state (process counts, key rings, signals) is never shared between jobs.
 *
 * The uids come from a range no account uses (`C2D_SANDBOX_UID_BASE`, `C2D_SANDBOX_UID_COUNT`). A job
 * claims one by creating `<slotsDir>/uids/<uid>` exclusively (it holds the job id and the job's root
 * dir), trying its preferred uid (from a hash of the job id) first, then the next ones;
 * `<slotsDir>/jobs/<jobId>` remembers which uid it got. Both live in one host-wide directory, so two
 * workers on a host never hand one uid to two jobs, and on disk, so a job keeps its uid across worker
 * restarts until its cleanup releases it. When every uid is held, those of jobs whose root dir is gone
 * (removed without a cleanup: a lost data dir) are taken back.
 */
export interface UidRange {
  base: number;
  count: number;
}

/** far above any account (useradd stops at 60000, systemd's dynamic users at 65519, container id maps at a few million) */
export const DEFAULT_UID_RANGE: UidRange = { base: 2_000_000_000, count: 65_536 };

/** uids are 32-bit; (uid_t)-1 means "unchanged" to the kernel, and some tools treat uids as signed */
const MAX_UID = 2 ** 31 - 1;

export class UidRangeError extends Error {}

/** Why the range cannot be used (as the settings name it), or null. `accounts`: uid → name of the host's users. */
export function uidRangeProblem(range: UidRange, accounts: ReadonlyMap<number, string>): string | null {
  if (!Number.isInteger(range.base) || range.base < 1) return 'C2D_SANDBOX_UID_BASE must be a positive integer (never 0, root)';
  if (!Number.isInteger(range.count) || range.count < 1) return 'C2D_SANDBOX_UID_COUNT must be a positive integer';
  const last = range.base + range.count - 1;
  if (last > MAX_UID) return `the sandbox uids end at ${last}, past ${MAX_UID}: lower C2D_SANDBOX_UID_BASE or C2D_SANDBOX_UID_COUNT`;
  for (const [uid, name] of accounts) {
    if (uid >= range.base && uid <= last)
      return `the account ${name} has uid ${uid}, inside the sandbox uids ${range.base}–${last}: its files would belong to a job; move C2D_SANDBOX_UID_BASE`;
  }
  return null;
}

/** The host's accounts from /etc/passwd: uid → name. */
export function hostAccounts(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid !== undefined && /^\d+$/.test(uid)) out.set(Number(uid), name);
  }
  return out;
}

/** Where in the range a job looks first: stable for a job id, spread over the range. */
export function preferredUidSlot(jobId: string, count: number): number {
  return crypto.createHash('sha256').update(jobId).digest().readUInt32BE(0) % count;
}

export class JobUids {
  private readonly uidsDir: string;
  private readonly jobsDir: string;

  constructor(
    readonly range: UidRange,
    slotsDir: string,
  ) {
    this.uidsDir = path.join(slotsDir, 'uids');
    this.jobsDir = path.join(slotsDir, 'jobs');
  }

  /**
   * The job's uid: the one it holds, else a free one, claimed now. `jobRoot`: the job's dir (while it
   * exists the uid is the job's). Throws when every uid of the range is held by a job that still exists.
   */
  claim(jobId: string, jobRoot: string): number {
    assertJobId(jobId);
    const held = this.held(jobId);
    if (held !== null) return held;
    fs.mkdirSync(this.uidsDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.jobsDir, { recursive: true, mode: 0o700 });
    const uid = this.claimFree(jobId, jobRoot) ?? (this.reclaimGone() > 0 ? this.claimFree(jobId, jobRoot) : null);
    if (uid === null) {
      const { base, count } = this.range;
      throw new UidRangeError(
        `every sandbox uid (${count} from ${base}) is held by a job that was not cleaned up: raise C2D_SANDBOX_UID_COUNT or remove old jobs`,
      );
    }
    writeAtomic(path.join(this.jobsDir, jobId), String(uid));
    return uid;
  }

  private claimFree(jobId: string, jobRoot: string): number | null {
    const { base, count } = this.range;
    const start = preferredUidSlot(jobId, count);
    for (let i = 0; i < count; i++) {
      const uid = base + ((start + i) % count);
      try {
        fs.writeFileSync(path.join(this.uidsDir, String(uid)), `${jobId}\n${jobRoot}`, { flag: 'wx', mode: 0o600 });
        return uid;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    return null;
  }

  /**
   * Frees the uids of jobs whose root dir is gone (and that were claimed over a minute ago: a claim
   * comes just before its job's dirs). One worker at a time (a lock file); a uid is moved aside before
   * it is checked, so a claim made meanwhile is never removed. Returns how many were freed.
   */
  private reclaimGone(): number {
    const lock = path.join(this.uidsDir, '.reclaim');
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
    } catch {
      return 0; // another worker is at it
    }
    let freed = 0;
    try {
      for (const name of fs.readdirSync(this.uidsDir)) {
        if (!/^\d+$/.test(name)) continue;
        const file = path.join(this.uidsDir, name);
        const owner = readOwner(file);
        if (!owner || fs.existsSync(owner.root) || Date.now() - owner.mtimeMs < RECLAIM_GRACE_MS) continue;
        const aside = path.join(this.uidsDir, `.${name}.reclaim`);
        fs.renameSync(file, aside);
        const moved = readOwner(aside);
        if (moved?.jobId === owner.jobId) {
          fs.rmSync(aside, { force: true });
          fs.rmSync(path.join(this.jobsDir, owner.jobId), { force: true });
          freed++;
        } else {
          // claimed anew between the read and the move: put it back (never over a claim made since)
          try {
            fs.linkSync(aside, file);
          } catch {
            // another claim holds it now
          }
          fs.rmSync(aside, { force: true });
        }
      }
    } finally {
      fs.rmSync(lock, { force: true });
    }
    return freed;
  }

  /** The uid the job holds, or null. */
  held(jobId: string): number | null {
    assertJobId(jobId);
    let uid: number;
    try {
      uid = Number(fs.readFileSync(path.join(this.jobsDir, jobId), 'utf8'));
    } catch {
      return null;
    }
    if (!Number.isInteger(uid) || uid < this.range.base || uid >= this.range.base + this.range.count) return null;
    // the uid's own record decides: only the job it names holds it
    return readOwner(path.join(this.uidsDir, String(uid)))?.jobId === jobId ? uid : null;
  }

  /**
   * Hands the uid `from` holds to `to` (a configure started ahead under an id of its own, taken by its
   * job): true when done; false when `to` holds a uid already (another worker of this host runs the job,
   * or an earlier attempt claimed one) or `from` holds none, and nothing changes then.
   */
  transfer(from: string, to: string): boolean {
    assertJobId(from);
    assertJobId(to);
    const uid = this.held(from);
    if (uid === null || this.held(to) !== null) return false;
    const record = path.join(this.uidsDir, String(uid));
    const owner = readOwner(record);
    if (!owner) return false;
    // the job's pointer first, then the uid's own record, which decides (held): a crash between leaves `from` holding it
    writeAtomic(path.join(this.jobsDir, to), String(uid));
    writeAtomic(record, `${to}\n${owner.root}`);
    fs.rmSync(path.join(this.jobsDir, from), { force: true });
    return true;
  }

  /** Gives the job's uids back (its processes are gone, its files removed), a claim cut short by a crash included. Idempotent. */
  release(jobId: string): void {
    assertJobId(jobId);
    let uids: string[] = [];
    try {
      uids = fs.readdirSync(this.uidsDir);
    } catch {
      // nothing claimed on this host yet
    }
    for (const uid of uids) if (readOwner(path.join(this.uidsDir, uid))?.jobId === jobId) fs.rmSync(path.join(this.uidsDir, uid), { force: true });
    fs.rmSync(path.join(this.jobsDir, jobId), { force: true });
  }
}

const RECLAIM_GRACE_MS = 60_000;

/** A uid's record: the job holding it, its root dir, and when it was claimed. */
function readOwner(file: string): { jobId: string; root: string; mtimeMs: number } | null {
  try {
    const [jobId, root] = fs.readFileSync(file, 'utf8').split('\n');
    if (!jobId || !root) return null;
    return { jobId, root, mtimeMs: fs.statSync(file).mtimeMs };
  } catch {
    return null;
  }
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
