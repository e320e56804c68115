import fs from 'node:fs';
import path from 'node:path';

/** Absolute path of a program on PATH (or the usual system dirs), or null. */
export function findExecutable(name: string, searchPath = process.env.PATH ?? ''): string | null {
  const dirs = [...searchPath.split(':'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter(Boolean);
  for (const dir of dirs) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

/** Whether `st` grants `bits` (a mask of the owner's r/w/x: 4, 2, 1) to uid/gid by ordinary Unix rules. */
function grants(st: fs.Stats, uid: number, gid: number, bits: number): boolean {
  const shift = st.uid === uid ? 6 : st.gid === gid ? 3 : 0;
  return ((st.mode >> shift) & bits) === bits;
}

/**
 * The first directory on the way to `target` (inclusive when it is a dir) that uid/gid cannot
 * traverse, or null when every one can. The sandbox switches to that uid before bwrap opens its binds.
 */
export function untraversable(target: string, uid: number, gid: number): string | null {
  const abs = path.resolve(target);
  const parts = abs.split('/').filter(Boolean);
  let dir = '/';
  for (let i = 0; i <= parts.length; i++) {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch {
      return null; // created later with our own modes
    }
    if (st.isDirectory() && !grants(st, uid, gid, 1)) return dir;
    if (i < parts.length) dir = path.join(dir, parts[i] ?? '');
  }
  return null;
}

export function readableBy(file: string, uid: number, gid: number): boolean {
  try {
    return grants(fs.statSync(file), uid, gid, 4);
  } catch {
    return false;
  }
}

export function chownTo(paths: string[], uid: number | undefined): void {
  if (uid === undefined) return;
  for (const p of paths) fs.chownSync(p, uid, uid);
}

const O_CLOEXEC = 0o2000000;

/**
 * Closes the descriptors this process inherited open across exec (left open by whatever started it: a
 * shell, a CI runner, a process supervisor): every program it spawns would inherit them in turn, a
 * sandboxed step and the consumer's algorithm included (bwrap passes them on). What Node and its addons
 * open is close-on-exec; the standard three and Node's IPC channel (NODE_CHANNEL_FD) stay. Returns the
 * descriptors closed.
 */
export function closeInheritedDescriptors(): number[] {
  const keep = new Set([0, 1, 2, Number(process.env.NODE_CHANNEL_FD ?? -1)]);
  const closed: number[] = [];
  let fds: number[];
  try {
    fds = fs.readdirSync('/proc/self/fd').map(Number);
  } catch {
    return closed; // no /proc: nothing to learn it from
  }
  for (const fd of fds) {
    if (keep.has(fd)) continue;
    try {
      const flags = /^flags:\s*([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
      fs.closeSync(fd);
      closed.push(fd);
    } catch {
      // gone meanwhile (the directory listing's own descriptor among them)
    }
  }
  return closed;
}
