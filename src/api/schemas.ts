import { z } from 'zod';

/**
 * Request schemas of the Provider API (Ocean's wire contract). Parameters come from the query string or
 * a JSON body, so numbers may arrive as strings and objects as JSON text; the schemas accept both and
 * hand on one typed shape. Issue 6 generates the OpenAPI document from these.
 */

export const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x address');

/** Kept as the exact text that was signed: the signature covers the nonce as sent. */
export const nonceSchema = z
  .union([z.string(), z.number()])
  .transform(String)
  .pipe(z.string().regex(/^\d+(\.\d+)?$/, 'must be a non-negative number'));

export const signatureSchema = z.string().regex(/^(0x)?[0-9a-fA-F]{130}$/, 'must be a 65-byte hex signature');

/** An index as a decimal string (it is part of the signed message). */
const indexSchema = z.union([z.string(), z.number()]).transform(String).pipe(z.string().regex(/^\d+$/, 'must be a non-negative integer'));

/** An object that may arrive as JSON text (query strings carry only text). */
function jsonText<T extends z.ZodType>(schema: T) {
  return z.preprocess((value, ctx) => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON' });
      return z.NEVER;
    }
  }, schema);
}

/**
 * Bounded work per request (docs/security.md): every list a request may carry has a maximum, so a
 * request of a thousand items is a 400 before anything is resolved, decrypted or fetched.
 */
export const REQUEST_LIMITS = {
  /** datasets of one job (the main one and the additional ones), and items of one initializeCompute */
  datasets: 32,
  /** keys of one userdata / algocustomdata object */
  customDataKeys: 100,
} as const;

const customData = jsonText(
  z.record(z.string(), z.unknown()).refine((v) => Object.keys(v).length <= REQUEST_LIMITS.customDataKeys, `at most ${REQUEST_LIMITS.customDataKeys} keys`),
);

export const datasetRequestSchema = z.object({
  documentId: z.string().min(1),
  serviceId: z.string().min(1),
  transferTxId: z.string().optional(),
  userdata: customData.optional(),
});

const publishedAlgorithmSchema = z.object({
  documentId: z.string().min(1),
  serviceId: z.string().min(1),
  transferTxId: z.string().optional(),
  algocustomdata: customData.optional(),
  userdata: customData.optional(),
});

/** Missing container fields become '' so the permission rules answer with Ocean's code for them. */
const rawAlgorithmSchema = z.object({
  meta: z.object({
    rawcode: z.string().optional(),
    url: z.string().optional(),
    language: z.string().optional(),
    version: z.string().optional(),
    container: z.object({
      entrypoint: z.string().default(''),
      image: z.string().default(''),
      tag: z.string().default('latest'),
      checksum: z.string().default(''),
    }),
  }),
  algocustomdata: customData.optional(),
});

export const algorithmRequestSchema = jsonText(z.union([publishedAlgorithmSchema, rawAlgorithmSchema]));

export const computeStartSchema = z.object({
  consumerAddress: addressSchema,
  signature: signatureSchema,
  nonce: nonceSchema,
  environment: z.string().min(1),
  dataset: jsonText(datasetRequestSchema),
  algorithm: algorithmRequestSchema,
  additionalDatasets: jsonText(
    z.array(datasetRequestSchema).max(REQUEST_LIMITS.datasets - 1, `at most ${REQUEST_LIMITS.datasets - 1} additional datasets per job`),
  ).optional(),
  output: z.unknown().optional(),
});
export type ComputeStartRequest = z.infer<typeof computeStartSchema>;

/** A job's resource request (C2D v2): amounts of the environment's resources (cpu cores, ram and disk GB, gpus). */
const resourceRequestSchema = jsonText(
  z
    .array(z.object({ id: z.string().min(1).max(32), amount: z.coerce.number().nonnegative() }))
    .max(16, 'at most 16 resources')
    .refine((rs) => new Set(rs.map((r) => r.id)).size === rs.length, 'each resource once'),
);

/**
 * freeComputeStart of ocean.js ≥ 4 (ocean-node's POST /freeCompute), signed address + nonce +
 * "freeStartCompute". `dataset` repeats datasets[0]. What this provider does not offer is refused by name
 * (see the route) rather than dropped.
 */
