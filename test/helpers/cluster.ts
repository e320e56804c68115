import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type S3Server, startS3Server } from '../../tools/s3-server';
import { type ClusterPorts, type PostgresInstance, startCluster, startPostgres, type TemporalCluster } from '../../tools/temporal-cluster';
import { freePort } from '../../tools/temporal-server';

/** A scratch directory of a cluster test, removed by `removeScratch`; traversable (not listable) by the postgres user when we are root. */
export function scratchDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `c2d-${prefix}-`));
  fs.chmodSync(dir, 0o711);
  return dir;
}

export function removeScratch(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** versitygw serving `<dir>/s3` on a free loopback port, with the given buckets. */
export async function startTestS3(dir: string, buckets: string[]): Promise<S3Server> {
  return startS3Server({ dir: path.join(dir, 's3'), port: await freePort(), buckets, logFile: path.join(dir, 's3.log') });
}

/** A port nothing listens on, from 20000-32767: Temporal stores membership ports as a SQL smallint. */
async function freeLowPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export async function freeClusterPorts(): Promise<ClusterPorts> {
  const names: (keyof ClusterPorts)[] = [
    'frontend',
    'frontendMembership',
    'frontendHttp',
    'history',
    'historyMembership',
    'matching',
    'matchingMembership',
    'worker',
    'workerMembership',
    'postgres',
  ];
  const ports = {} as ClusterPorts;
  const taken = new Set<number>();
  for (const name of names) {
    const port = await freeLowPort(taken);
    taken.add(port);
    ports[name] = port;
  }
  return ports;
}

/** PostgreSQL + the Temporal server on it, state in `<dir>/cluster`, every port free and loopback. */
export async function startTestCluster(dir: string, namespace = 'default'): Promise<TemporalCluster> {
  return startCluster({ dir: path.join(dir, 'cluster'), ports: await freeClusterPorts(), namespace, retentionSeconds: 24 * 3600, numHistoryShards: 2 });
}

/** The private PostgreSQL alone, state in `<dir>/pg-only`, on a free loopback port. */
export async function startTestPostgres(dir: string): Promise<PostgresInstance> {
  return startPostgres({ dir: path.join(dir, 'pg-only'), port: await freePort() });
}

/** The provider database's URL with its password, for a test's own clients. */
export const databaseUrlOf = (pg: Pick<PostgresInstance, 'databaseConfig'>): string => {
  const c = pg.databaseConfig;
  return `postgres://${c.user}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`;
};

/** The provider's settings for the cluster parts: results in the S3 bucket, nonces in PostgreSQL (password from the pgpass file, as a deployment gives it). */
export const clusterProviderEnv = (cluster: TemporalCluster, s3: S3Server, bucket: string, prefix = ''): Record<string, string> => ({
  C2D_RESULTS_STORE: 's3',
  C2D_S3_ENDPOINT: s3.endpoint,
  C2D_S3_BUCKET: bucket,
  C2D_S3_REGION: s3.region,
  C2D_S3_ACCESS_KEY_ID: s3.credentials.accessKeyId,
  C2D_S3_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  ...(prefix ? { C2D_S3_PREFIX: prefix } : {}),
  C2D_NONCE_STORE: 'postgres',
  C2D_DATABASE_URL: cluster.databaseUrl,
  PGPASSFILE: cluster.pgpassFile,
});
