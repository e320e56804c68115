import { z } from 'zod';
import { ComputeInitializer } from '../../chain/initialize';
import { C2DError } from '../../domain/errors';
import { route, SERVICES } from '../route';
import { initializeComputeSchema, initializeComputeV2Schema } from '../schemas';
import { paymentTerms } from '../escrow-terms';

const providerFeeSchema = z.object({
  providerFeeAddress: z.string(),
  providerFeeToken: z.string(),
  providerFeeAmount: z.string().describe('fee-token base units (wei), decimal string'),
  providerData: z.string().describe('0x hex of the UTF-8 JSON {environment, timestamp, dt, id}'),
  v: z.number(),
  r: z.string(),
  s: z.string(),
  validUntil: z.number().describe('unix seconds'),
});

/** Ocean's three answers per item: order needed, order and fee still valid, order valid but a new fee due; `{}`: no datatoken (catalog). */
const initializeAnswerSchema = z.union([
  z.object({ datatoken: z.string(), providerFee: providerFeeSchema, validOrder: z.string().optional() }),
  z.object({ validOrder: z.string() }),
  z.object({}),
]);

/** Ocean's order endpoint: signs provider fees and says which orders are still valid. */
export const initializeCompute = route({
  name: 'initializeCompute',
  method: 'post',
  path: `${SERVICES}/initializeCompute`,
  summary: 'Which datatoken orders the job still needs, with provider fees signed for the environment',
  tags: ['compute'],
  auth: 'none',
  service: true,
  input: { from: 'params', schema: initializeComputeSchema },
  responses: {
    200: {
      description: 'One answer per dataset, and one for a published algorithm',
      schema: z.object({ datasets: z.array(initializeAnswerSchema), algorithm: initializeAnswerSchema.optional() }),
    },
  },
  handler: (deps) => {
    const initializer = deps.computeInitializer ?? new ComputeInitializer({ resolver: deps.resolver, wallet: deps.providerWallet, logger: deps.logger });
    return async ({ input: body, json }) => {
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
      json(200, answer);
    };
  },
});

/**
 * initializeCompute of ocean.js ≥ 4 (told apart by its `payment`): the Escrow terms of a paid job — where
 * to deposit, whom to authorize, how much the start will lock and for how long — and the datasets' orders
 * as for 3.x, without a provider fee (the compute is paid through the Escrow, not in the order).
 */
export const initializeComputeV2 = route({
  name: 'initializeCompute',
  method: 'post',
  path: `${SERVICES}/initializeCompute`,
  summary: "The Escrow payment terms of a paid job and its datasets' orders (ocean-node's API: a body with `payment`)",
  tags: ['compute'],
  auth: 'none',
  service: true,
  variant: { of: 'initializeCompute', when: (req) => typeof (req.body as { payment?: unknown } | undefined)?.payment === 'object' },
  input: { from: 'params', schema: initializeComputeV2Schema },
  responses: {
    200: {
      description: 'The payment terms, one answer per dataset, and one for a published algorithm',
      schema: z.object({
        datasets: z.array(initializeAnswerSchema),
        algorithm: initializeAnswerSchema.optional(),
        payment: z.object({
          escrowAddress: z.string(),
          payee: z.string(),
          chainId: z.number().int(),
          minLockSeconds: z.number().int(),
          token: z.string(),
          amount: z.string().describe('token units (wei) the start will lock'),
        }),
      }),
    },
  },
  handler: (deps) => {
    const initializer = deps.computeInitializer ?? new ComputeInitializer({ resolver: deps.resolver, wallet: deps.providerWallet, logger: deps.logger });
    return async ({ input: body, json }) => {
      const terms = await paymentTerms(deps, body);
      const t = Math.floor(Date.now() / 1000);
      const orders = await initializer.initialize({
        datasets: body.datasets,
        algorithm: 'documentId' in body.algorithm ? body.algorithm : undefined,
        // the compute is paid through the Escrow: the orders carry no provider fee for it
        environment: { ...terms.environment, priceMin: 0 },
        validUntil: t + terms.payment.maxJobDuration,
        consumerAddress: body.consumerAddress,
        now: t,
      });
      json(200, {
        ...orders,
        payment: {
          escrowAddress: deps.escrow!.address,
          payee: deps.escrow!.payeeAddress,
          chainId: terms.payment.chainId,
          minLockSeconds: terms.minLockSeconds,
          token: terms.payment.token,
          amount: terms.amount.toString(),
        },
      });
    };
  },
});
