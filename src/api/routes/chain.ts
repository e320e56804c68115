import express, { type Router } from 'express';
import { ComputeInitializer } from '../../chain/initialize';
import { C2DError } from '../../domain/errors';
import type { AppDeps } from '../deps';
import { parseParams } from '../params';
import { endpoints } from '../endpoints';
import { initializeComputeSchema } from '../schemas';

/** Ocean's order endpoints: `initializeCompute` signs provider fees and says which orders are still valid. */
export function chainRoutes(deps: AppDeps): Router {
  const router = express.Router();
  const initializer = deps.computeInitializer ?? new ComputeInitializer({ resolver: deps.resolver, wallet: deps.providerWallet, logger: deps.logger });

  router.post(endpoints.initializeCompute[1], async (req, res) => {
    const body = parseParams(initializeComputeSchema, req);
    const environment = deps.environments.find((e) => e.id === body.compute.env);
    if (!environment) throw new C2DError('validation', 'unknown_environment', 'Compute environment does not exist');
    const t = Math.floor(Date.now() / 1000);
    if (body.compute.validUntil <= t) throw new C2DError('validation', 'invalid_valid_until', 'validUntil is in the past');
    const answer = await initializer.initialize({
      datasets: body.datasets,
      algorithm: 'documentId' in body.algorithm ? body.algorithm : undefined,
      environment,
      validUntil: body.compute.validUntil,
      consumerAddress: body.consumerAddress,
      now: t,
    });
    res.json(answer);
  });
  return router;
}
