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
  images: { configure: string; publish: string; pythonNumpy: string };
  /** stops dockerd and the registry, when this call started them */
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

/** Starts (or finds) the engine and builds and pushes the images: about a minute the first time, seconds after (cached). */
export function startLocalDockerEngine(): LocalDockerEngine {
  const wasRunning = answers(socketOf(dockerDir()));
  const out = execFileSync('bash', [script, '--images'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 900_000 });
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
    images: { configure: need('C2D_CONFIGURE_IMAGE'), publish: need('C2D_PUBLISH_IMAGE'), pythonNumpy: need('C2D_PYTHON_NUMPY_IMAGE') },
    stop: () => {
      if (!wasRunning) execFileSync('bash', [script, '--stop'], { stdio: 'inherit' });
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
