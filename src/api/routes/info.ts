import { z } from 'zod';
import { filesBinding } from '../../assets/decryptor';
import { encrypt } from '../../assets/ecies';
import { type Environment, environmentResources } from '../../domain/environment';
import { feesSchema, resourceSchema } from '../../domain/resources';
import { fromOceanNodeClient, OCEAN_NODE_QUERY } from '../ocean-node';
import { ValidationError } from '../../domain/errors';
import type { AppDeps } from '../deps';
import { route, SERVICES, serviceEndpoints } from '../route';
import { encryptQuerySchema, environmentsQuerySchema, nonceRequestSchema } from '../schemas';

/** Unsigned routes: who we are, nonces, environments, and `/encrypt` for publishers. */

const rootSchema = z
  .object({
    software: z.string(),
    version: z.string(),
    chainIds: z.array(z.number().int()),
    providerAddress: z.string(),
    providerAddresses: z.record(z.string(), z.string()),
    serviceEndpoints: z.record(z.string(), z.tuple([z.string(), z.string()])),
  })
  .meta({ id: 'Root' });

/** An environment as `computeEnvironments` shows it (Ocean's fields; `free` is ours). */
const environmentViewSchema = z
  .object({
    id: z.string(),
    cpuNumber: z.number(),
    cpuType: z.string(),
    gpuNumber: z.number(),
    gpuType: z.string(),
    ramGB: z.number(),
    diskGB: z.number(),
    priceMin: z.number(),
    desc: z.string(),
    currentJobs: z.number().int(),
    maxJobs: z.number().int(),
    consumerAddress: z.string(),
    storageExpiry: z.number(),
    maxJobDuration: z.number(),
    lastSeen: z.number(),
    feeToken: z.string(),
    free: z.boolean(),
  })
  .meta({ id: 'Environment' });
export type EnvironmentView = z.infer<typeof environmentViewSchema>;

export const root = route({
  name: 'root',
  method: 'get',
  path: '/',
  summary: 'Who this provider is and where its endpoints are',
  tags: ['info'],
  auth: 'none',
  body: 'none',
  responses: { 200: { description: 'The root document', schema: rootSchema } },
  handler: (deps, routes) => {
    const address = deps.providerWallet.address;
    const endpoints = serviceEndpoints(routes);
    // ocean.js ≥ 4 reads the same names, but its environments call looks like 3.x's: its root document points it to ocean-node's form
    const v2Endpoints = { ...endpoints, computeEnvironments: ['GET', `${SERVICES}/computeEnvironments?${OCEAN_NODE_QUERY}`] as [string, string] };
    return ({ req, json }) =>
      json(200, {
        software: 'Provider',
        version: deps.version,
        chainIds: [deps.chainId],
        providerAddress: address,
        providerAddresses: { [deps.chainId]: address },
        serviceEndpoints: fromOceanNodeClient(req) ? v2Endpoints : endpoints,
      });
  },
});

export const nonce = route({
  name: 'nonce',
  method: 'get',
  path: `${SERVICES}/nonce`,
  summary: 'The last nonce accepted from an address',
  tags: ['info'],
  auth: 'none',
  service: true,
  input: { from: 'params', schema: nonceRequestSchema },
  responses: { 200: { description: 'The nonce', schema: z.object({ nonce: z.union([z.number(), z.string()]) }) } },
  handler:
    (deps) =>
    async ({ input, json }) => {
      const stored = await deps.nonces.get(input.userAddress);
      // Ocean's clients add 1 to what they get: a number keeps that arithmetic right (a string would concatenate).
      const asNumber = stored === null ? 0 : Number(stored);
      json(200, { nonce: Number.isSafeInteger(asNumber) || !Number.isInteger(asNumber) ? asNumber : (stored ?? 0) });
    },
});

const environmentView = async (deps: AppDeps, env: Environment): Promise<EnvironmentView> => ({
  id: env.id,
  cpuNumber: env.cpuNumber,
  cpuType: env.cpuType,
  gpuNumber: env.gpuNumber,
  gpuType: env.gpuType,
  ramGB: env.ramGB,
  diskGB: env.diskGB,
  priceMin: env.priceMin,
  desc: env.desc,
  currentJobs: await deps.jobs.currentJobs(env.id),
  maxJobs: env.maxJobs,
  consumerAddress: deps.providerWallet.address,
  storageExpiry: env.storageExpiry,
  maxJobDuration: env.maxJobDuration,
  lastSeen: Math.floor(Date.now() / 1000),
  feeToken: env.feeToken ?? deps.defaultFeeToken ?? '',
  free: env.priceMin === 0,
});

export const computeEnvironments = route({
  name: 'computeEnvironments',
  method: 'get',
  path: `${SERVICES}/computeEnvironments`,
  summary: 'Compute environments, keyed by chain id',
  tags: ['compute'],
  auth: 'none',
  service: true,
  input: { from: 'query', schema: environmentsQuerySchema },
  body: 'none',
  responses: { 200: { description: 'Environments by chain id', schema: z.record(z.string(), z.array(environmentViewSchema)) } },
  handler:
    (deps) =>
    async ({ input, json }) => {
      if (input.chainId !== undefined && input.chainId !== deps.chainId) return json(200, {});
      json(200, { [deps.chainId]: await Promise.all(deps.environments.map((env) => environmentView(deps, env))) });
    },
});

