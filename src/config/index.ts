import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { defaultEnvironments, type Environment, environmentsFileSchema } from '../domain/environment';
import { ValidationError } from '../domain/errors';
import { AllowListError, parseAllowList } from '../net/guarded-fetch';

/**
 * Every setting, as environment variables `C2D_*`, and the Config they make: one zod schema, whose
 * output type is `Config`. Parsed once by an entrypoint (`loadConfig`) and passed down; nothing else
 * reads `process.env`, and nothing here reads a file before `loadConfig` is called. Keep README's table
 * and `.env.example` in step with this.
 */

/** The host binary an algorithm image runs on (process backend). */
const runtimeSchema = z.object({
  /** absolute path of the host binary */
  command: z.string(),
  /** names it is reachable by on the algorithm's PATH */
  names: z.array(z.string()),
});
export type Runtime = z.output<typeof runtimeSchema>;

/** C2D_RUNTIMES: image name → a binary, or {command, names}. */
const runtimesSettingSchema = z.record(
  z.string().regex(/^[a-z0-9._/-]+$/),
  z.union([z.string(), z.object({ command: z.string(), names: z.array(z.string()).optional() })]),
);

function parseRuntimes(spec: string | undefined, ctx: z.RefinementCtx): Record<string, Runtime> | undefined {
  if (spec === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(spec);
  } catch {
    return issue(ctx, 'must be a JSON object {"image": "/path/to/binary"}');
  }
  const r = runtimesSettingSchema.safeParse(json);
  if (!r.success) return issue(ctx, z.prettifyError(r.error));
  const runtimes: Record<string, Runtime> = {};
  for (const [image, v] of Object.entries(r.data)) {
    const command = typeof v === 'string' ? v : v.command;
    const names = typeof v === 'string' || !v.names ? [path.basename(command), image.split('/').pop() ?? image] : v.names;
    if (!path.isAbsolute(command)) return issue(ctx, `runtime of ${image} must be an absolute path`);
    runtimes[image] = { command, names: [...new Set(names)] };
  }
  return runtimes;
}

/** One key of the payload codec's keyring; `id` is written into every payload it encrypts. */
const payloadKeySchema = z.object({
  id: z.string(),
  /** 32 bytes (AES-256) */
  key: z.instanceof(Uint8Array),
});
export type PayloadKey = z.output<typeof payloadKeySchema>;

/** `id:base64key,id:base64key`: ids unique and readable, keys exactly 32 bytes. */
function parsePayloadKeys(spec: string, ctx: z.RefinementCtx): PayloadKey[] {
  const keys: PayloadKey[] = [];
  for (const entry of spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const i = entry.indexOf(':');
    const id = entry.slice(0, i);
    if (i < 1 || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) return issue(ctx, 'each entry must be id:base64key with an id of letters, digits, ".", "_" or "-"');
    const base64 = entry.slice(i + 1);
    const key = Buffer.from(base64, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || key.length !== 32)
      return issue(ctx, `key ${id} must be 32 bytes in base64 (generate one with: openssl rand -base64 32)`);
    if (keys.some((k) => k.id === id)) return issue(ctx, `key id ${id} appears twice`);
    keys.push({ id, key: new Uint8Array(key) });
  }
  return keys;
}

/** Reports a bad setting from a transform (the issue's path names the variable). */
function issue(ctx: z.RefinementCtx, message: string, variable?: string): never {
  ctx.addIssue({ code: 'custom', message, ...(variable ? { path: [variable] } : {}) });
  return z.NEVER;
}

