import express, { type Router } from 'express';
import { NotFoundError } from '../../domain/errors';
import type { AppDeps } from '../deps';

/** Aquarius' path for one DDO; Ocean's clients (`Aquarius.resolve`, `waitForAqua`) append the DID. */
export const AQUARIUS_DDO_PATH = '/api/aquarius/assets/ddo';

/**
 * Ocean's metadata-cache API for the assets this provider knows itself (catalog and chain): so a
 * consumer, a market or another provider (`C2D_AQUARIUS_URL`) can resolve them without running
 * Aquarius. The DDO is served as resolved: `services[].files` stays the provider's ciphertext.
 * Assets this provider only knows through an Aquarius of its own are not served on, so two providers
 * pointing at each other cannot send one lookup round in circles.
 */
export function aquariusRoutes(deps: AppDeps): Router {
  const router = express.Router();
  const resolver = deps.localResolver ?? deps.resolver;

  router.get(`${AQUARIUS_DDO_PATH}/:did`, async (req, res) => {
    const did = req.params.did;
    const ddo = /^did:op:[0-9a-zA-Z]+$/.test(did) ? await resolver.resolve(did) : null;
    if (!ddo) throw new NotFoundError('did_not_found', `Asset DID ${did.slice(0, 100)} not found: this provider knows no such asset (neither in its catalog nor on chain ${deps.chainId})`);
    res.json(ddo);
  });

  return router;
}