export const freeComputeStartSchema = z.object({
  consumerAddress: addressSchema,
  /** absent with an auth token (Authorization header) */
  signature: signatureSchema.optional(),
  nonce: nonceSchema.optional(),
  environment: z.string().min(1),
  datasets: jsonText(z.array(datasetRequestSchema).min(1).max(REQUEST_LIMITS.datasets, `at most ${REQUEST_LIMITS.datasets} datasets per job`)),
  dataset: z.unknown().optional(),
  algorithm: algorithmRequestSchema,
  resources: resourceRequestSchema.optional(),
  maxJobDuration: z.coerce.number().positive().optional(),
  queueMaxWaitTime: z.coerce.number().nonnegative().optional(),
  metadata: z.unknown().optional(),
  additionalViewers: z.unknown().optional(),
  output: z.unknown().optional(),
  outputBucketId: z.unknown().optional(),
  policyServer: z.unknown().optional(),
  encryptedDockerRegistryAuth: z.unknown().optional(),
});
export type FreeComputeStartRequest = z.infer<typeof freeComputeStartSchema>;

/** How a C2D v2 job pays: through the Escrow contract, in `token` on `chainId`. */
const escrowPaymentRequestSchema = z.object({
  chainId: z.coerce.number().int().positive(),
  token: addressSchema,
  resources: resourceRequestSchema.optional(),
  maxJobDuration: z.coerce.number().positive().optional(),
});

/**
 * computeStart of ocean.js ≥ 4 (ocean-node's paid POST /compute): like freeCompute plus `payment`, signed
 * address + nonce + "startCompute" (or an auth token). Told apart from the Python Provider's start by its
 * shape (`payment`).
 */
export const paidComputeStartSchema = freeComputeStartSchema.extend({
  payment: jsonText(escrowPaymentRequestSchema),
  chainId: z.coerce.number().int().positive().optional(),
});

export const computeStatusSchema = z.object({
  consumerAddress: addressSchema,
  jobId: z.string().min(1).optional(),
  documentId: z.string().min(1).optional(),
  /** ocean.js ≥ 4: the jobs of one order (the job view's agreementId) */
  agreementId: z.string().min(1).optional(),
});

export const computeStopSchema = z.object({
  consumerAddress: addressSchema,
  /** absent with an auth token (Authorization header, ocean.js ≥ 4) */
  signature: signatureSchema.optional(),
  nonce: nonceSchema.optional(),
  jobId: z.string().min(1),
  documentId: z.string().optional(),
  /** ocean.js ≥ 4 may name the job's agreement too (not signed) */
  agreementId: z.string().optional(),
});

/** Ocean's client 3.3.0 sends no nonce on delete; see the route. */
export const computeDeleteSchema = computeStopSchema.extend({ signature: signatureSchema, nonce: nonceSchema.optional() });

export const computeResultSchema = z.object({
  consumerAddress: addressSchema,
  /** absent with an auth token (Authorization header, ocean.js ≥ 4) */
  signature: signatureSchema.optional(),
  nonce: nonceSchema.optional(),
  jobId: z.string().min(1),
  index: indexSchema,
});

/** Ocean's `download` (access services only): the signature covers `documentId + nonce`. */
export const downloadSchema = z.object({
  documentId: z.string().min(1),
  serviceId: z.string().min(1),
  /** the order (on-chain assets); catalog assets have none */
  transferTxId: z.string().optional(),
  fileIndex: indexSchema.default('0'),
  consumerAddress: addressSchema,
  signature: signatureSchema,
  nonce: nonceSchema,
});

export const computeLogsSchema = z.object({
  consumerAddress: addressSchema,
  /** absent with an auth token (Authorization header, ocean.js ≥ 4) */
  signature: signatureSchema.optional(),
  nonce: nonceSchema.optional(),
  jobId: z.string().min(1),
});

export const nonceRequestSchema = z.object({ userAddress: addressSchema });

export const encryptQuerySchema = z.object({ chainId: z.coerce.number().int().positive().optional() });

export const environmentsQuerySchema = z.object({ chainId: z.coerce.number().int().positive().optional() });

/** Ocean's clients send `did`; `documentId` as in the compute routes is accepted too. */
export const fileInfoSchema = z
  .object({ did: z.string().min(1).optional(), documentId: z.string().min(1).optional(), serviceId: z.string().min(1) })
  .refine((v) => v.did !== undefined || v.documentId !== undefined, { message: 'required', path: ['did'] })
  .transform((v) => ({ did: (v.did ?? v.documentId) as string, serviceId: v.serviceId }));

