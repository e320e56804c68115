import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { Client as PgClient } from 'pg';
import YAML from 'yaml';
import { loadConfig } from '../src/config';
import { searchAttributeFlags } from '../src/workflows/search-attributes';
import { repoRoot } from './paths';
import { LOW_LATENCY_FLAGS, retentionFor, waitForPort } from './temporal-server';
import { splitAddress } from './temporal';

/**
 * A Temporal server on PostgreSQL, the way a production deployment runs it (issue 15), on loopback:
 * - a private PostgreSQL cluster (Debian's binaries; initdb/pg_ctl in `<dir>/pg`, run as the `postgres`
 *   user when we are root, since PostgreSQL refuses root), password auth, no Unix socket;
 * - the Temporal server (all four services in one process, built from Go modules by
 *   tools/ensure-temporal-cluster.sh), its schemas set up by temporal-sql-tool, a few history shards,
 *   and the dev server's low-latency dynamic config;
 * - the namespace and the provider's search attributes registered, plus a database `c2d` for the
 *   provider's own tables (nonces).
 * Everything lives in `<dir>`; stopping stops both processes and removes nothing.
 */

/** Membership ports must be below 32768 (Temporal stores them in a SQL smallint). */
export interface ClusterPorts {
  frontend: number;
  frontendMembership: number;
  frontendHttp: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
  postgres: number;
}

/** Temporal's own layout (7233-7239, 6933-6939) shifted with the frontend port; PostgreSQL on 5433. */
export function defaultPorts(frontend = 7233, postgres = 5433): ClusterPorts {
  const d = frontend - 7233;
  return {
    frontend,
    frontendMembership: 6933 + d,
    frontendHttp: 7243 + d,
    history: 7234 + d,
    historyMembership: 6934 + d,
    matching: 7235 + d,
    matchingMembership: 6935 + d,
    worker: 7239 + d,
    workerMembership: 6939 + d,
    postgres,
  };
}

export interface ClusterOptions {
  /** state: PostgreSQL's data, Temporal's config, logs, the generated database password */
  dir: string;
  ports: ClusterPorts;
  namespace: string;
  /** how long closed workflows are kept */
  retentionSeconds: number;
  numHistoryShards?: number;
  /** directory of temporal-server, temporal-sql-tool and schema/ (default: tools/ensure-temporal-cluster.sh) */
  toolsDir?: string;
}

export interface TemporalCluster {
  /** host:port of the frontend */
  address: string;
  /** the provider's own database, without the password (it is in `pgpassFile`, which node-postgres reads via PGPASSFILE) */
  databaseUrl: string;
  /** the same with the password, for this process's own clients */
  databaseConfig: { host: string; port: number; user: string; password: string; database: string };
  pgpassFile: string;
  /** stops the Temporal server only (kill -9 when `hard`) and starts it again; PostgreSQL keeps running */
  restartServer(opts?: { hard?: boolean }): Promise<void>;
  /** stops Temporal, then PostgreSQL. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const PG_USER = 'temporal';
const DATABASES = { temporal: 'temporal', visibility: 'temporal_visibility', provider: 'c2d' } as const;

export function clusterTools(): string {
  return execFileSync('bash', [path.join(repoRoot, 'tools/ensure-temporal-cluster.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin/initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return path.join(base, versions[0], 'bin');
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && fs.existsSync(path.join(dir, 'initdb'))) return dir;
  throw new Error('PostgreSQL is not installed (no initdb): run tools/ensure-temporal-cluster.sh or apt-get install postgresql');
}

/** PostgreSQL refuses to run as root: then its files belong to, and its commands run as, the `postgres` user. */
function pgUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    return { uid, gid };
  } catch {
    throw new Error('running as root: PostgreSQL needs a non-root user to run as, and there is no user `postgres` (installed with the postgresql package)');
  }
}

