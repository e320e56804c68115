import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { C2DError } from '../../domain/errors';
import type { JobWorkspace, WorkspaceFile } from '../backend';
import { type JobPaths, stepPaths } from './layout';

const ALGORITHM_LOG = 'algorithm.log';

/** A plain name inside one directory: no separators, no dot names. */
const plainName = (name: string): boolean => name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');

function regularFiles(dir: string): { name: string; size: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
  const out: { name: string; size: number }[] = [];
  for (const name of names) {
    try {
      const st = fs.lstatSync(path.join(dir, name));
      if (st.isFile()) out.push({ name, size: st.size });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

function subdirs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}

function badFile(file: WorkspaceFile): C2DError {
  return new C2DError('validation', 'bad_workspace_file', `no such ${file.kind} in the job's workspace`);
}

/**
 * The process backend's workspace under <dataDir>/jobs/<jobId> (read by the worker, on the host).
 * The algorithm wrote /data/outputs: every open refuses links (O_NOFOLLOW) and anything but a regular file.
 */
export function processWorkspace(job: JobPaths): JobWorkspace {
  const algorithmLog = stepPaths(job, 'algorithm').log;

  const hostPath = (file: WorkspaceFile): string => {
    if (file.kind === 'log') {
      if (file.name !== ALGORITHM_LOG) throw badFile(file);
      return algorithmLog;
    }
    if (file.kind === 'output') {
      if (!plainName(file.name)) throw badFile(file);
      return path.join(job.outputs, file.name);
    }
    const parts = file.name.split('/');
    if (parts.length !== 2 || !parts.every(plainName)) throw badFile(file);
    return path.join(job.inputs, ...parts);
  };

  return {
    inputs() {
      const files = subdirs(job.inputs).flatMap((dir) =>
        regularFiles(path.join(job.inputs, dir)).map((f) => ({ name: `${dir}/${f.name}`, kind: 'input' as const, size: f.size })),
      );
      return Promise.resolve(files);
    },

    outputs() {
      const files: WorkspaceFile[] = regularFiles(job.outputs).map((f) => ({ name: f.name, kind: 'output', size: f.size }));
      const log = regularFiles(path.dirname(algorithmLog)).find((f) => f.name === path.basename(algorithmLog));
      if (log) files.push({ name: ALGORITHM_LOG, kind: 'log', size: log.size });
      return Promise.resolve(files);
    },

    open(file) {
      const p = hostPath(file);
      let fd: number;
      try {
        fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch {
        throw badFile(file);
      }
      if (!fs.fstatSync(fd).isFile()) {
        fs.closeSync(fd);
        throw badFile(file);
      }
      return fs.createReadStream('', { fd });
    },

    replaceOutput(file, content) {
      if (file.kind === 'input') return Promise.reject(new C2DError('validation', 'read_only_input', 'inputs are read-only'));
      const p = hostPath(file);
      if (content === null) {
        fs.rmSync(p, { force: true });
        return Promise.resolve();
      }
      // written beside the job's data (never inside /data/outputs, where publishing would collect a half-written file), then renamed over
      const tmp = path.join(job.root, `.replace-${crypto.randomBytes(6).toString('hex')}`);
      try {
        fs.writeFileSync(tmp, content, { mode: 0o644, flag: 'wx' });
        fs.renameSync(tmp, p);
      } finally {
        fs.rmSync(tmp, { force: true });
      }
      return Promise.resolve();
    },
  };
}
