import { z } from 'zod';
import { NotFoundError } from '../../domain/errors';
import { handledError } from '../responses';
import { route } from '../route';

/** Aquarius' path for one DDO; Ocean's clients (`Aquarius.resolve`, `waitForAqua`) append the DID. */
export const AQUARIUS_DDO_PATH = '/api/aquarius/assets/ddo';

const DID = /^did:op:[0-9a-zA-Z]+$/;

/**
 * Ocean's metadata-cache API for the assets this provider knows itself (catalog and chain): so a
 * consumer, a market or another provider (`C2D_AQUARIUS_URL`) can resolve them without running
 * Aquarius. The DDO is served as resolved: `services[].files` stays the provider's ciphertext.
 * Assets this provider only knows through an Aquarius of its own are not served on, so two providers
 * pointing at each other cannot send one lookup round in circles.
 */
export const aquariusDdo = route({
  name: 'aquariusDdo',
  method: 'get',
  path: `${AQUARIUS_DDO_PATH}/:did`,
  summary: "Aquarius' DDO lookup, for the assets this provider knows itself (catalog, chain); files stay encrypted",
  tags: ['info'],
  auth: 'none',
  // a DID of another shape is simply not found here (404, as Aquarius answers)
  input: { from: 'path', schema: z.object({ did: z.string().describe('did:op:<hex>') }) },
  responses: { 200: { description: 'The DDO', schema: z.record(z.string(), z.unknown()) }, 404: handledError('No such asset here') },
  handler: (deps) => {
    const resolver = deps.localResolver ?? deps.resolver;
    return async ({ input: { did }, res }) => {
      const ddo = DID.test(did) ? await resolver.resolve(did) : null;
      if (!ddo)
        throw new NotFoundError(
          'did_not_found',
          `Asset DID ${did.slice(0, 100)} not found: this provider knows no such asset (neither in its catalog nor on chain ${deps.chainId})`,
        );
      res.json(ddo);
    };
  },
});
