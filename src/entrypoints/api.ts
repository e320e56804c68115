import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { z } from 'zod';
import { createApp } from '../api/app';
import { catalogBindings } from '../assets/catalog';
import { ComputeInitializer } from '../chain/initialize';
import { MetadataReader } from '../chain/metadata-reader';
import { loadConfig } from '../config';
import type { Logger } from '../domain/logger';
import { FileConsumedOrderStore } from '../storage/consumed-orders';
import { TemporalJobsService } from '../temporal/client';
import { CLEAR_PAYLOADS_WARNING, dataConverterFor, payloadCodecFor } from '../temporal/codec';
import { createLogger, createNonceStore, createSharedDeps } from './wiring';

/** The version in package.json (read when the API starts, not at import). */
function packageVersion(): string {
  const packageFile = path.resolve(__dirname, __filename.endsWith('.ts') ? '../..' : '../../..', 'package.json');
  return z.object({ version: z.string() }).parse(JSON.parse(fs.readFileSync(packageFile, 'utf8'))).version;
}

/**
 * Catalog files whose ciphertext names no asset are refused since ciphertext is bound to its asset
 * (docs/security.md): said once at start, naming the files and the command that fixes them.
 */
function warnUnboundCatalog(dir: string, providerPrivateKey: string, logger: Logger): void {
  catalogBindings(dir, providerPrivateKey).then(
    (bindings) => {
      const files = [...new Set(bindings.filter((b) => b.state === 'unbound').map((b) => b.file))];
      if (files.length > 0)
        logger.error({ files }, 'catalog files hold file lists bound to no asset: they are refused until re-encrypted with `c2d catalog rebind`');
    },
    (err: unknown) => logger.warn({ error: (err as Error).message }, 'catalog not checked for unbound file lists'),
  );
}

/** `npm run api`: the Provider REST API. Starts even while Temporal is down (answers 503 until it is up). */
export function main(): void {
  const config = loadConfig(process.env);
  const version = packageVersion();
  const logger = createLogger(config, 'api');
  const shared = createSharedDeps(config, logger);
  const connection = Connection.lazy({ address: config.temporal.address });
  // the same codec as the worker: job views, memos and results come back decrypted
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverterFor(config.codec.keys) });
  if (config.codec.keys.length === 0) logger.warn({}, CLEAR_PAYLOADS_WARNING);
  const codec = payloadCodecFor(config.codec.keys);
  const jobs = new TemporalJobsService({ client, taskQueue: config.temporal.taskQueue, results: shared.results });
  const { chain, ...common } = shared;
  const app = createApp({
    chainId: config.chainId,
    version,
    environments: config.environments,
    jobs,
    nonces: createNonceStore(config),
    logger,
    ...common,
    computeInitializer: new ComputeInitializer({
      resolver: shared.resolver,
      ...(chain ? { verifier: chain.verifier } : {}),
      wallet: shared.providerWallet,
      logger,
    }),
    ...(chain
      ? { defaultFeeToken: chain.feeToken, orderVerifier: chain.verifier, chainPing: async () => void (await chain.provider.send('eth_blockNumber', [])) }
      : {}),
    ...(chain?.escrow ? { escrow: chain.escrow } : {}),
    ...(chain
      ? {
          metadata: new MetadataReader({
            provider: chain.provider,
            factory: chain.contracts.ERC721Factory,
            startBlock: chain.contracts.startBlock,
            logger: logger.child({ part: 'decrypt' }),
          }),
        }
      : {}),
    authorizedDecrypters: config.authorizedDecrypters,
    fetchPolicy: config.fetch,
    rateLimits: config.rateLimits,
    maxJobsPerConsumer: config.maxJobsPerConsumer,
    consumedOrders: new FileConsumedOrderStore(config.dataDir),
    codecEndpoint: {
      namespace: config.temporal.namespace,
      uiOrigins: config.codec.uiOrigins,
      ...(codec && config.codec.token ? { codec, token: config.codec.token } : {}),
    },
  });
  warnUnboundCatalog(config.catalogDir, config.providerPrivateKey, logger);
  const server = app.listen(config.api.port, config.api.host, () => {
    logger.info({ host: config.api.host, port: config.api.port, provider: shared.providerWallet.address }, 'provider API listening');
  });
  const shutdown = (): void => {
    logger.info({}, 'provider API stopping');
    server.close(() => void connection.close().finally(() => process.exit(0)));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  }
}