const envSchema = z.object({
  /** Port of the Provider API. */
  C2D_API_PORT: z.coerce.number().int().min(0).max(65535).default(8030),
  /** Address the API listens on. */
  C2D_API_HOST: z.string().default('127.0.0.1'),
  /** Temporal frontend address host:port. */
  C2D_TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  /** Temporal namespace the jobs live in. */
  C2D_TEMPORAL_NAMESPACE: z.string().default('default'),
  /** Task queue of the job workflows and their activities. */
  C2D_TASK_QUEUE: z.string().default('c2d-jobs'),
  /** Port of the Temporal Web UI started by `npm run temporal` / `npm run dev`. */
  C2D_TEMPORAL_UI_PORT: z.coerce.number().int().default(8233),
  /** Where jobs, results, nonces, the dev server's SQLite file and (by default) the catalog live. */
  C2D_DATA_DIR: z.string().default('.c2d-data'),
  /** Where the process and docker backends keep job workspaces (default: C2D_DATA_DIR); each worker host has its own. */
  C2D_WORK_DIR: z.string().optional(),
  /** This worker host's name: the later steps of a job it configured come back to it (default: host name + a hash of the work dir). */
  C2D_WORKER_HOST: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, ".", "_" and "-" (at most 100)')
    .optional(),
  /** Directory of DDO JSON files (one asset per *.json; its `id` is the DID). Default: <data dir>/catalog. */
  C2D_CATALOG_DIR: z.string().optional(),
  /** JSON or YAML list of compute environments. Default: one free `process` environment. */
  C2D_ENVIRONMENTS_FILE: z.string().optional(),
  /** The provider's secp256k1 key (0x hex). Decrypts asset files. Default: generated once into <data dir>/provider.key. */
  C2D_PROVIDER_PRIVATE_KEY: z
    .string()
    .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'must be 32 bytes of hex')
    .optional(),
  /** Chain id this provider serves (keys of computeEnvironments, providerAddresses). */
  C2D_CHAIN_ID: z.coerce.number().int().positive().default(8996),
  /** JSON object mapping algorithm image names to host runtimes, e.g. {"node":"/usr/bin/node"}. */
  C2D_RUNTIMES: z.string().optional().transform(parseRuntimes).pipe(z.record(z.string(), runtimeSchema).optional()),
  /**
   * First host uid of the range the process backend's jobs run as when the worker runs as root: each
   * running job gets a uid (and gid) of its own from it (src/compute/process/job-uids.ts). No account may use one.
   */
  C2D_SANDBOX_UID_BASE: z.coerce.number().int().positive().default(2_000_000_000),
  /** How many uids that range holds: at least the jobs this host keeps at once (running, or not yet cleaned up). */
  C2D_SANDBOX_UID_COUNT: z.coerce.number().int().positive().default(65_536),
  /** cgroup filesystem root (v1 hierarchies or the v2 unified tree are detected below it). */
  C2D_CGROUP_ROOT: z.string().default('/sys/fs/cgroup'),
  /** IPv4 range the per-job /30 links of algorithms with network access come from (host-wide; must not overlap the host's networks). */
  C2D_ALGORITHM_NETWORK_POOL: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be an IPv4 CIDR like 10.213.0.0/16')
    .default('10.213.0.0/16'),
  /**
   * Comma-separated IPv4 CIDRs an algorithm with network access never reaches (the host, other jobs and
   * the provider's Temporal and chain node are always refused). Default: every non-public range (NON_PUBLIC_IPV4 in src/compute/process/network.ts).
   */
  C2D_ALGORITHM_NETWORK_DENY: z
    .string()
    .regex(/^(\s*\d{1,3}(\.\d{1,3}){3}\/\d{1,2}\s*(,|$))*$/, 'must be comma-separated IPv4 CIDRs')
    .default(
      '0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,127.0.0.0/8,169.254.0.0/16,172.16.0.0/12,192.0.0.0/24,192.0.2.0/24,192.88.99.0/24,192.168.0.0/16,198.18.0.0/15,198.51.100.0/24,203.0.113.0/24,224.0.0.0/4,240.0.0.0/4',
    ),
  /** Log level of API and worker (pino). */
  C2D_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How often the worker deletes expired results, in seconds. */
  C2D_RESULT_SWEEP_SECONDS: z.coerce.number().int().positive().default(600),
  /** JSON-RPC URL of the EVM chain C2D_CHAIN_ID. Unset: no on-chain assets, orders or fees (catalog assets only). */
  C2D_CHAIN_RPC_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Ocean's contract addresses in its address.json shape (the entry whose chainId is C2D_CHAIN_ID). Default: <data dir>/contracts.json. */
  C2D_CONTRACTS_FILE: z.string().optional(),
  /** ERC20 the provider fees are paid in. Default: the Ocean token of the contracts file. */
  C2D_FEE_TOKEN: z
    .string()
    .regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x address')
    .optional(),
  /** Blocks an order transaction needs on top of it before it counts (0: mined is enough). */
  C2D_CHAIN_CONFIRMATIONS: z.coerce.number().int().nonnegative().default(0),
  /** Base URL of an Aquarius (Ocean's metadata cache), asked for DDOs that neither the catalog nor the chain knows. Another provider of ours works too. */
  C2D_AQUARIUS_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Comma-separated addresses allowed to call `decrypt` (e.g. your Aquarius). Empty: only the provider's own address. */
  C2D_AUTHORIZED_DECRYPTERS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== ''),
    )
    .pipe(z.array(z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be comma-separated 0x addresses'))),
  /** Payload encryption keys `id:base64key,...` (32-byte AES-256 keys). The first encrypts, all decrypt (rotation). Empty: payloads in clear. */
  C2D_PAYLOAD_KEYS: z.string().default('').transform(parsePayloadKeys).pipe(z.array(payloadKeySchema)),
  /** Bearer token of the codec endpoint (/codec/decode, /codec/encode) the Temporal Web UI calls. Unset: the endpoint refuses everyone. */
  C2D_CODEC_TOKEN: z.string().min(16, 'must be at least 16 characters (e.g. openssl rand -hex 32)').optional(),
  /** Browser origins (comma-separated) allowed to call the codec endpoint. Default: the dev Web UI, http://127.0.0.1:<ui port> and http://localhost:<ui port>. */
  C2D_CODEC_UI_ORIGINS: z.string().optional(),
  /** Port of the worker's Prometheus endpoint (/metrics). 0: off. */
  C2D_WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** Address the worker's metrics endpoint listens on. */
  C2D_WORKER_METRICS_HOST: z.string().default('127.0.0.1'),
  /** kubeconfig file of the cluster `kubernetes` environments run in. Empty: the in-cluster service account. */
  C2D_KUBECONFIG: z.string().default(''),
  /** Where the worker sees the results volume the publishing pods write to (kubernetes backend). Default: <data dir>/k8s-results. */
  C2D_K8S_RESULTS_DIR: z.string().optional(),
  /** Comma-separated exceptions to the SSRF guard: host names, IPs, CIDRs, host:port or ip:port that files, webhooks and remote providers may be fetched from although they are not public. Empty: public addresses only. */
  C2D_ALLOWED_PRIVATE_HOSTS: z.string().default('').transform(parseAllowedPrivateHosts),
  /** Rate limits (docs/security.md): the window the budgets below are counted over, in seconds. */
  C2D_RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().positive().default(60),
  /** Requests per window from one IP to the signed and the expensive unsigned routes; 0: no limit. */
  C2D_RATE_LIMIT_PER_IP: z.coerce.number().int().nonnegative().default(600),
  /** Signed requests per window from one consumer address (requests failing their signature do not count); 0: no limit. */
  C2D_RATE_LIMIT_PER_ADDRESS: z.coerce.number().int().nonnegative().default(300),
  /** Running + queued jobs one consumer may have in one environment; 0: no cap. */
  C2D_MAX_JOBS_PER_CONSUMER: z.coerce.number().int().nonnegative().default(20),
  /** JSON object: registry host → {"username","password"} the docker backend pulls algorithm images with (worker only; never logged). */
  C2D_DOCKER_REGISTRY_AUTH: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!v) return {};
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON object: registry host → {"username","password"}' });
        return z.NEVER;
      }
    })
    .pipe(z.record(z.string(), z.object({ username: z.string(), password: z.string() }))),
  /** Where results and logs are kept: `local` (the data dir, one host) or `s3` (an S3-compatible bucket every API and worker reaches). */
  C2D_RESULTS_STORE: z.enum(['local', 's3']).default('local'),
  /** S3 endpoint URL (MinIO, versitygw, Ceph…). Unset: AWS S3 of C2D_S3_REGION. */
  C2D_S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  /** Bucket of the results (required when C2D_RESULTS_STORE=s3). */
  C2D_S3_BUCKET: z.string().optional(),
  /** Region of the bucket. */
  C2D_S3_REGION: z.string().default('us-east-1'),
  /** Access key id of the bucket. Unset: the AWS SDK's default credential chain (environment, profile, instance role). */
  C2D_S3_ACCESS_KEY_ID: z.string().optional(),
  /** Secret access key (with C2D_S3_ACCESS_KEY_ID). */
  C2D_S3_SECRET_ACCESS_KEY: z.string().optional(),
  /** Key prefix of everything stored, e.g. `c2d/` in a shared bucket. */
  C2D_S3_PREFIX: z.string().default(''),
  /** Where consumers' last nonces are kept: `file` (the data dir, one API host) or `postgres` (C2D_DATABASE_URL, several APIs). */
  C2D_NONCE_STORE: z.enum(['file', 'postgres']).default('file'),
  /** PostgreSQL URL of the provider's own tables (nonces), e.g. postgres://c2d@db:5432/c2d; the password may come from PGPASSWORD or PGPASSFILE. */
  C2D_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
});