/** The container section alone, or wrapped as `{container}`; missing fields become '' so the rules answer with Ocean's code. */
const containerSectionSchema = z.object({
  entrypoint: z.string().default(''),
  image: z.string().default(''),
  tag: z.string().default(''),
  checksum: z.string().default(''),
});
export const validateContainerSchema = z.union([
  z.object({ container: jsonText(containerSectionSchema) }).transform((v) => v.container),
  containerSectionSchema,
]);

const initializeItemSchema = z.object({
  documentId: z.string().min(1),
  serviceId: z.string().min(1),
  transferTxId: z.string().optional(),
  userdata: z.unknown().optional(),
});

/** initializeCompute: which orders the consumer still needs, with our signed provider fees (wire contract §3). */
export const initializeComputeSchema = z.object({
  datasets: z.array(initializeItemSchema).min(1).max(REQUEST_LIMITS.datasets, `at most ${REQUEST_LIMITS.datasets} datasets per request`),
  algorithm: z.union([initializeItemSchema.extend({ algocustomdata: z.unknown().optional() }), z.object({ meta: z.unknown() })]),
  compute: z.object({ env: z.string().min(1), validUntil: z.coerce.number().int().nonnegative() }),
  consumerAddress: addressSchema,
});

/** initializeCompute of ocean.js ≥ 4: the Escrow payment terms of a paid job (and the datasets' orders). */
export const initializeComputeV2Schema = z.object({
  datasets: z.array(initializeItemSchema).min(1).max(REQUEST_LIMITS.datasets, `at most ${REQUEST_LIMITS.datasets} datasets per request`),
  algorithm: z.union([initializeItemSchema.extend({ algocustomdata: z.unknown().optional() }), z.object({ meta: z.unknown() })]),
  environment: z.string().min(1),
  payment: escrowPaymentRequestSchema,
  /** seconds the job may run (ocean.js sends its `validUntil` argument here) */
  maxJobDuration: z.coerce.number().positive().optional(),
  queueMaxWaitTime: z.coerce.number().nonnegative().optional(),
  consumerAddress: addressSchema,
  policyServer: z.unknown().optional(),
  output: z.unknown().optional(),
  encryptedDockerRegistryAuth: z.unknown().optional(),
});

const hashSchema = z
  .string()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'must be 32 bytes of hex')
  .transform((h) => `0x${h.replace(/^0x/, '').toLowerCase()}`);

/**
 * `decrypt` (Ocean's Provider): a DDO published on chain, named by the transaction that set it, or by its
 * data NFT with the document itself. `chainId` stays the text that was signed, like the nonce.
 */
export const decryptSchema = z
  .object({
    decrypterAddress: addressSchema,
    chainId: z.union([z.string(), z.number()]).transform(String).pipe(z.string().regex(/^\d+$/, 'must be a chain id')),
    transactionId: hashSchema.optional(),
    dataNftAddress: addressSchema.optional(),
    encryptedDocument: z
      .string()
      .regex(/^0x([0-9a-fA-F]{2})+$/, 'must be 0x hex')
      .optional(),
    flags: z
      .union([z.number(), z.string().regex(/^(\d+|0x[0-9a-fA-F]{1,2})$/, 'must be a number')])
      .transform(Number)
      .pipe(z.number().int().min(0).max(255))
      .optional(),
    documentHash: hashSchema.optional(),
    nonce: nonceSchema,
    signature: signatureSchema,
  })
  .superRefine((v, ctx) => {
    if (v.transactionId === undefined && v.dataNftAddress === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['transactionId'],
        message: 'required: transactionId, or dataNftAddress with encryptedDocument, flags and documentHash',
      });
    if (v.transactionId === undefined && v.dataNftAddress !== undefined) {
      for (const field of ['encryptedDocument', 'flags', 'documentHash'] as const)
        if (v[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'required with dataNftAddress' });
    }
  });

/** ocean-node's auth/token: an auth token for the signer (signed address + nonce + "createAuthToken"). */
export const createAuthTokenSchema = z.object({
  address: addressSchema,
  signature: signatureSchema,
  nonce: nonceSchema,
  /** epoch ms; at most a day from now */
  validUntil: z.coerce.number().int().positive().optional(),
  chainId: z.unknown().optional(),
});

/** ocean-node's auth/token/invalidate (signed address + nonce + "invalidateAuthToken", or address + nonce as ocean.js 8.6.2 signs it). */
export const invalidateAuthTokenSchema = z.object({
  address: addressSchema,
  signature: signatureSchema,
  nonce: nonceSchema,
  token: z.string().min(1).max(4096),
  chainId: z.unknown().optional(),
});
