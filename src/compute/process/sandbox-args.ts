import path from 'node:path';

/** Where things appear inside every sandbox. */
export const SANDBOX = {
  data: '/data',
  bin: '/opt/c2d/bin',
  programs: '/opt/c2d/programs',
  run: '/run/c2d',
  publish: '/publish',
} as const;

export const SANDBOX_PATH = `${SANDBOX.bin}:/usr/local/bin:/usr/bin:/bin`;

export interface Bind {
  src: string;
  dest: string;
  writable: boolean;
  /** skipped when the host path does not exist (bwrap --ro-bind-try) */
  optional?: boolean;
}

/** A host runtime as the sandbox needs it: the real binary and the names it is called by. */
export interface ResolvedRuntime {
  /** absolute, symlinks resolved */
  command: string;
  names: string[];
}

export interface SandboxOptions {
  tmpBytes: number;
  /**
   * keep the network namespace the step was started in (no `--unshare-net`): the host's for the
   * configure step, the job's own namespace (entered by the wrapper, see WrapOptions.netns) for an
   * algorithm with network access. Otherwise a private netns with only `lo`.
   */
  shareNetwork: boolean;
  binds: Bind[];
  runtimes: ResolvedRuntime[];
  env: Record<string, string>;
  chdir: string;
  command: string[];
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Install prefix to bind for a runtime outside /usr (e.g. /opt/node/bin/node → /opt/node); null when /usr already has it. */
export function runtimePrefix(command: string): string | null {
  if (command.startsWith('/usr/')) return null;
  return path.dirname(path.dirname(command));
}

/** bwrap's arguments (without the program name) for one step. Pure: table-tested. */
export function buildSandboxArgs(o: SandboxOptions): string[] {
  const a = ['--unshare-user', '--uid', '1000', '--gid', '1000', '--disable-userns', '--unshare-ipc', '--unshare-pid', '--unshare-uts', '--unshare-cgroup'];
  if (!o.shareNetwork) a.push('--unshare-net');
  a.push('--die-with-parent', '--new-session');
  a.push('--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin');
  a.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache', '--proc', '/proc', '--dev', '/dev');
  a.push('--size', String(Math.floor(o.tmpBytes)), '--tmpfs', '/tmp');
  const prefixes = new Set(o.runtimes.map((r) => runtimePrefix(r.command)).filter((p): p is string => p !== null));
  for (const p of prefixes) a.push('--ro-bind', p, p);
  if (o.runtimes.length > 0) a.push('--dir', SANDBOX.bin);
  const linked = new Set<string>();
  for (const r of o.runtimes) {
    for (const name of r.names) {
      if (linked.has(name) || name.includes('/')) continue;
      linked.add(name);
      a.push('--symlink', r.command, `${SANDBOX.bin}/${name}`);
    }
  }
  for (const b of o.binds) a.push(b.writable ? '--bind' : b.optional ? '--ro-bind-try' : '--ro-bind', b.src, b.dest);
  a.push('--chdir', o.chdir, '--clearenv');
  for (const [k, v] of Object.entries(o.env)) if (ENV_NAME.test(k)) a.push('--setenv', k, v);
  a.push(...o.command);
  return a;
}

const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface WrapOptions {
  /** cgroup.procs files the step joins before anything else runs */
  cgroupProcs: string[];
  /** RLIMIT_FSIZE in bytes (algorithm step: the output limit) */
  fsizeBytes?: number;
  /** host uid/gid to drop to before bwrap (when the worker is root) */
  uid?: number;
  /** a network namespace (/run/netns/<name>) to enter before dropping privileges (needs root and bin.nsenter) */
  netns?: string;
  /** the compiled seccomp filter (seccomp.ts) bwrap loads right before it runs the step's command */
  seccompFile: string;
  bin: { sh: string; prlimit: string; setpriv: string; bwrap: string; nsenter?: string };
}

/** the descriptor the wrapper shell opens the seccomp filter on, for bwrap's --seccomp (bwrap closes it before the step runs) */
export const SECCOMP_FD = 9;

/**
 * The supervisor's full command: a shell joins the step's cgroups and execs into prlimit → nsenter
 * (only for a job network) → setpriv → bwrap, so every process of the step is limited from its first
 * instruction. nsenter fails (and nothing runs) when the namespace is missing; so does the shell when
 * the seccomp filter cannot be opened.
 */
export function wrapSandboxCommand(w: WrapOptions, bwrapArgs: string[]): string[] {
  const join = w.cgroupProcs.map((f) => `echo $$ > ${shQuote(f)}`).join(' && ');
  const argv = [w.bin.sh, '-c', `${join ? `${join} && ` : ''}exec "$@" ${SECCOMP_FD}< ${shQuote(w.seccompFile)}`, 'c2d-step'];
  if (w.fsizeBytes !== undefined) argv.push(w.bin.prlimit, `--fsize=${Math.floor(w.fsizeBytes)}`);
  if (w.netns !== undefined) {
    if (!w.bin.nsenter) throw new Error('entering a network namespace needs nsenter');
    argv.push(w.bin.nsenter, `--net=${w.netns}`);
  }
  if (w.uid !== undefined) argv.push(w.bin.setpriv, `--reuid=${w.uid}`, `--regid=${w.uid}`, '--clear-groups');
  argv.push(w.bin.bwrap, '--seccomp', String(SECCOMP_FD), ...bwrapArgs);
  return argv;
}
