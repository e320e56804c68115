import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { DockerEnvironmentInput } from '../src/domain/environment';
import { repoRoot } from './paths';

const script = path.join(repoRoot, 'tools', 'ensure-docker.sh');
const socketOf = (dir: string): string => path.join(dir, 'docker.sock');

/** Our own Docker Engine (tools/ensure-docker.sh): dockerd without firewall changes, a loopback registry, our images by digest. */
export interface LocalDockerEngine {
  socketPath: string;
  /** by digest in the loopback registry: our configure and publish images, and a Debian image with Python and numpy */
  images: { configure: string; publish: string; pythonNumpy: string; provider?: string; temporal?: string };
  /** stops dockerd, the registry (and Podman) when this process is their last user and they were started for their users */
  stop(): void;
}

function answers(socketPath: string): boolean {
  try {
    execFileSync('curl', ['-sf', '--max-time', '2', '--unix-socket', socketPath, 'http://d/_ping'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The engine's state dir, as the script chooses it. */
export const dockerDir = (): string =>
  process.env.C2D_DOCKER_DIR ?? ((process.getuid?.() ?? 1) === 0 ? '/var/lib/c2d-docker' : path.join(process.env.HOME ?? '/tmp', '.cache', 'c2d', 'docker'));

/** Whether our engine is running now (e.g. for `npm run dev` to offer a docker environment). */
export const localDockerSocket = (): string | null => (answers(socketOf(dockerDir())) ? socketOf(dockerDir()) : null);

/**
 * Who uses an engine this code started: one file per process under `<dir>/users`. The last user to
 * stop stops the engine (parallel test files share it), and only when it was not running before the first.
 */
function register(): { release: () => boolean } {
  const users = path.join(dockerDir(), 'users');
  const startedMarker = path.join(dockerDir(), 'started-for-users');
  fs.mkdirSync(users, { recursive: true });
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const f of fs.readdirSync(users)) if (!alive(Number(f))) fs.rmSync(path.join(users, f), { force: true });
  if (fs.readdirSync(users).length === 0 && !answers(socketOf(dockerDir()))) fs.writeFileSync(startedMarker, '');
  else if (fs.readdirSync(users).length === 0) fs.rmSync(startedMarker, { force: true });
  fs.writeFileSync(path.join(users, String(process.pid)), '');
  return {
    release: () => {
      fs.rmSync(path.join(users, String(process.pid)), { force: true });
      const last = fs.readdirSync(users).filter((f) => alive(Number(f))).length === 0;
      if (!last || !fs.existsSync(startedMarker)) return false;
      fs.rmSync(startedMarker, { force: true });
      return true;
    },
  };
}

/**
 * Starts (or finds) the engine and builds and pushes the images: about a minute the first time, seconds
 * after (cached). `provider`: also the provider's and Temporal's images (`images.provider`, `images.temporal`).
 */
export function startLocalDockerEngine(opts: { provider?: boolean } = {}): LocalDockerEngine {
  fs.mkdirSync(dockerDir(), { recursive: true });
  const user = register();
  const out = execFileSync('bash', [script, opts.provider ? '--provider-images' : '--images'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 900_000,
  });
  const vars = new Map(
    out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  const need = (k: string): string => {
    const v = vars.get(k);
    if (!v) throw new Error(`tools/ensure-docker.sh did not print ${k}; it printed:\n${out}`);
    return v;
  };
  return {
    socketPath: need('DOCKER_SOCKET'),
    images: {
      configure: need('C2D_CONFIGURE_IMAGE'),
      publish: need('C2D_PUBLISH_IMAGE'),
      pythonNumpy: need('C2D_PYTHON_NUMPY_IMAGE'),
      ...(opts.provider ? { provider: need('C2D_PROVIDER_IMAGE'), temporal: need('C2D_TEMPORAL_IMAGE') } : {}),
    },
    stop: () => {
      if (user.release()) execFileSync('bash', [script, '--stop'], { stdio: 'inherit' });
    },
  };
}

/**
 * For `npm run dev`: a `docker` environment on our engine when it answers and its images were built
 * (`bash tools/ensure-docker.sh --images`), running our Python + numpy image and any image of the loopback registry.
 */
export function devDockerEnvironment(): DockerEnvironmentInput | null {
  const socketPath = localDockerSocket();
  const file = path.join(dockerDir(), 'images.env');
  if (!socketPath || !fs.existsSync(file)) return null;
  const vars = new Map(
    fs
      .readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  const [configure, publish, python] = ['C2D_CONFIGURE_IMAGE', 'C2D_PUBLISH_IMAGE', 'C2D_PYTHON_NUMPY_IMAGE'].map((k) => vars.get(k));
  if (!configure || !publish || !python) return null;
  return {
    id: 'docker-free',
    desc: 'Free Docker environment: real images, pinned by digest (e.g. 127.0.0.1:5000/c2d-python-numpy with numpy)',
    backend: 'docker',
    cpuNumber: 1,
    ramGB: 1,
    diskGB: 1,
    maxJobs: 2,
    maxJobDuration: 3600,
    algorithmNetwork: false,
    docker: { socketPath, images: { configure, publish }, algorithmImages: { python }, allowedImages: ['127.0.0.1:5000/*'] },
  };
}

/** Podman's Docker-compatible service beside our engine (`tools/ensure-docker.sh --podman`; images come from the same loopback registry). */
export function startLocalPodman(): { socketPath: string; stop(): void } {
  const pidFile = path.join(dockerDir(), 'podman.pid');
  const wasRunning = answers(path.join(dockerDir(), 'podman.sock'));
  const out = execFileSync('bash', [script, '--podman'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000 });
  const socketPath = /^PODMAN_SOCKET=(.+)$/m.exec(out)?.[1];
  if (!socketPath) throw new Error(`tools/ensure-docker.sh --podman did not print PODMAN_SOCKET; it printed:\n${out}`);
  return {
    socketPath,
    stop: () => {
      if (wasRunning || !fs.existsSync(pidFile)) return;
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      fs.rmSync(pidFile, { force: true });
    },
  };
}
