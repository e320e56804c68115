import express, { type Router } from 'express';
import { encrypt } from '../../assets/ecies';
import type { Environment } from '../../domain/environment';
import { ValidationError } from '../../domain/errors';
import type { AppDeps } from '../deps';
import { endpoints } from '../endpoints';
import { parseParams, parseWith } from '../params';
import { encryptQuerySchema, environmentsQuerySchema, nonceRequestSchema } from '../schemas';

/** Unsigned routes: who we are, nonces, environments, and `/encrypt` for publishers. */
export function infoRoutes(deps: AppDeps): Router {
  const router = express.Router();
  const address = deps.providerWallet.address;

  router.get('/', (_req, res) => {
    res.json({
      software: 'Provider',
      version: deps.version,
      chainIds: [deps.chainId],
      providerAddress: address,
      providerAddresses: { [deps.chainId]: address },
      serviceEndpoints: endpoints,
    });
  });

  router.get(endpoints.nonce[1], express.json(), async (req, res) => {
    const { userAddress } = parseParams(nonceRequestSchema, req);
    const stored = await deps.nonces.get(userAddress);
    // Ocean's clients add 1 to what they get: a number keeps that arithmetic right (a string would concatenate).
    const asNumber = stored === null ? 0 : Number(stored);
    res.json({ nonce: Number.isSafeInteger(asNumber) || !Number.isInteger(asNumber) ? asNumber : stored });
  });

  const wireEnvironment = async (env: Environment) => ({
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
    consumerAddress: address,
    storageExpiry: env.storageExpiry,
    maxJobDuration: env.maxJobDuration,
    lastSeen: Math.floor(Date.now() / 1000),
    feeToken: env.feeToken ?? deps.defaultFeeToken ?? '',
    free: env.priceMin === 0,
  });

  router.get(endpoints.computeEnvironments[1], async (req, res) => {
    const { chainId } = parseWith(environmentsQuerySchema, req.query);
    if (chainId !== undefined && chainId !== deps.chainId) {
      res.json({});
      return;
    }
    res.json({ [deps.chainId]: await Promise.all(deps.environments.map(wireEnvironment)) });
  });

  // The body is opaque bytes (a DDO or a files object): read it raw, whatever its content type says.
  router.post(endpoints.encrypt[1], express.raw({ type: () => true, limit: '1mb' }), (req, res) => {
    const { chainId } = parseWith(encryptQuerySchema, req.query);
    if (chainId !== undefined && chainId !== deps.chainId) throw new ValidationError({ chainId: [`unsupported chain id, this provider serves ${deps.chainId}`] });
    const body: unknown = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw new ValidationError({ body: ['nothing to encrypt'] });
    res.status(201).type('text/plain').send(`0x${encrypt(deps.providerWallet.signingKey.publicKey, body).toString('hex')}`);
  });

  return router;
}