function run(bin: string, args: string[], opts: { env?: NodeJS.ProcessEnv; as?: { uid: number; gid: number }; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      bin,
      args,
      { env: { ...process.env, ...opts.env }, cwd: opts.cwd, ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}), maxBuffer: 16 << 20 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${path.basename(bin)} ${args[0] ?? ''} failed: ${(stderr || stdout || err.message).trim()}`)) : resolve(stdout),
    ),
  );
}

/** The dev server's `--dynamic-config-value K=V` flags as a dynamic config file, plus what a fresh cluster needs. */
export function dynamicConfigYaml(): string {
  const values: Record<string, unknown> = {};
  for (let i = 0; i < LOW_LATENCY_FLAGS.length; i++) {
    if (LOW_LATENCY_FLAGS[i] !== '--dynamic-config-value') continue;
    const [key, raw] = (LOW_LATENCY_FLAGS[++i] ?? '').split(/=(.*)/s);
    if (!key || raw === undefined) continue;
    values[key] = /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw === 'true' ? true : raw === 'false' ? false : raw;
  }
  // as the dev server: updates on (the API uses them), search attributes visible as soon as added
  values['frontend.enableUpdateWorkflowExecution'] = true;
  values['system.forceSearchAttributesCacheRefreshOnRead'] = true;
  return YAML.stringify(Object.fromEntries(Object.entries(values).map(([k, v]) => [k, [{ value: v }]])));
}

export function serverConfigYaml(o: { ports: ClusterPorts; password: string; numHistoryShards: number; dynamicConfigFile: string }): string {
  const sql = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${HOST}:${o.ports.postgres}`,
      connectProtocol: 'tcp',
      user: PG_USER,
      password: o.password,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const service = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: HOST, ...extra },
  });
  return YAML.stringify({
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'default',
      visibilityStore: 'visibility',
      numHistoryShards: o.numHistoryShards,
      datastores: { default: sql(DATABASES.temporal, 20), visibility: sql(DATABASES.visibility, 4) },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: HOST } },
    services: {
      frontend: service(o.ports.frontend, o.ports.frontendMembership, { httpPort: o.ports.frontendHttp }),
      history: service(o.ports.history, o.ports.historyMembership),
      matching: service(o.ports.matching, o.ports.matchingMembership),
      worker: service(o.ports.worker, o.ports.workerMembership),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `${HOST}:${o.ports.frontend}` } },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } },
    namespaceDefaults: { archival: { history: { state: 'disabled' }, visibility: { state: 'disabled' } } },
    dynamicConfigClient: { filepath: o.dynamicConfigFile, pollInterval: '10s' },
  });
}

/** Writes (once) the database password, readable by the PostgreSQL user only besides us. */
function ensurePassword(dir: string, owner: { uid: number; gid: number } | undefined): string {
  const file = path.join(dir, 'pg-password');
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, crypto.randomBytes(24).toString('base64url'), { mode: 0o600 });
    if (owner) fs.chownSync(file, owner.uid, owner.gid);
  }
  return fs.readFileSync(file, 'utf8').trim();
}