/** An environment as ocean-node shows it (ComputeEnvironment, v3.2.0) to ocean.js ≥ 4. */
const oceanNodeEnvironmentSchema = z
  .object({
    id: z.string(),
    description: z.string(),
    consumerAddress: z.string(),
    storageExpiry: z.number(),
    maxJobDuration: z.number(),
    maxJobs: z.number().int(),
    fees: feesSchema,
    resources: z.array(resourceSchema.and(z.object({ inUse: z.number() }))),
    free: z
      .object({
        maxJobDuration: z.number(),
        maxJobs: z.number().int(),
        resources: z.array(z.object({ id: z.string(), max: z.number() })),
        storageExpiry: z.number(),
      })
      .optional(),
    access: z.object({ addresses: z.array(z.string()), accessLists: z.null() }),
    platform: z.object({ architecture: z.string(), os: z.string() }),
    enableNetwork: z.boolean(),
    runningJobs: z.number().int(),
    queuedJobs: z.number().int().optional(),
    queMaxWaitTime: z.number().optional(),
  })
  .meta({ id: 'OceanNodeEnvironment' });
type OceanNodeEnvironment = z.infer<typeof oceanNodeEnvironmentSchema>;

const ARCHITECTURE: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

async function oceanNodeEnvironment(deps: AppDeps, env: Environment): Promise<OceanNodeEnvironment> {
  const [inUse, runningJobs, queuedJobs] = await Promise.all([
    deps.jobs.resourcesInUse?.(env.id) ?? Promise.resolve({} as Record<string, number>),
    deps.jobs.currentJobs(env.id),
    deps.jobs.queuedJobs?.(env.id),
  ]);
  return {
    id: env.id,
    description: env.desc,
    consumerAddress: deps.providerWallet.address,
    storageExpiry: env.storageExpiry,
    maxJobDuration: env.maxJobDuration,
    maxJobs: env.maxJobs,
    fees: env.fees,
    resources: environmentResources(env).map((r) => ({ ...r, inUse: inUse[r.id] ?? 0 })),
    ...(env.free ? { free: { ...env.free, storageExpiry: env.storageExpiry } } : {}),
    access: { addresses: [], accessLists: null },
    platform: { architecture: ARCHITECTURE[process.arch] ?? process.arch, os: process.platform },
    enableNetwork: env.algorithmNetwork,
    runningJobs,
    ...(queuedJobs !== undefined ? { queuedJobs } : {}),
  };
}

/**
 * ocean.js ≥ 4 reads the environments as ocean-node's array, 3.x as the Python Provider's object keyed by
 * chain id, and both send the same request. Their root documents differ (see `root`): ocean.js ≥ 4's
 * points here with `api=v2`, which any client may send to get this form.
 */
export const oceanNodeComputeEnvironments = route({
  name: 'computeEnvironments',
  method: 'get',
  path: `${SERVICES}/computeEnvironments`,
  summary: "Compute environments as ocean-node's array, with resources, fees and free limits (api=v2: where ocean.js ≥ 4's root document points)",
  tags: ['compute'],
  auth: 'none',
  service: true,
  variant: { of: 'computeEnvironments', when: (req) => req.query.api === 'v2' },
  input: { from: 'query', schema: environmentsQuerySchema.extend({ api: z.literal('v2') }) },
  body: 'none',
  responses: { 200: { description: 'The environments', schema: z.array(oceanNodeEnvironmentSchema) } },
  handler:
    (deps) =>
    async ({ input, json }) => {
      if (input.chainId !== undefined && input.chainId !== deps.chainId) return json(200, []);
      json(200, await Promise.all(deps.environments.map((env) => oceanNodeEnvironment(deps, env))));
    },
});

/**
 * A file list (a JSON object with `files`) must name its asset, or the provider would refuse it later
 * anyway (docs/security.md): said here, where the publisher can still fix it. Other bytes (a DDO for
 * `setMetaData`) pass as they are.
 */
function requireBoundFileList(body: Buffer): void {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return;
  }
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { files?: unknown }).files)) return;
  if (filesBinding(json) === null)
    throw new ValidationError({ files: ['a file list must name its asset: nftAddress and datatokenAddress (on chain), or did and serviceId (catalog)'] });
}

export const encryptRoute = route({
  name: 'encrypt',
  method: 'post',
  path: `${SERVICES}/encrypt`,
  summary: "Encrypts bytes (a DDO's files object, which must name its asset) with this provider's key",
  tags: ['info'],
  auth: 'none',
  service: true,
  input: { from: 'query', schema: encryptQuerySchema },
  body: 'raw',
  responses: { 201: { description: 'The ciphertext as 0x hex', type: 'text/plain', schema: z.string().regex(/^0x[0-9a-f]+$/) } },
  handler:
    (deps) =>
    ({ input, req, res }) => {
      if (input.chainId !== undefined && input.chainId !== deps.chainId)
        throw new ValidationError({ chainId: [`unsupported chain id, this provider serves ${deps.chainId}`] });
      const body: unknown = req.body;
      if (!Buffer.isBuffer(body) || body.length === 0) throw new ValidationError({ body: ['nothing to encrypt'] });
      requireBoundFileList(body);
      res
        .status(201)
        .type('text/plain')
        .send(`0x${encrypt(deps.providerWallet.signingKey.publicKey, body).toString('hex')}`);
    },
});

export const infoRoutes = [root, nonce, oceanNodeComputeEnvironments, computeEnvironments, encryptRoute];
