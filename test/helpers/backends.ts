import fs from 'node:fs';
import Docker from 'dockerode';
import type { EnvironmentInput } from '../../src/domain/environment';
import { startLocalPodman } from '../../tools/docker-engine';
import { jobPids, nodeRaw } from '../integration/helpers';
import { startTestEngine, type TestEngine } from './docker';
import { describeAsRoot } from './privilege';

/** What a suite sets per environment; each backend maps it to its own options. */
export interface SuiteEnvironment {
  id: string;
  maxJobs: number;
  ramGB: number;
  maxJobDuration: number;
  maxProcesses?: number;
  maxOutputBytes?: number;
  maxOutputFiles?: number;
  plugins?: EnvironmentInput['plugins'];
}

/**
 * A backend the rogue-algorithm suites run on (describe.each over `suiteBackends`): the same jobs, the
 * same assertions. Its algorithms are Node programs: on docker they run in our Debian image (Node.js is
 * in it) by digest, from the loopback registry.
 */
export interface SuiteBackend {
  name: 'process' | 'docker' | 'podman';
  /** before the stack starts (docker: the engine and its images) */
  setup(): Promise<void>;
  teardown(): void;
  environment(e: SuiteEnvironment): EnvironmentInput;
  /** a raw Node algorithm, as nodeRaw builds it for the process backend */
  nodeRaw(code: string): ReturnType<typeof nodeRaw>;
  /** what of the job still runs on the host: host pids (process), or running containers and the host pids in their cgroups (docker) */
  leftovers(jobId: string): Promise<string[]>;
}

/** Host pids whose cgroup path names any of the ids. */
function pidsInCgroupsOf(ids: string[]): string[] {
  const pids: string[] = [];
  if (ids.length === 0) return pids;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cgroup = fs.readFileSync(`/proc/${entry}/cgroup`, 'utf8');
      if (ids.some((id) => cgroup.includes(id))) pids.push(entry);
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

const processBackend: SuiteBackend = {
  name: 'process',
  setup: () => Promise.resolve(),
  teardown: () => undefined,
  environment: ({ maxProcesses, maxOutputBytes, maxOutputFiles, ...e }) => ({
    ...e,
    process: { ...(maxProcesses ? { maxProcesses } : {}), ...(maxOutputBytes ? { maxOutputBytes } : {}), ...(maxOutputFiles ? { maxOutputFiles } : {}) },
  }),
  nodeRaw,
  leftovers: (jobId) => Promise.resolve(jobPids(jobId).map(String)),
};

/** The docker backend on our Docker Engine, or (podman) on Podman's Docker-compatible service (the engine still gives the registry and images). */
function dockerBackend(kind: 'docker' | 'podman'): SuiteBackend {
  let engine: TestEngine | undefined;
  let podman: ReturnType<typeof startLocalPodman> | undefined;
  /** the client of the engine the jobs run on */
  let jobs: Docker | undefined;
  /** every container id seen per job: its cgroup is named by the id, which is gone once the container is removed */
  const seen = new Map<string, Set<string>>();
  let watcher: NodeJS.Timeout | undefined;
  const need = (): TestEngine => {
    if (!engine) throw new Error('the docker suite backend was not set up');
    return engine;
  };
  const engineOfJobs = (): Docker => {
    if (!jobs) throw new Error('the docker suite backend was not set up');
    return jobs;
  };
  const watch = async (): Promise<void> => {
    const list = await engineOfJobs()
      .listContainers({ all: true, filters: { label: ['c2d.job'] } })
      .catch(() => []);
    for (const c of list) {
      const job = c.Labels['c2d.job'] ?? '';
      if (!seen.has(job)) seen.set(job, new Set());
      seen.get(job)?.add(c.Id);
    }
  };
  return {
    name: kind,
    setup: () => {
      engine = startTestEngine();
      if (kind === 'podman') podman = startLocalPodman();
      jobs = podman ? new Docker({ socketPath: podman.socketPath }) : engine.docker;
      watcher = setInterval(() => void watch(), 200);
      return Promise.resolve();
    },
    teardown: () => {
      clearInterval(watcher);
      podman?.stop();
      engine?.stop();
    },
    environment: ({ maxProcesses, maxOutputBytes, maxOutputFiles, ...e }) => {
      const eng = need();
      return {
        ...e,
        backend: 'docker',
        docker: {
          socketPath: podman?.socketPath ?? eng.socketPath,
          images: { configure: eng.images.configure, publish: eng.images.publish },
          allowedImages: ['127.0.0.1:5000/*'],
          ...(maxProcesses ? { maxProcesses } : {}),
          ...(maxOutputBytes ? { maxOutputBytes } : {}),
          ...(maxOutputFiles ? { maxOutputFiles } : {}),
        },
      };
    },
    nodeRaw: (code) => {
      const [image, checksum] = need().images.pythonNumpy.split('@') as [string, string];
      return { meta: { rawcode: code, container: { entrypoint: 'node $ALGO', image, tag: '', checksum } } };
    },
    leftovers: async (jobId) => {
      await watch();
      const ids = [...(seen.get(jobId) ?? [])];
      // a job whose containers were never seen would make the answer vacuous
      if (ids.length === 0) throw new Error(`no container of job ${jobId} was seen: cannot tell what of it still runs`);
      const running = (await engineOfJobs().listContainers({ filters: { label: [`c2d.job=${jobId}`] } })).map((c) => c.Names.join(','));
      return [...running, ...pidsInCgroupsOf(ids)];
    },
  };
}

/**
 * The backends of one host, for describe.each: the process sandbox and real containers on our Docker
 * Engine; with `podman`, also the docker backend on Podman.
 */
export const suiteBackends = (o: { podman?: boolean } = {}): [string, SuiteBackend][] => [
  ['process', processBackend],
  ['docker', dockerBackend('docker')],
  ...(o.podman ? [['docker-on-podman', dockerBackend('podman')] as [string, SuiteBackend]] : []),
];

/**
 * One suite per backend (as `describe.each(suiteBackends(o))` would), each one root-only where it needs
 * root: the docker backends always (a Docker engine of our own), every backend when `o.needsRoot` says why
 * (e.g. network namespaces). See test/helpers/privilege.ts for what that means for an ordinary user and in CI.
 */
export function describeOnBackends(o: { podman?: boolean; needsRoot?: string }, title: (name: string) => string, fn: (backend: SuiteBackend) => void): void {
  for (const [name, backend] of suiteBackends(o)) {
    const need = o.needsRoot ?? (backend.name === 'process' ? undefined : 'a Docker engine of its own, started by tools/ensure-docker.sh');
    (need ? describeAsRoot(need) : describe)(title(name), () => fn(backend));
  }
}