async function startPostgresServer(o: { dir: string; ports: { postgres: number } }): Promise<void> {
  const bin = postgresBinDir();
  const as = pgUser();
  const data = path.join(o.dir, 'pg');
  if (!fs.existsSync(path.join(data, 'PG_VERSION'))) {
    fs.mkdirSync(data, { recursive: true, mode: 0o700 });
    if (as) fs.chownSync(data, as.uid, as.gid);
    try {
      await run('test', ['-w', data], { as });
    } catch {
      throw new Error(`the postgres user cannot reach ${data}: make ${o.dir} and the directories above it traversable (chmod o+x)`);
    }
    await run(
      path.join(bin, 'initdb'),
      ['-D', data, '-U', PG_USER, `--pwfile=${path.join(o.dir, 'pg-password')}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C'],
      { as, cwd: data },
    );
    // loopback TCP only (no Unix socket to place), enough connections for four services' pools
    fs.appendFileSync(
      path.join(data, 'postgresql.conf'),
      "\n# c2d (tools/temporal-cluster.ts)\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n",
    );
  }
  // a server left running by a launcher that died: stop it, then start with this run's port
  const running = await run(path.join(bin, 'pg_ctl'), ['-D', data, 'status'], { as, cwd: data }).then(
    () => true,
    () => false,
  );
  if (running) await run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], { as, cwd: data });
  await run(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(data, 'postgres.log'), '-w', '-t', '60', '-o', `-p ${o.ports.postgres}`, 'start'], {
    as,
    cwd: data,
  });
}

async function stopPostgres(dir: string): Promise<void> {
  const data = path.join(dir, 'pg');
  await run(path.join(postgresBinDir(), 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], { as: pgUser(), cwd: data }).catch(() => undefined);
}

/** Creates a database unless it exists; true when it was created. */
async function ensureDatabase(o: { ports: { postgres: number } }, password: string, name: string): Promise<boolean> {
  const pg = new PgClient({ host: HOST, port: o.ports.postgres, user: PG_USER, password, database: 'postgres' });
  await pg.connect();
  try {
    const { rowCount } = await pg.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    await pg.query(`CREATE DATABASE ${name}`); // fixed names only (DATABASES)
    return true;
  } finally {
    await pg.end();
  }
}

/** Temporal's schemas, through its own tool: the base version on a new database, then every versioned step (a no-op when current). */
async function setupSchemas(o: ClusterOptions, tools: string, password: string): Promise<void> {
  const env = { SQL_PASSWORD: password }; // not on the command line (ps shows it)
  const common = ['--plugin', 'postgres12', '--ep', HOST, '-p', String(o.ports.postgres), '-u', PG_USER];
  for (const [db, schema] of [
    [DATABASES.temporal, 'temporal'],
    [DATABASES.visibility, 'visibility'],
  ] as const) {
    const created = await ensureDatabase(o, password, db);
    const tool = path.join(tools, 'temporal-sql-tool');
    if (created) await run(tool, [...common, '--db', db, 'setup-schema', '-v', '0.0'], { env });
    await run(tool, [...common, '--db', db, 'update-schema', '-d', path.join(tools, 'schema/postgresql/v12', schema, 'versioned')], { env });
  }
}

function startServerProcess(o: ClusterOptions, tools: string): { child: ChildProcess; exited: Promise<number | null> } {
  const log = fs.openSync(path.join(o.dir, 'temporal.log'), 'a');
  const child = spawn(path.join(tools, 'temporal-server'), ['--root', o.dir, '--config', 'config', '--env', 'c2d', '--allow-no-auth', 'start'], {
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited };
}

/** Namespace (with retention) and search attributes: each added only when missing, retried while the server settles. */
async function registerNamespace(o: ClusterOptions, address: string): Promise<void> {
  const connection = await Connection.connect({ address });
  const types: Record<string, temporal.api.enums.v1.IndexedValueType> = {
    Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    Int: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
    KeywordList: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
  };
  const deadline = Date.now() + 90_000;
  try {
    for (;;) {
      try {
        await connection.workflowService
          .registerNamespace({ namespace: o.namespace, workflowExecutionRetentionPeriod: msToTs(o.retentionSeconds * 1000) })
          .catch((err: { code?: number }) => {
            if (err.code !== 6) throw err; // ALREADY_EXISTS
          });
        const { customAttributes: keys } = await connection.operatorService.listSearchAttributes({ namespace: o.namespace });
        const missing = Object.entries(searchAttributeFlags).filter(([name]) => !keys?.[name]);
        if (missing.length > 0)
          await connection.operatorService.addSearchAttributes({
            namespace: o.namespace,
            searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, types[type] as temporal.api.enums.v1.IndexedValueType])),
          });
        // the frontend's namespace cache has it once a list call succeeds
        await connection.workflowService.listWorkflowExecutions({ namespace: o.namespace, pageSize: 1 });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`cannot register namespace ${o.namespace}: ${(err as Error).message}`);
        await sleep(500);
      }
    }
  } finally {
    await connection.close();
  }
}

export interface PostgresInstance {
  databaseUrl: string;
  databaseConfig: { host: string; port: number; user: string; password: string; database: string };
  pgpassFile: string;
  stop(): Promise<void>;
}

/** The private PostgreSQL alone (state in `<dir>/pg`), with the provider's database `c2d`. */
export async function startPostgres(o: { dir: string; port: number }): Promise<PostgresInstance> {
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const as = pgUser();
  if (as) fs.chmodSync(o.dir, 0o711); // the postgres user must traverse it to reach pg/ (nothing else is readable)
  const password = ensurePassword(o.dir, as);
  const ports = { postgres: o.port };
  await startPostgresServer({ dir: o.dir, ports });
  try {
    await ensureDatabase({ ports }, password, DATABASES.provider);
  } catch (err) {
    await stopPostgres(o.dir);
    throw err;
  }
  const pgpassFile = path.join(o.dir, 'pgpass');
  fs.writeFileSync(pgpassFile, `${HOST}:${o.port}:*:${PG_USER}:${password}\n`, { mode: 0o600 });
  return {
    databaseUrl: `postgres://${PG_USER}@${HOST}:${o.port}/${DATABASES.provider}`,
    databaseConfig: { host: HOST, port: o.port, user: PG_USER, password, database: DATABASES.provider },
    pgpassFile,
    stop: () => stopPostgres(o.dir),
  };
}

export async function startCluster(o: ClusterOptions): Promise<TemporalCluster> {
  const tooHigh = (['frontendMembership', 'historyMembership', 'matchingMembership', 'workerMembership'] as const).filter((k) => o.ports[k] > 32767);
  if (tooHigh.length > 0) throw new Error(`Temporal keeps membership ports in a SQL smallint: ${tooHigh.join(', ')} must be below 32768`);
  const tools = o.toolsDir ?? clusterTools();
  fs.mkdirSync(path.join(o.dir, 'config'), { recursive: true, mode: 0o700 });
  const pg = await startPostgres({ dir: o.dir, port: o.ports.postgres });
  const password = pg.databaseConfig.password;
  let server: { child: ChildProcess; exited: Promise<number | null> } | undefined;
  try {
    await setupSchemas(o, tools, password);
    const dynamicConfigFile = path.join(o.dir, 'config', 'dynamicconfig.yaml');
    fs.writeFileSync(dynamicConfigFile, dynamicConfigYaml());
    fs.writeFileSync(
      path.join(o.dir, 'config', 'c2d.yaml'),
      serverConfigYaml({ ports: o.ports, password, numHistoryShards: o.numHistoryShards ?? 4, dynamicConfigFile }),
      { mode: 0o600 },
    );
    const address = `${HOST}:${o.ports.frontend}`;
    const startServer = async (): Promise<void> => {
      server = startServerProcess(o, tools);
      const failed = server.exited.then((code) => {
        throw new Error(`temporal server exited with ${code} (see ${path.join(o.dir, 'temporal.log')})`);
      });
      await Promise.race([waitForPort(o.ports.frontend, HOST, 120_000), failed]);
      await Promise.race([registerNamespace(o, address), failed]);
      failed.catch(() => undefined);
    };
    const stopServer = async (signal: NodeJS.Signals): Promise<void> => {
      const s = server;
      server = undefined;
      if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return;
      s.child.kill(signal);
      const timer = setTimeout(() => s.child.kill('SIGKILL'), 20_000);
      await s.exited;
      clearTimeout(timer);
    };
    await startServer();
    let stopped = false;
    return {
      address,
      databaseUrl: pg.databaseUrl,
      databaseConfig: pg.databaseConfig,
      pgpassFile: pg.pgpassFile,
      async restartServer(opts = {}) {
        await stopServer(opts.hard ? 'SIGKILL' : 'SIGTERM');
        await startServer();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopServer('SIGTERM');
        await stopPostgres(o.dir);
      },
    };
  } catch (err) {
    server?.child.kill('SIGKILL');
    await stopPostgres(o.dir);
    throw err;
  }
}

export interface TemporalUi {
  url: string;
  stop(): Promise<void>;
}

/**
 * The Temporal Web UI (tools/ensure-temporal-ui.sh builds it) pointed at a Temporal frontend, on
 * 127.0.0.1:`port`; its config and log in `dir`. Resolves once it answers.
 */
export async function startTemporalUi(o: {
  temporalAddress: string;
  port: number;
  dir: string;
  namespace?: string;
  codecEndpoint?: string;
}): Promise<TemporalUi> {
  const bin = execFileSync('bash', [path.join(repoRoot, 'tools/ensure-temporal-ui.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  fs.mkdirSync(path.join(o.dir, 'config'), { recursive: true });
  const config = {
    temporalGrpcAddress: o.temporalAddress,
    host: HOST,
    port: o.port,
    enableUi: true,
    defaultNamespace: o.namespace ?? 'default',
    notifyOnNewVersion: false,
    cors: { cookieInsecure: true, allowOrigins: [], unsafeAllowAllOrigins: false },
    ...(o.codecEndpoint ? { codec: { endpoint: o.codecEndpoint } } : {}),
  };
  fs.writeFileSync(path.join(o.dir, 'config', 'base.yaml'), YAML.stringify(config));
  const log = fs.openSync(path.join(o.dir, 'ui.log'), 'a');
  const child = spawn(bin, ['--root', o.dir, '--config', 'config', '--env', 'cluster', 'start'], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  try {
    await Promise.race([
      waitForPort(o.port, HOST, 30_000),
      new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`the Temporal UI exited with ${code} (see ${o.dir}/ui.log)`)))),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://${HOST}:${o.port}`, stop };
}

/** `npm run temporal:cluster [-- --pg-port N] [-- --ui-port N]`: PostgreSQL + Temporal server in <data dir>/temporal-cluster, and its Web UI, until Ctrl-C. */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  const config = loadConfig(process.env);
  const [host, port] = splitAddress(config.temporal.address);
  if (host !== HOST && host !== 'localhost') throw new Error(`the local cluster listens on ${HOST} only; C2D_TEMPORAL_ADDRESS is ${config.temporal.address}`);
  const i = argv.indexOf('--pg-port');
  const pgPort = i >= 0 ? Number(argv[i + 1]) : 5433;
  if (!Number.isInteger(pgPort) || pgPort <= 0 || pgPort > 65535) throw new Error('--pg-port must be a port number');
  const dir = path.join(config.dataDir, 'temporal-cluster');
  const started = Date.now();
  const cluster = await startCluster({
    dir,
    ports: defaultPorts(port, pgPort),
    namespace: config.temporal.namespace,
    retentionSeconds: retentionFor(config.environments.map((e) => e.storageExpiry)),
  });
  console.log(`Temporal server on PostgreSQL: frontend ${cluster.address}, namespace ${config.temporal.namespace} (ready in ${Date.now() - started} ms)`);
  console.log(`State in ${dir} (PostgreSQL data, logs). Provider database: C2D_DATABASE_URL=${cluster.databaseUrl} PGPASSFILE=${cluster.pgpassFile}`);
  const u = argv.indexOf('--ui-port');
  const uiPort = u >= 0 ? Number(argv[u + 1]) : config.temporal.uiPort;
  const ui = await startTemporalUi({ temporalAddress: cluster.address, port: uiPort, dir: path.join(dir, 'ui'), namespace: config.temporal.namespace }).catch(
    async (err: unknown) => {
      await cluster.stop();
      throw err;
    },
  );
  console.log(`Web UI: ${ui.url}`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    Promise.all([ui.stop(), cluster.stop()]).then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err instanceof Error ? err.message : err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
