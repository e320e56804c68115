import fs from 'node:fs';
import path from 'node:path';

/** The file's stats when it is a regular file (never following a link a step may have planted); else null. */
export function regularFile(file: string): fs.Stats | null {
  try {
    const st = fs.lstatSync(file);
    return st.isFile() ? st : null;
  } catch {
    return null;
  }
}

/**
 * What a file costs the disk: the larger of its length and its allocated blocks. Blocks catch space
 * preallocated past the end (fallocate --keep-size: length 0, gigabytes held); the length catches a
 * sparse file, which costs little here but its full length once copied for publishing.
 */
export const fileCost = (st: fs.Stats): number => Math.max(st.size, st.blocks * 512);

export interface DiskUsage {
  /** bytes of every inode under the dirs, each counted once (hard links share one), by fileCost */
  bytes: number;
  /** names under the dirs: files, dirs, links, each hard link again (each one takes a directory entry) */
  files: number;
}

/**
 * The disk a step's writable dirs use. Stops counting once past `stopAbove` (a flood of names should
 * not make each check slower than the last), so past that the figures are lower bounds.
 */
export function diskUsage(dirs: readonly string[], stopAbove?: { bytes: number; files: number }): DiskUsage {
  const usage: DiskUsage = { bytes: 0, files: 0 };
  const seen = new Set<string>();
  const over = (): boolean => stopAbove !== undefined && (usage.bytes > stopAbove.bytes || usage.files > stopAbove.files);
  const stack = [...dirs];
  for (let d = stack.pop(); d !== undefined && !over(); d = stack.pop()) {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = path.join(d, name);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue; // removed while we looked
      }
      usage.files++;
      const inode = `${st.dev}:${st.ino}`;
      if (!seen.has(inode)) {
        seen.add(inode);
        usage.bytes += st.isFile() ? fileCost(st) : st.blocks * 512;
      }
      if (st.isDirectory()) stack.push(p);
      if (over()) break;
    }
  }
  return usage;
}

/** Appends a step's output to its log file, at most maxLogBytes of it (then one truncation line). */
export function openStepLog(logFile: string, maxLogBytes: number): { append: (chunk: Buffer) => void; close: () => void } {
  const fd = fs.openSync(logFile, 'a', 0o640);
  let written = 0;
  let truncated = false;
  return {
    append: (chunk) => {
      if (written >= maxLogBytes) {
        if (!truncated) fs.writeSync(fd, `\n[log truncated at ${maxLogBytes} bytes]\n`);
        truncated = true;
        return;
      }
      const part = chunk.subarray(0, maxLogBytes - written);
      fs.writeSync(fd, part);
      written += part.length;
    },
    close: () => fs.closeSync(fd),
  };
}
