import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { defaultEnvironments, type Environment, environmentsFileSchema } from '../domain/environment';
import { ValidationError } from '../domain/errors';

/**
 * Every setting, as environment variables `C2D_*`. Parsed once by an entrypoint and passed down;
 * nothing else reads `process.env`. Keep README's table and `.env.example` in step with this.
 */
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
  /** Directory of DDO JSON files (one asset per *.json; its `id` is the DID). Default: <data dir>/catalog. */
  C2D_CATALOG_DIR: z.string().optional(),
  /** JSON or YAML list of compute environments. Default: one free `process` environment. */
  C2D_ENVIRONMENTS_FILE: z.string().optional(),
  /** The provider's secp256k1 key (0x hex). Decrypts asset files. Default: generated once into <data dir>/provider.key. */
  C2D_PROVIDER_PRIVATE_KEY: z.string().regex(/^(0x)?[0-9a-fA-F]{64}$/, 'must be 32 bytes of hex').optional(),
  /** Chain id this provider serves (keys of computeEnvironments, providerAddresses). */
  C2D_CHAIN_ID: z.coerce.number().int().positive().default(8996),
  /** JSON object mapping algorithm image names to host runtimes, e.g. {"node":"/usr/bin/node"}. */
  C2D_RUNTIMES: z.string().optional(),
  /** Host uid/gid the sandboxed steps run as when the worker runs as root. */
  C2D_SANDBOX_UID: z.coerce.number().int().positive().default(65534),
  /** cgroup filesystem root (v1 hierarchies or the v2 unified tree are detected below it). */
  C2D_CGROUP_ROOT: z.string().default('/sys/fs/cgroup'),
  /** IPv4 range the per-job /30 links of algorithms with network access come from (host-wide; must not overlap the host's networks). */
  C2D_ALGORITHM_NETWORK_POOL: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be an IPv4 CIDR like 10.213.0.0/16').default('10.213.0.0/16'),
  /** Comma-separated IPv4 CIDRs an algorithm with network access never reaches (the host and other jobs are always refused). */
  C2D_ALGORITHM_NETWORK_DENY: z.string().regex(/^(\s*\d{1,3}(\.\d{1,3}){3}\/\d{1,2}\s*(,|$))*$/, 'must be comma-separated IPv4 CIDRs').default('169.254.0.0/16'),
  /** Log level of API and worker (pino). */
  C2D_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How often the worker deletes expired results, in seconds. */
  C2D_RESULT_SWEEP_SECONDS: z.coerce.number().int().positive().default(600),
  /** JSON-RPC URL of the EVM chain C2D_CHAIN_ID. Unset: no on-chain assets, orders or fees (catalog assets only). */
  C2D_CHAIN_RPC_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Ocean's contract addresses in its address.json shape (the entry whose chainId is C2D_CHAIN_ID). Default: <data dir>/contracts.json. */
  C2D_CONTRACTS_FILE: z.string().optional(),
  /** ERC20 the provider fees are paid in. Default: the Ocean token of the contracts file. */
  C2D_FEE_TOKEN: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x address').optional(),
  /** Blocks an order transaction needs on top of it before it counts (0: mined is enough). */
  C2D_CHAIN_CONFIRMATIONS: z.coerce.number().int().nonnegative().default(0),
  /** Base URL of an Aquarius (Ocean's metadata cache), asked for DDOs that neither the catalog nor the chain knows. Another provider of ours works too. */
  C2D_AQUARIUS_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Comma-separated addresses allowed to call `decrypt` (e.g. your Aquarius). Empty: only the provider's own address. */
  C2D_AUTHORIZED_DECRYPTERS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((a) => a.trim()).filter((a) => a !== ''))
    .pipe(z.array(z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be comma-separated 0x addresses'))),
  /** Payload encryption keys `id:base64key,...` (32-byte AES-256 keys). The first encrypts, all decrypt (rotation). Empty: payloads in clear. */
  C2D_PAYLOAD_KEYS: z.string().default(''),
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
});

/** One key of the payload codec's keyring; `id` is written into every payload it encrypts. */
export interface PayloadKey {
  id: string;
  /** 32 bytes (AES-256) */
  key: Uint8Array;
}

export interface Runtime {
  /** absolute path of the host binary */
  command: string;
  /** names it is reachable by on the algorithm's PATH */
  names: string[];
}

