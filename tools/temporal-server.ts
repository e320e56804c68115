import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { searchAttributeFlags } from '../src/workflows/search-attributes';
import { repoRoot } from './paths';

export interface DevServerOptions {
  /** path of the temporal CLI; default: tools/ensure-temporal.sh finds or builds it */
  bin?: string;
  ip?: string;
  port: number;
  uiPort: number;
  /** SQLite file: jobs survive a restart of the server */
  dbFile: string;
  namespace: string;
  /** where the server's own output goes; default: inherited */
  logFile?: string;
  headless?: boolean;
  /** own process group: a terminal's Ctrl-C does not reach it, its launcher stops it last */
  detached?: boolean;
  /** how long closed workflows (finished jobs) are kept; the dev server's own default is 24 h */
  retentionSeconds?: number;
  /** the Web UI decodes payloads through this remote codec endpoint (our API's /codec) */
  codecEndpoint?: string;
}

/** Closed jobs must outlive their results: keep them at least as long as the longest storageExpiry, plus a day. */
export const retentionFor = (storageExpirySeconds: number[]): number => Math.max(0, ...storageExpirySeconds) + 24 * 3600;

export function temporalBinary(): string {
  return execFileSync('bash', [path.join(repoRoot, 'tools/ensure-temporal.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/**
 * What makes a job's overhead the floor of its parts rather than of the dev server's defaults (issue 12):
 * - `history.transferProcessorMaxPollRPS` is 20 per shard by default and the dev server has one shard:
 *   past a burst of 20, every dispatch (an activity costs two: its task, then the next workflow task)
 *   waits for the next 50 ms token. 1000 costs no measurable CPU, idle or busy.
 * - one read and one write partition per task queue: nothing to forward between partitions (with more,
 *   `matching.forwarderMaxRatePerSecond` would have to rise too, or a task may stall for seconds).
 * - the SQLite file in WAL mode with `synchronous=normal`: a commit no longer waits for an fsync. A crash
 *   of the server process loses nothing; a power loss or OS crash may lose the last commits (acceptable
 *   for a dev server; production runs a real Temporal cluster, see docs/operations.md).
 * - eager activity execution: an activity scheduled on the task queue of the worker that completes the
 *   workflow task comes back in the answer to that completion, not through matching (one dispatch less).
 *   Still recorded in history like any activity: a worker that dies loses it to the heartbeat timeout.
 * k8s/overlays/dev/temporal.yaml passes the same flags.
 */
export const LOW_LATENCY_FLAGS: readonly string[] = [
  '--dynamic-config-value',
  'history.transferProcessorMaxPollRPS=1000',
  '--dynamic-config-value',
  'matching.numTaskqueueReadPartitions=1',
  '--dynamic-config-value',
  'matching.numTaskqueueWritePartitions=1',
  '--dynamic-config-value',
  'system.enableActivityEagerExecution=true',
  '--sqlite-pragma',
  'journal_mode=wal',
  '--sqlite-pragma',
  'synchronous=normal',
];

export function devServerArgs(o: DevServerOptions): string[] {
  const args = [
    'server',
    'start-dev',
    '--ip',
    o.ip ?? '127.0.0.1',
    '--port',
    String(o.port),
    '--ui-port',
    String(o.uiPort),
    '--db-filename',
    o.dbFile,
    '--namespace',
    o.namespace,
    '--log-level',
    'warn',
  ];
  if (o.headless) args.push('--headless');
  if (o.codecEndpoint) args.push('--ui-codec-endpoint', o.codecEndpoint);
  for (const [name, type] of Object.entries(searchAttributeFlags)) args.push('--search-attribute', `${name}=${type}`);
  // Faster hand-off of workflow tasks after a worker dies (sticky queue) and visibility right away.
  args.push('--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true');
  args.push(...LOW_LATENCY_FLAGS);
  return args;
}

export function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const sock = net.connect(port, host);
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/** Starts the dev server and resolves once its frontend accepts connections. */
export async function startDevServer(o: DevServerOptions): Promise<ChildProcess> {
  const bin = o.bin ?? temporalBinary();
  fs.mkdirSync(path.dirname(o.dbFile), { recursive: true });
  const out = o.logFile ? fs.openSync(o.logFile, 'a') : 'inherit';
  const child = spawn(bin, devServerArgs(o), { stdio: ['ignore', out, out], detached: o.detached ?? false });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`temporal dev server exited with ${code}`))));
  await Promise.race([waitForPort(o.port, o.ip ?? '127.0.0.1'), exited]);
  if (o.retentionSeconds !== undefined) await setRetention(bin, o);
  return child;
}

function setRetention(bin: string, o: DevServerOptions): Promise<void> {
  const hours = `${Math.ceil((o.retentionSeconds ?? 0) / 3600)}h`;
  const args = ['operator', 'namespace', 'update', '--address', `${o.ip ?? '127.0.0.1'}:${o.port}`, '--namespace', o.namespace, '--retention', hours];
  return new Promise((resolve, reject) =>
    execFile(bin, args, (err, _out, stderr) =>
      err ? reject(new Error(`cannot set the namespace retention to ${hours}: ${stderr.trim() || err.message}`)) : resolve(),
    ),
  );
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