/** C2D_ALLOWED_PRIVATE_HOSTS: validated here (a clear error at startup), kept as its entries (the configure step gets them too). */
function parseAllowedPrivateHosts(spec: string, ctx: z.RefinementCtx): string[] {
  const entries = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  try {
    parseAllowList(entries);
  } catch (err) {
    if (err instanceof AllowListError) return issue(ctx, err.message.replace(/^C2D_ALLOWED_PRIVATE_HOSTS: /, ''));
    throw err;
  }
  return entries;
}

/** Where `npm run dev`'s local chain listens when C2D_CHAIN_RPC_URL is unset. */
export const DEV_CHAIN_RPC_URL = 'http://127.0.0.1:8545';

export function defaultRuntimes(nodePath: string): Record<string, Runtime> {
  const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => fs.existsSync(p)) ?? '/usr/bin/python3';
  return {
    node: { command: nodePath, names: ['node', 'nodejs'] },
    python: { command: python, names: ['python', 'python3'] },
  };
}

function loadEnvironments(file: string | undefined, ctx: z.RefinementCtx): Environment[] {
  const variable = 'C2D_ENVIRONMENTS_FILE';
  let raw: unknown = defaultEnvironments;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      return issue(ctx, `cannot read ${file}: ${(err as Error).message}`, variable);
    }
    try {
      raw = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
    } catch (err) {
      return issue(ctx, `${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message}`, variable);
    }
  }
  const parsed = environmentsFileSchema.safeParse(raw);
  if (!parsed.success) return issue(ctx, z.prettifyError(parsed.error), variable);
  return parsed.data;
}

