import { z } from 'zod';
import { filesBinding } from '../../assets/decryptor';
import { encrypt } from '../../assets/ecies';
import type { Environment } from '../../domain/environment';
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
    return ({ json }) =>
      json(200, {
        software: 'Provider',
        version: deps.version,
        chainIds: [deps.chainId],
        providerAddress: address,
        providerAddresses: { [deps.chainId]: address },
        serviceEndpoints: endpoints,
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

export const infoRoutes = [root, nonce, computeEnvironments, encryptRoute];