/** One EVM chain the provider serves; everything chain-related is per chain id. */
export interface ChainSettings {
  chainId: number;
  rpcUrl: string;
  /** address.json-shaped file holding this chain's entry */
  contractsFile: string;
  /** fee token address; undefined → the Ocean token of the contracts file */
  feeToken?: string;
  confirmations: number;
}

/** Where `npm run dev`'s local chain listens when C2D_CHAIN_RPC_URL is unset. */
export const DEV_CHAIN_RPC_URL = 'http://127.0.0.1:8545';

export interface Config {
  api: { port: number; host: string };
  temporal: { address: string; namespace: string; taskQueue: string; uiPort: number };
  dataDir: string;
  catalogDir: string;
  environments: Environment[];
  providerPrivateKey: string;
  chainId: number;
  /** image name (without tag) → host runtime */
  runtimes: Record<string, Runtime>;
  /** network: per-job egress of algorithms with network access (default: src/compute/process/network.ts) */
  sandbox: { uid: number; cgroupRoot: string; network?: { pool: string; deny: string[] } };
  logLevel: z.infer<typeof envSchema>['C2D_LOG_LEVEL'];
  resultSweepSeconds: number;
  /** chains served, keyed by chain id; empty when C2D_CHAIN_RPC_URL is unset */
  chains: Record<number, ChainSettings>;
  /** where Ocean's contract addresses are read from (and written by the dev chain) */
  contractsFile: string;
  /** Aquarius-compatible metadata cache asked after catalog and chain; unset: none */
  aquariusUrl?: string;
  /** addresses allowed to call `decrypt` besides the provider itself (lower case) */
  authorizedDecrypters: string[];
  /** payload codec: keyring (first encrypts; empty: no encryption), codec endpoint token and allowed UI origins */
  codec: { keys: PayloadKey[]; token?: string; uiOrigins: string[] };
  /** worker's Prometheus endpoint; port 0: off */
  workerMetrics: { port: number; host: string };
  /** kubernetes backend: kubeconfig file (undefined: in-cluster) and the worker's mount of the results volume */
  kubernetes: { kubeconfig: string | undefined; resultsDir: string };
}

const runtimesSchema = z.record(z.string().regex(/^[a-z0-9._/-]+$/), z.union([z.string(), z.object({ command: z.string(), names: z.array(z.string()).optional() })]));

export function defaultRuntimes(nodePath: string): Record<string, Runtime> {
  const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => fs.existsSync(p)) ?? '/usr/bin/python3';
  return {
    node: { command: nodePath, names: ['node', 'nodejs'] },
    python: { command: python, names: ['python', 'python3'] },
  };
}

function fail(field: string, message: string): never {
  throw new ValidationError({ [field]: [message] }, `Invalid setting ${field}: ${message}`);
}