function loadProviderKey(explicit: string | undefined, dataDir: string): string {
  if (explicit) return explicit.startsWith('0x') ? explicit : `0x${explicit}`;
  const file = path.join(dataDir, 'provider.key');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const key = `0x${Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString('hex')}`;
    try {
      fs.writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
      return key;
    } catch {
      return fs.readFileSync(file, 'utf8').trim(); // another process created it first
    }
  }
}

type ResultsStoreSettings =
  | { kind: 'local' }
  | { kind: 's3'; endpoint?: string; bucket: string; region: string; prefix: string; credentials?: { accessKeyId: string; secretAccessKey: string } };

function resultsStoreSettings(e: z.output<typeof envSchema>, ctx: z.RefinementCtx): ResultsStoreSettings {
  if (e.C2D_RESULTS_STORE === 'local') return { kind: 'local' };
  if (!e.C2D_S3_BUCKET) return issue(ctx, 'must name the bucket when C2D_RESULTS_STORE=s3', 'C2D_S3_BUCKET');
  if ((e.C2D_S3_ACCESS_KEY_ID === undefined) !== (e.C2D_S3_SECRET_ACCESS_KEY === undefined))
    return issue(ctx, 'set both C2D_S3_ACCESS_KEY_ID and C2D_S3_SECRET_ACCESS_KEY, or neither (the AWS default credential chain)', 'C2D_S3_SECRET_ACCESS_KEY');
  return {
    kind: 's3',
    ...(e.C2D_S3_ENDPOINT ? { endpoint: e.C2D_S3_ENDPOINT } : {}),
    bucket: e.C2D_S3_BUCKET,
    region: e.C2D_S3_REGION,
    prefix: e.C2D_S3_PREFIX,
    ...(e.C2D_S3_ACCESS_KEY_ID && e.C2D_S3_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: e.C2D_S3_ACCESS_KEY_ID, secretAccessKey: e.C2D_S3_SECRET_ACCESS_KEY } }
      : {}),
  };
}

