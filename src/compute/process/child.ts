import { spawn } from 'node:child_process';

export interface ChildExit {
  code: number | null;
  signal: string | null;
  /** the child could not be started */
  error?: Error;
}

/**
 * Runs a step's command line (bwrap wrapper and all) with a minimal PATH, its output to `append`, and
 * resolves when it has ended. `detached`: its own session, so a Ctrl-C meant for the caller does not reach it.
 * `stdin`: what the child reads on its stdin once that resolves, then end of file (null: end of file alone).
 */
export function runChild(
  argv: string[],
  append: (chunk: Buffer) => void,
  opts: { shell: string; detached?: boolean; stdin?: Promise<string | null> },
): Promise<ChildExit> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd ?? opts.shell, args, {
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      detached: opts.detached ?? false,
    });
    if (opts.stdin && child.stdin) {
      const stdin = child.stdin;
      stdin.on('error', () => undefined); // it ended first: its exit says how
      void opts.stdin.then((line) => stdin.end(line ?? undefined));
    }
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    let settled = false;
    child.once('error', (error) => {
      if (!settled) resolve({ code: null, signal: null, error });
      settled = true;
    });
    child.once('close', (code, signal) => {
      if (!settled) resolve({ code, signal });
      settled = true;
    });
  });
}
