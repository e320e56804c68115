import type { Config } from '../config';
import type { Environment } from '../domain/environment';
import type { Logger } from '../domain/logger';
import type { ComputeBackend } from './backend';
import { defaultProgramsDir, ProcessBackend } from './process';

export interface BackendDeps {
  config: Pick<Config, 'dataDir' | 'runtimes' | 'sandbox'>;
  logger: Logger;
  /** where the compiled step programs are; default: <repo>/dist/src/entrypoints */
  programsDir?: string;
}

export type BackendKind = Environment['backend'];

/** A new backend of the given kind. */
export function createBackend(kind: BackendKind, deps: BackendDeps): ComputeBackend {
  switch (kind) {
    case 'process':
      return new ProcessBackend({
        dataDir: deps.config.dataDir,
        runtimes: deps.config.runtimes,
        sandbox: deps.config.sandbox,
        programsDir: deps.programsDir ?? defaultProgramsDir(),
        logger: deps.logger.child({ backend: 'process' }),
      });
  }
}

/** One backend per kind, created on first use: environments of the same kind share it. */
export class BackendRegistry {
  private readonly backends = new Map<BackendKind, ComputeBackend>();

  constructor(private readonly deps: BackendDeps) {}

  forEnvironment(env: Pick<Environment, 'backend'>): ComputeBackend {
    let backend = this.backends.get(env.backend);
    if (!backend) {
      backend = createBackend(env.backend, this.deps);
      this.backends.set(env.backend, backend);
    }
    return backend;
  }

  /** Every backend created so far (e.g. to check containers against the right one). */
  all(): ComputeBackend[] {
    return [...this.backends.values()];
  }
}
