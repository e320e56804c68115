import Docker from 'dockerode';
import { type LocalDockerEngine, startLocalDockerEngine } from '../../tools/docker-engine';

/** The docker backend's test engine (tools/docker-engine.ts) and a client to look at it. */
export interface TestEngine extends LocalDockerEngine {
  docker: Docker;
  /** names of the containers of our jobs (`c2d-…`), running or not */
  jobContainers(): Promise<string[]>;
}

/** Starts (or finds) the engine; `stop()` stops it again when this call started it, so the host is left as found. */
export function startTestEngine(opts: { provider?: boolean } = {}): TestEngine {
  const engine = startLocalDockerEngine(opts);
  const docker = new Docker({ socketPath: engine.socketPath });
  return {
    ...engine,
    docker,
    jobContainers: async () => (await docker.listContainers({ all: true })).flatMap((c) => c.Names.map((n) => n.slice(1))).filter((n) => n.startsWith('c2d-')),
  };
}