function loadEnvironments(file: string | undefined): Environment[] {
  let raw: unknown = defaultEnvironments;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      fail('C2D_ENVIRONMENTS_FILE', `cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      raw = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
    } catch (err) {
      fail('C2D_ENVIRONMENTS_FILE', `${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
    }
  }
  const parsed = environmentsFileSchema.safeParse(raw);
  if (!parsed.success) fail('C2D_ENVIRONMENTS_FILE', z.prettifyError(parsed.error));
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

/** `id:base64key,id:base64key`: ids unique and readable, keys exactly 32 bytes. */
function parsePayloadKeys(spec: string): PayloadKey[] {
  const keys: PayloadKey[] = [];
  for (const entry of spec.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const i = entry.indexOf(':');
    const id = entry.slice(0, i);
    if (i < 1 || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) fail('C2D_PAYLOAD_KEYS', 'each entry must be id:base64key with an id of letters, digits, ".", "_" or "-"');
    const base64 = entry.slice(i + 1);
    const key = Buffer.from(base64, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || key.length !== 32) fail('C2D_PAYLOAD_KEYS', `key ${id} must be 32 bytes in base64 (generate one with: openssl rand -base64 32)`);
    if (keys.some((k) => k.id === id)) fail('C2D_PAYLOAD_KEYS', `key id ${id} appears twice`);
    keys.push({ id, key: new Uint8Array(key) });
  }
  return keys;
}

/** Parse settings from an environment (normally `process.env`). Throws ValidationError naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined>, opts: { nodePath?: string } = {}): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(String(issue?.path[0] ?? 'settings'), issue?.message ?? 'invalid');
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.C2D_DATA_DIR);
  const contractsFile = path.resolve(e.C2D_CONTRACTS_FILE ?? path.join(dataDir, 'contracts.json'));
  let runtimes = defaultRuntimes(opts.nodePath ?? process.execPath);
  if (e.C2D_RUNTIMES) {
    let json: unknown;
    try {
      json = JSON.parse(e.C2D_RUNTIMES);
    } catch {
      fail('C2D_RUNTIMES', 'must be a JSON object {"image": "/path/to/binary"}');
    }
    const r = runtimesSchema.safeParse(json);
    if (!r.success) fail('C2D_RUNTIMES', z.prettifyError(r.error));
    runtimes = Object.fromEntries(
      Object.entries(r.data).map(([image, v]) => {
        const command = typeof v === 'string' ? v : v.command;
        const names = typeof v === 'string' || !v.names ? [path.basename(command), image.split('/').pop() ?? image] : v.names;
        if (!path.isAbsolute(command)) fail('C2D_RUNTIMES', `runtime of ${image} must be an absolute path`);
        return [image, { command, names: [...new Set(names)] }];
      }),
    );
  }
  return {
    api: { port: e.C2D_API_PORT, host: e.C2D_API_HOST },
    temporal: { address: e.C2D_TEMPORAL_ADDRESS, namespace: e.C2D_TEMPORAL_NAMESPACE, taskQueue: e.C2D_TASK_QUEUE, uiPort: e.C2D_TEMPORAL_UI_PORT },
    dataDir,
    catalogDir: path.resolve(e.C2D_CATALOG_DIR ?? path.join(dataDir, 'catalog')),
    environments: loadEnvironments(e.C2D_ENVIRONMENTS_FILE),
    providerPrivateKey: loadProviderKey(e.C2D_PROVIDER_PRIVATE_KEY, dataDir),
    chainId: e.C2D_CHAIN_ID,
    runtimes,
    sandbox: {
      uid: e.C2D_SANDBOX_UID,
      cgroupRoot: e.C2D_CGROUP_ROOT,
      network: { pool: e.C2D_ALGORITHM_NETWORK_POOL, deny: e.C2D_ALGORITHM_NETWORK_DENY.split(',').map((c) => c.trim()).filter(Boolean) },
    },
    logLevel: e.C2D_LOG_LEVEL,
    resultSweepSeconds: e.C2D_RESULT_SWEEP_SECONDS,
    chains: e.C2D_CHAIN_RPC_URL ? { [e.C2D_CHAIN_ID]: { chainId: e.C2D_CHAIN_ID, rpcUrl: e.C2D_CHAIN_RPC_URL, contractsFile, feeToken: e.C2D_FEE_TOKEN, confirmations: e.C2D_CHAIN_CONFIRMATIONS } } : {},
    contractsFile,
    ...(e.C2D_AQUARIUS_URL ? { aquariusUrl: e.C2D_AQUARIUS_URL } : {}),
    authorizedDecrypters: e.C2D_AUTHORIZED_DECRYPTERS.map((a) => a.toLowerCase()),
    codec: {
      keys: parsePayloadKeys(e.C2D_PAYLOAD_KEYS),
      ...(e.C2D_CODEC_TOKEN ? { token: e.C2D_CODEC_TOKEN } : {}),
      uiOrigins: (e.C2D_CODEC_UI_ORIGINS ?? `http://127.0.0.1:${e.C2D_TEMPORAL_UI_PORT},http://localhost:${e.C2D_TEMPORAL_UI_PORT}`).split(',').map((o) => o.trim().replace(/\/$/, '')).filter((o) => o !== ''),
    },
    workerMetrics: { port: e.C2D_WORKER_METRICS_PORT, host: e.C2D_WORKER_METRICS_HOST },
    kubernetes: { kubeconfig: e.C2D_KUBECONFIG ? path.resolve(e.C2D_KUBECONFIG) : undefined, resultsDir: path.resolve(e.C2D_K8S_RESULTS_DIR ?? path.join(dataDir, 'k8s-results')) },
  };
}
