import { z } from 'zod';
import { AuthError } from '../../domain/errors';
import { requireSignedRequest } from '../auth';
import { authTokensOf } from '../auth-tokens';
import { route, SERVICES } from '../route';
import { createAuthTokenSchema, invalidateAuthTokenSchema } from '../schemas';

/** ocean-node's auth tokens (ocean.js ≥ 4): a token stands in for a signature and nonce on the signed routes (src/api/auth-tokens.ts). */

export const generateAuthToken = route({
  name: 'generateAuthToken',
  method: 'post',
  path: `${SERVICES}/auth/token`,
  summary: 'An auth token for the signer, valid up to a day (signed: address + nonce + "createAuthToken"); send it raw in Authorization',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: createAuthTokenSchema },
  responses: { 200: { description: 'The token', schema: z.object({ token: z.string() }) } },
  handler:
    (deps) =>
    async ({ input: body, json }) => {
      await requireSignedRequest(deps.nonces, { address: body.address, command: 'createAuthToken', nonce: body.nonce, signature: body.signature });
      json(200, { token: authTokensOf(deps).issue(body.address, body.nonce, body.validUntil) });
    },
});

export const invalidateAuthToken = route({
  name: 'invalidateAuthToken',
  method: 'post',
  path: `${SERVICES}/auth/token/invalidate`,
  summary:
    'Voids one of the signer\'s tokens, and its older ones (signed: address + nonce + "invalidateAuthToken", or address + nonce as ocean.js 8.6.2 signs it)',
  tags: ['compute'],
  auth: 'signature',
  service: true,
  input: { from: 'params', schema: invalidateAuthTokenSchema },
  responses: { 200: { description: 'Done', schema: z.object({ success: z.literal(true) }) } },
  handler:
    (deps) =>
    async ({ input: body, json }) => {
      await requireSignedRequest(deps.nonces, {
        address: body.address,
        alternatives: [{ command: 'invalidateAuthToken' }, { parts: [body.address] }],
        nonce: body.nonce,
        signature: body.signature,
      });
      if (!(await authTokensOf(deps).invalidate(body.address, body.token)))
        throw new AuthError('invalid_token', 'Invalid auth token: expired, invalidated already, or not issued to this address');
      json(200, { success: true });
    },
});

export const authRoutes = [generateAuthToken, invalidateAuthToken];