function nonceStoreSettings(e: z.output<typeof envSchema>, ctx: z.RefinementCtx): { kind: 'file' } | { kind: 'postgres'; databaseUrl: string } {
  if (e.C2D_NONCE_STORE === 'file') return { kind: 'file' };
  if (!e.C2D_DATABASE_URL) return issue(ctx, 'must be set when C2D_NONCE_STORE=postgres', 'C2D_DATABASE_URL');
  return { kind: 'postgres', databaseUrl: e.C2D_DATABASE_URL };
}

/** The task queue of the steps that must run on one worker host (where the job's workspace is). */
export const hostQueue = (taskQueue: string, workerHost: string): string => `${taskQueue}@${workerHost}`;

/**
 * The settings as the program uses them. The transform runs only inside `loadConfig`: reading the
 * environments file and the provider key (generated on first use) happens then, never at import.
 */
const configSchema = envSchema.transform((e, ctx) => {
  const dataDir = path.resolve(e.C2D_DATA_DIR);
  const workDir = path.resolve(e.C2D_WORK_DIR ?? dataDir);
  const workerHost =
    e.C2D_WORKER_HOST ??
    `${os
      .hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 60)}-${crypto.createHash('sha256').update(workDir).digest('hex').slice(0, 8)}`;
  const contractsFile = path.resolve(e.C2D_CONTRACTS_FILE ?? path.join(dataDir, 'contracts.json'));
  // the process backend has its own default when a caller (a test) leaves the network out
  const network: { network?: { pool: string; deny: string[]; services: string[] } } = {
    network: {
      pool: e.C2D_ALGORITHM_NETWORK_POOL,
      deny: e.C2D_ALGORITHM_NETWORK_DENY.split(',')
        .map((c) => c.trim())
        .filter(Boolean),
      // the provider's own services: refused to algorithms wherever they live
      services: [e.C2D_TEMPORAL_ADDRESS, ...(e.C2D_CHAIN_RPC_URL ? [e.C2D_CHAIN_RPC_URL] : [])],
    },
  };
  const chains: Record<number, { chainId: number; rpcUrl: string; contractsFile: string; feeToken?: string; confirmations: number }> = e.C2D_CHAIN_RPC_URL
    ? {
        [e.C2D_CHAIN_ID]: {
          chainId: e.C2D_CHAIN_ID,
          rpcUrl: e.C2D_CHAIN_RPC_URL,
          contractsFile,
          feeToken: e.C2D_FEE_TOKEN,
          confirmations: e.C2D_CHAIN_CONFIRMATIONS,
        },
      }
    : {};
  return {
    api: { port: e.C2D_API_PORT, host: e.C2D_API_HOST },
    temporal: {
      address: e.C2D_TEMPORAL_ADDRESS,
      namespace: e.C2D_TEMPORAL_NAMESPACE,
      taskQueue: e.C2D_TASK_QUEUE,
      uiPort: e.C2D_TEMPORAL_UI_PORT,
      /** the steps of the jobs this worker configured on a process or docker environment (their workspace is here) */
      hostQueue: hostQueue(e.C2D_TASK_QUEUE, workerHost),
    },
    dataDir,
    workDir,
    catalogDir: path.resolve(e.C2D_CATALOG_DIR ?? path.join(dataDir, 'catalog')),
    environments: loadEnvironments(e.C2D_ENVIRONMENTS_FILE, ctx),
    providerPrivateKey: loadProviderKey(e.C2D_PROVIDER_PRIVATE_KEY, dataDir),
    chainId: e.C2D_CHAIN_ID,
    /** image name (without tag) → host runtime */
    runtimes: e.C2D_RUNTIMES ?? defaultRuntimes(process.execPath),
    /** network: per-job egress of algorithms with network access (default: src/compute/process/network.ts) */
    sandbox: { uids: { base: e.C2D_SANDBOX_UID_BASE, count: e.C2D_SANDBOX_UID_COUNT }, cgroupRoot: e.C2D_CGROUP_ROOT, ...network },
    logLevel: e.C2D_LOG_LEVEL,
    resultSweepSeconds: e.C2D_RESULT_SWEEP_SECONDS,
    /** chains served, keyed by chain id; empty when C2D_CHAIN_RPC_URL is unset */
    chains,
    /** where Ocean's contract addresses are read from (and written by the dev chain) */
    contractsFile,
    /** Aquarius-compatible metadata cache asked after catalog and chain; unset: none */
    aquariusUrl: e.C2D_AQUARIUS_URL,
    /** addresses allowed to call `decrypt` besides the provider itself (lower case) */
    authorizedDecrypters: e.C2D_AUTHORIZED_DECRYPTERS.map((a) => a.toLowerCase()),
    /** payload codec: keyring (first encrypts; empty: no encryption), codec endpoint token and allowed UI origins */
    codec: {
      keys: e.C2D_PAYLOAD_KEYS,
      token: e.C2D_CODEC_TOKEN,
      uiOrigins: (e.C2D_CODEC_UI_ORIGINS ?? `http://127.0.0.1:${e.C2D_TEMPORAL_UI_PORT},http://localhost:${e.C2D_TEMPORAL_UI_PORT}`)
        .split(',')
        .map((o) => o.trim().replace(/\/$/, ''))
        .filter((o) => o !== ''),
    },
    /** worker's Prometheus endpoint; port 0: off */
    workerMetrics: { port: e.C2D_WORKER_METRICS_PORT, host: e.C2D_WORKER_METRICS_HOST },
    /** kubernetes backend: kubeconfig file (undefined: in-cluster) and the worker's mount of the results volume */
    kubernetes: {
      kubeconfig: e.C2D_KUBECONFIG ? path.resolve(e.C2D_KUBECONFIG) : undefined,
      resultsDir: path.resolve(e.C2D_K8S_RESULTS_DIR ?? path.join(dataDir, 'k8s-results')),
    },
    /** what asset, consumer and webhook URLs may reach besides public addresses (src/net/guarded-fetch.ts) */
    fetch: { allowedPrivateHosts: e.C2D_ALLOWED_PRIVATE_HOSTS },
    /** request budgets per window, per IP and per consumer address (0: that budget is off) */
    rateLimits: { windowSeconds: e.C2D_RATE_LIMIT_WINDOW_SECONDS, perIp: e.C2D_RATE_LIMIT_PER_IP, perAddress: e.C2D_RATE_LIMIT_PER_ADDRESS },
    /** running + queued jobs per consumer and environment (0: no cap) */
    maxJobsPerConsumer: e.C2D_MAX_JOBS_PER_CONSUMER,
    /** docker backend: registry credentials for algorithm image pulls */
    docker: { registryAuth: e.C2D_DOCKER_REGISTRY_AUTH },
    /** results and logs: the data dir, or an S3-compatible bucket (src/storage/s3.ts) */
    resultsStore: resultsStoreSettings(e, ctx),
    /** consumers' nonces: files in the data dir, or a PostgreSQL table (src/storage/pg-nonces.ts) */
    nonceStore: nonceStoreSettings(e, ctx),
  };
});

export type Config = z.output<typeof configSchema>;
/** One EVM chain the provider serves; everything chain-related is per chain id. */
export type ChainSettings = NonNullable<Config['chains'][number]>;

/** Parses settings from an environment (normally `process.env`). Throws ValidationError naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = configSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const first = parsed.error.issues[0];
  const field = String(first?.path[0] ?? 'settings');
  const message = first?.message ?? 'invalid';
  throw new ValidationError({ [field]: [message] }, `Invalid setting ${field}: ${message}`);
}
