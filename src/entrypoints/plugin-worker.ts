import { NativeConnection, Worker } from '@temporalio/worker';
import type { ComputeBackend } from '../compute/backend';
import { loadConfig } from '../config';
import { ValidationError } from '../domain/errors';
import { builtinPlugins, checkPluginSettings, createPluginActivities, loadPluginModules, PluginRegistry } from '../plugins';
import { dataConverterFor } from '../temporal/codec';
import { createLogger, createSharedDeps } from './wiring';
import { installRuntimeLogger } from './worker';

/**
 * A worker for publisher plugins only, on a task queue of their own:
 * `node dist/src/entrypoints/plugin-worker.js <task queue>`. It serves the plugins that the
 * environments file puts on that queue (`taskQueue`), with the same settings as the job worker
 * (environments file, data dir for the workspace, payload keys). A plugin that crashes or hangs
 * takes down this worker, not the jobs' own.
 */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const taskQueue = argv[0];
  if (!taskQueue) throw new ValidationError({ taskQueue: ['usage: plugin-worker <task queue>'] }, 'usage: plugin-worker <task queue>');
  const config = loadConfig(process.env);
  const logger = createLogger(config, 'plugin-worker').child({ taskQueue });
  installRuntimeLogger(logger, config.logLevel);
  const served = config.environments.flatMap((e) => e.plugins.filter((p) => p.taskQueue === taskQueue));
  if (served.length === 0)
    throw new ValidationError(
      { taskQueue: [`no plugin in the environments file has taskQueue ${taskQueue}`] },
      `no plugin in the environments file has taskQueue ${taskQueue}`,
    );
  const plugins = new PluginRegistry([...builtinPlugins, ...(await loadPluginModules(config.environments))]);
  checkPluginSettings(config.environments, plugins, taskQueue);
  const shared = createSharedDeps(config, logger);
  const backendFor = (environmentId: string): ComputeBackend | undefined => shared.backendFor(environmentId);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    activities: createPluginActivities(plugins, { environments: config.environments, backendFor, logger, fetchPolicy: config.fetch }),
    dataConverter: dataConverterFor(config.codec.keys),
  });
  logger.info({ plugins: [...new Set(served.map((p) => p.name))] }, 'plugin worker started');
  try {
    await worker.run();
  } finally {
    await connection.close();
    logger.info({}, 'plugin worker stopped');
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
