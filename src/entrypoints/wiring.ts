import path from 'node:path';
import { Wallet } from 'ethers';
import pino from 'pino';
import { AquariusResolver } from '../assets/aquarius';
import { CatalogResolver } from '../assets/catalog';
import { ProviderFileDecryptor } from '../assets/decryptor';
import { RemoteProviderFiles } from '../assets/remote';
import { type AssetResolver, ChainedResolver } from '../assets/resolver';
import { createChainServices } from '../chain/services';
import type { ComputeBackend } from '../compute/backend';
import { BackendRegistry } from '../compute';
import type { Config } from '../config';
import { type Logger, redactedLogPaths } from '../domain/logger';
import { LocalResultStore } from '../storage/local';
import { FileNonceStore, type NonceStore } from '../storage/nonces';
import { PgNonceStore } from '../storage/pg-nonces';
import { S3LiveLogs } from '../storage/live-logs';
import { S3ResultStore } from '../storage/s3';
import type { ResultStore } from '../storage/store';

/** What API and worker both build from the settings: one place, so the two processes agree. */
export function createLogger(config: Pick<Config, 'logLevel'>, name: string): Logger {
  return pino({ name, level: config.logLevel, redact: { paths: [...redactedLogPaths], censor: '[redacted]' } });
}

export function createSharedDeps(config: Config, logger: Logger) {
  const settings = config.chains[config.chainId];
  // On-chain assets, orders and fees only when a chain is configured; catalog assets always.
  const chain = settings
    ? createChainServices(settings, {
        providerPrivateKey: config.providerPrivateKey,
        logger,
        indexFile: path.join(config.dataDir, `chain-index-${settings.chainId}.json`),
      })
    : undefined;
  const resolvers: AssetResolver[] = [new CatalogResolver(config.catalogDir, logger.child({ part: 'catalog' }))];
  if (chain) resolvers.push(chain.resolver);
  // what this provider knows itself, and serves as Aquarius (never what it only learnt from an Aquarius)
  const localResolver = new ChainedResolver(resolvers);
  const resolver = config.aquariusUrl
    ? new ChainedResolver([localResolver, new AquariusResolver({ url: config.aquariusUrl, logger: logger.child({ part: 'aquarius' }) })])
    : localResolver;
  const decryptor = new ProviderFileDecryptor(config.providerPrivateKey);
  const results = createResultStore(config);
  // several hosts: a running algorithm's log travels through the bucket, so any API follows it
  const liveLogs = results instanceof S3ResultStore && config.resultsStore.kind === 's3' ? new S3LiveLogs(results.client, config.resultsStore) : undefined;
  const backends = new Map<string, ComputeBackend>();
  // One process backend for every `process` environment, one kubernetes backend per `kubernetes`
  // environment (sharing the cluster client of C2D_KUBECONFIG); created now, so a missing sandbox tool fails at startup.
  const registry = new BackendRegistry({ config, logger, dockerRegistryAuth: config.docker.registryAuth });
  for (const env of config.environments) backends.set(env.id, registry.forEnvironment(env));
  const providerWallet = new Wallet(config.providerPrivateKey);
  return {
    chain,
    providerWallet,
    // public algorithms other providers hold, fetched through their `download` as our environments' consumerAddress
    remoteFiles: new RemoteProviderFiles(providerWallet, undefined, config.fetch),
    resolver,
    localResolver,
    decryptor,
    results,
    ...(liveLogs ? { liveLogs } : {}),
    backendFor: (environmentId: string): ComputeBackend | undefined => backends.get(environmentId),
  };
}

/** Results and logs: the data dir (one host), or an S3-compatible bucket every API and worker reaches (C2D_RESULTS_STORE). */
export function createResultStore(config: Pick<Config, 'dataDir' | 'resultsStore'>): ResultStore {
  const s = config.resultsStore;
  return s.kind === 's3' ? new S3ResultStore(s) : new LocalResultStore(config.dataDir);
}

/** Consumers' nonces: files in the data dir (one API host), or PostgreSQL shared by every API replica (C2D_NONCE_STORE). */
export function createNonceStore(config: Pick<Config, 'dataDir' | 'nonceStore'>): NonceStore {
  const s = config.nonceStore;
  return s.kind === 'postgres' ? new PgNonceStore(s.databaseUrl) : new FileNonceStore(config.dataDir);
}
