import type { DataConverter } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { type Activities, createActivities } from '../activities';
import { authorizeJob } from '../assets/authorize';
import type { ComputeBackend } from '../compute/backend';
import { type Config, loadConfig } from '../config';
import { ValidationError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import { builtinPlugins, checkPluginSettings, createPluginActivities, loadPluginModules, PluginRegistry } from '../plugins';
import { CLEAR_PAYLOADS_WARNING, dataConverterFor } from '../temporal/codec';
import { createWorkerMetrics, serveWorkerMetrics, type WorkerMetrics } from '../temporal/worker-metrics';
import { createLogger, createSharedDeps } from './wiring';

export interface CreateWorkerOptions {
  config: { temporal: Omit<Config['temporal'], 'hostQueue'> };
  activities: Activities;
  /** default: a new connection to config.temporal.address, open for the life of the process */
  connection?: NativeConnection;
  /** the payload codec (dataConverterFor(config.codec.keys)); default: payloads in clear */
  dataConverter?: DataConverter;
  /** Prometheus metrics fed by interceptors; default: none */
  metrics?: WorkerMetrics;
}

/** src/workflows (ts, under jest) or dist/src/workflows (js), whichever this module is running from. */
export const workflowsPath = (): string => require.resolve('../workflows');

/** A worker for the job workflows, the capacity workflows and their activities, on the configured task queue. */
export async function createWorker(opts: CreateWorkerOptions): Promise<Worker> {
  const connection = opts.connection ?? (await NativeConnection.connect({ address: opts.config.temporal.address }));
  return Worker.create({
    connection,
    namespace: opts.config.temporal.namespace,
    taskQueue: opts.config.temporal.taskQueue,
    workflowsPath: workflowsPath(),
    activities: opts.activities,
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    ...(opts.metrics
      ? { interceptors: { activity: [opts.metrics.activityInterceptor], workflowModules: opts.metrics.workflowModules }, sinks: opts.metrics.sinks }
      : {}),
  });
}

/**
 * This host's own queue (config.temporal.hostQueue): the activities only, for the steps of the jobs whose
 * workspace is here (process, docker). No workflows: those stay on the shared queue.
 */
export async function createHostWorker(opts: CreateWorkerOptions & { hostQueue: string }): Promise<Worker> {
  const connection = opts.connection ?? (await NativeConnection.connect({ address: opts.config.temporal.address }));
  return Worker.create({
    connection,
    namespace: opts.config.temporal.namespace,
    taskQueue: opts.hostQueue,
    activities: opts.activities,
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    ...(opts.metrics ? { interceptors: { activity: [opts.metrics.activityInterceptor] } } : {}),
  });
}

/** Runs the workers until one of them stops (a signal stops them all), then shuts down the others. */
export async function runWorkers(workers: Worker[]): Promise<void> {
  const runs = workers.map((w) => w.run());
  try {
    await Promise.race(runs);
  } finally {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
  }
  await Promise.all(runs);
}

/** The SDK's own logs go through our logger as JSON; its INFO chatter (bundling, state changes) only at debug. */
export function installRuntimeLogger(logger: Logger, level: Config['logLevel']): void {
  const sdkLevel = level === 'debug' || level === 'trace' ? 'DEBUG' : 'WARN';
  Runtime.install({
    logger: new DefaultLogger(sdkLevel, (entry) => {
      const fields = { ...entry.meta, sdk: true };
      if (entry.level === 'ERROR') logger.error(fields, entry.message);
      else if (entry.level === 'WARN') logger.warn(fields, entry.message);
      else if (entry.level === 'INFO') logger.info(fields, entry.message);
      else logger.debug(fields, entry.message);
    }),
  });
}

/**
 * `npm run worker`. SIGINT/SIGTERM: the Temporal runtime's default handlers shut the worker down
 * gracefully (running activities finish or are cancelled; running steps live on in their
 * supervisors and a later worker re-attaches), then run() resolves and we close the connection.
 */
/** A finished job lives in Temporal's history: if the namespace forgets it before its results expire, consumers lose it early. */
async function warnOnShortRetention(connection: NativeConnection, config: Config, logger: Logger): Promise<void> {
  try {
    const ns = await connection.workflowService.describeNamespace({ namespace: config.temporal.namespace });
    const retention = Number(ns.config?.workflowExecutionRetentionTtl?.seconds ?? 0);
    const longest = Math.max(...config.environments.map((e) => e.storageExpiry));
    if (retention > 0 && retention < longest) {
      logger.warn(
        { namespace: config.temporal.namespace, retentionSeconds: retention, storageExpirySeconds: longest },
        'namespace retention is shorter than storageExpiry: finished jobs will disappear before their results expire',
      );
    }
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not read the namespace retention');
  }
}

export async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger(config, 'worker');
  installRuntimeLogger(logger, config.logLevel);
  const shared = createSharedDeps(config, logger);
  const backendFor = (environmentId: string): ComputeBackend => {
    const backend = shared.backendFor(environmentId);
    if (!backend) throw new ValidationError({ environment: ['Compute environment does not exist'] }, 'Compute environment does not exist');
    return backend;
  };
  // Publisher plugins served here (settings without `taskQueue`): built-ins and the modules the settings name.
  const plugins = new PluginRegistry([...builtinPlugins, ...(await loadPluginModules(config.environments))]);
  checkPluginSettings(config.environments, plugins);
  const activities = createActivities({
    plugins,
    environments: config.environments,
    backendFor,
    results: shared.results,
    ...(shared.liveLogs ? { liveLogs: shared.liveLogs } : {}),
    decryptor: shared.decryptor,
    ...(shared.chain ? { orders: { resolver: shared.resolver, verifier: shared.chain.verifier } } : {}),
    ...(shared.chain?.escrow ? { escrow: shared.chain.escrow, chainId: shared.chain.chainId } : {}),
    // which host ran a step: the logs of several workers read apart
    logger: logger.child({ hostQueue: config.temporal.hostQueue }),
    remoteFiles: shared.remoteFiles,
    fetchPolicy: config.fetch,
    hostQueue: config.temporal.hostQueue,
    authorize: (input) =>
      authorizeJob(
        {
          resolver: shared.resolver,
          decryptor: shared.decryptor,
          remoteFiles: shared.remoteFiles,
          fetchPolicy: config.fetch,
          checkContainer: (c) => backendFor(input.environmentId).checkContainer(c),
        },
        input,
      ),
  });
  if (config.codec.keys.length === 0) logger.warn({}, CLEAR_PAYLOADS_WARNING);
  const metrics = config.workerMetrics.port > 0 ? createWorkerMetrics() : undefined;
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const pluginActivities = createPluginActivities(plugins, {
    environments: config.environments,
    backendFor: shared.backendFor,
    logger,
    fetchPolicy: config.fetch,
  });
  const workerOptions: CreateWorkerOptions = {
    config,
    activities: { ...activities, ...pluginActivities },
    connection,
    dataConverter: dataConverterFor(config.codec.keys),
    ...(metrics ? { metrics } : {}),
  };
  const workers = [await createWorker(workerOptions), await createHostWorker({ ...workerOptions, hostQueue: config.temporal.hostQueue })];
  const metricsServer = metrics ? await serveWorkerMetrics(metrics.registry, config.workerMetrics.host, config.workerMetrics.port) : undefined;
  if (metricsServer) logger.info({ host: config.workerMetrics.host, port: metricsServer.port }, 'worker metrics listening');

  const sweep = setInterval(() => {
    shared.results.sweepExpired(Date.now()).then(
      (swept) => {
        if (swept > 0) logger.info({ swept }, 'expired results removed');
      },
      (err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'result sweep failed'),
    );
  }, config.resultSweepSeconds * 1000);
  sweep.unref();

  logger.info({ taskQueue: config.temporal.taskQueue, hostQueue: config.temporal.hostQueue, address: config.temporal.address }, 'worker started');
  void warnOnShortRetention(connection, config, logger);
  try {
    await runWorkers(workers);
  } finally {
    clearInterval(sweep);
    metricsServer?.close();
    await connection.close();
    logger.info({}, 'worker stopped');
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
