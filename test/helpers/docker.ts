import { execFileSync } from 'node:child_process';
import path from 'node:path';
import Docker from 'dockerode';

const script = path.resolve(__dirname, '../../tools/ensure-docker.sh');

/** The docker backend's test engine: our own dockerd (no firewall changes) and a loopback registry holding our images by digest. */
export interface TestEngine {
  socketPath: string;
  images: { configure: string; publish: string; pythonNumpy: string };
  docker: Docker;
  /** names of the containers of our jobs (`c2d-…`), running or not */
  jobContainers(): Promise<string[]>;
  /** stops dockerd and the registry when this helper started them */
  stop(): void;
}

/** Starts (or finds) the engine and builds/pushes the images (cached: seconds after the first run). */
export function startTestEngine(): TestEngine {
  const running = (() => {
    try {
      execFileSync('curl', ['-sf', '--unix-socket', '/var/lib/c2d-docker/docker.sock', 'http://d/_ping'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const out = execFileSync('bash', [script, '--images'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  const vars = Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const socketPath = vars.DOCKER_SOCKET!;
  const docker = new Docker({ socketPath });
  return {
    socketPath,
    images: { configure: vars.C2D_CONFIGURE_IMAGE!, publish: vars.C2D_PUBLISH_IMAGE!, pythonNumpy: vars.C2D_PYTHON_NUMPY_IMAGE! },
    docker,
    jobContainers: async () => (await docker.listContainers({ all: true })).flatMap((c) => c.Names.map((n) => n.slice(1))).filter((n) => n.startsWith('c2d-')),
    stop: () => {
      if (!running) execFileSync('bash', [script, '--stop'], { stdio: 'inherit' });
    },
  };
}
