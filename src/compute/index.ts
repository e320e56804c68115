import type { Config } from '../config';
import type { Environment } from '../domain/environment';
import type { Logger } from '../domain/logger';
import type { ComputeBackend } from './backend';
import { DEFAULT_NETWORK, JobNetworks } from './process/network';
import { createDockerClient, type DockerClient, DockerBackend } from './docker';
import { createKubeClient, type KubeClient, KubernetesBackend } from './kubernetes';
import path from 'node:path';
import { defaultProgramsDir, ProcessBackend } from './process';

export interface BackendDeps {
  config: Pick<Config, 'workDir' | 'runtimes' | 'sandbox' | 'kubernetes'>;
  logger: Logger;
  /** where the compiled step programs are; default: <repo>/dist/src/entrypoints */
  programsDir?: string;
  /** the cluster client of kubernetes environments; default: one from config.kubernetes.kubeconfig, created on first use */
  kube?: KubeClient;
  /** credentials per registry host for docker environments' pulls (worker settings only, never the workflow) */
  dockerRegistryAuth?: Record<string, { username: string; password: string }>;
  /** the engine client of docker environments per socket path; default: one per socket, created on first use */
  dockerClient?: (socketPath: string) => DockerClient;
}

export type BackendKind = Environment['backend'];

/**
 * The backend of each environment. One process backend serves every `process` environment (limits
 * come with each step request); each `kubernetes` environment gets its own backend (its namespace,
 * images and pod settings), all sharing one cluster client. Backends are created on first use, so a
 * process that never touches an environment never needs what its backend needs.
 */
export class BackendRegistry {
  private readonly backends = new Map<string, ComputeBackend>();
  private kube: KubeClient | undefined;
  private readonly dockerClients = new Map<string, DockerClient>();
  /** the per-job egress networks of docker environments' algorithms (the same as the process backend's) */
  private jobNetworks: JobNetworks | undefined;

  constructor(private readonly deps: BackendDeps) {
    this.kube = deps.kube;
  }

  forEnvironment(env: Environment): ComputeBackend {
    const key = env.backend === 'process' ? 'process' : `${env.backend}:${env.id}`;
    let backend = this.backends.get(key);
    if (!backend) {
      backend = this.create(env);
      this.backends.set(key, backend);
    }
    return backend;
  }

  private create(env: Environment): ComputeBackend {
    switch (env.backend) {
      case 'process':
        return new ProcessBackend({
          dataDir: this.deps.config.workDir,
          runtimes: this.deps.config.runtimes,
          sandbox: this.deps.config.sandbox,
          programsDir: this.deps.programsDir ?? defaultProgramsDir(),
          logger: this.deps.logger.child({ backend: 'process' }),
        });
      case 'kubernetes':
        this.kube ??= createKubeClient(this.deps.config.kubernetes.kubeconfig);
        return new KubernetesBackend({
          environment: env,
          client: this.kube,
          resultsDir: this.deps.config.kubernetes.resultsDir,
          logger: this.deps.logger.child({ backend: 'kubernetes', environment: env.id }),
        });
      case 'docker': {
        const socket = env.docker.socketPath;
        let client = this.dockerClients.get(socket);
        if (!client) {
          client = (this.deps.dockerClient ?? createDockerClient)(socket);
          this.dockerClients.set(socket, client);
        }
        this.jobNetworks ??= new JobNetworks({
          settings: this.deps.config.sandbox.network ?? DEFAULT_NETWORK,
          logger: this.deps.logger.child({ backend: 'docker', component: 'job-networks' }),
        });
        return new DockerBackend({
          environment: env,
          client,
          networks: this.jobNetworks,
          workDir: path.join(this.deps.config.workDir, 'docker-jobs'),
          ...(this.deps.dockerRegistryAuth ? { registryAuth: this.deps.dockerRegistryAuth } : {}),
          logger: this.deps.logger.child({ backend: 'docker', environment: env.id }),
        });
      }
    }
  }

  /** Every backend created so far (e.g. to check containers against the right one). */
  all(): ComputeBackend[] {
    return [...this.backends.values()];
  }
}
