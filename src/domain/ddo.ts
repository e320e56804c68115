import { z } from 'zod';

/** DDO v4 (Ocean). Unknown fields are kept: publishers add their own. */
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x address');

export const containerSchema = z.object({
  entrypoint: z.string().min(1),
  image: z.string().min(1),
  tag: z.string().min(1),
  checksum: z.string().min(1),
});

export const consumerParameterSchema = z.looseObject({
  name: z.string(),
  type: z.enum(['text', 'number', 'boolean', 'select']),
  label: z.string().optional(),
  required: z.boolean().optional(),
  description: z.string().optional(),
  default: z.unknown().optional(),
  options: z.array(z.record(z.string(), z.string())).optional(),
});

export const trustedAlgorithmSchema = z.object({
  did: z.string(),
  filesChecksum: z.string().optional(),
  containerSectionChecksum: z.string().optional(),
});

export const computeOptionsSchema = z.looseObject({
  allowRawAlgorithm: z.boolean().default(false),
  allowNetworkAccess: z.boolean().default(false),
  publisherTrustedAlgorithmPublishers: z.array(z.string()).default([]),
  publisherTrustedAlgorithms: z.array(trustedAlgorithmSchema).default([]),
});

export const serviceSchema = z.looseObject({
  id: z.string().min(1),
  type: z.enum(['compute', 'access']),
  files: z.string().regex(/^0x[0-9a-fA-F]+$/, 'must be 0x hex ciphertext from /encrypt'),
  datatokenAddress: address.optional(),
  serviceEndpoint: z.string().optional(),
  timeout: z.number().int().nonnegative().default(0),
  compute: computeOptionsSchema.optional(),
  consumerParameters: z.array(consumerParameterSchema).optional(),
});

const credentialListSchema = z.array(z.object({ type: z.string(), values: z.array(z.string()) }));
export const credentialsSchema = z.object({
  allow: credentialListSchema.default([]),
  deny: credentialListSchema.default([]),
});

export const ddoSchema = z.looseObject({
  '@context': z.array(z.string()).optional(),
  id: z.string().regex(/^did:op:[0-9a-zA-Z]+$/, 'must be did:op:<hex>'),
  version: z.string().optional(),
  nftAddress: address.optional(),
  chainId: z.number().int().optional(),
  metadata: z.looseObject({
    created: z.string().optional(),
    updated: z.string().optional(),
    type: z.enum(['dataset', 'algorithm']),
    name: z.string(),
    description: z.string().optional(),
    author: z.string().optional(),
    license: z.string().optional(),
    algorithm: z
      .looseObject({
        language: z.string().optional(),
        version: z.string().optional(),
        container: containerSchema,
        consumerParameters: z.array(consumerParameterSchema).optional(),
      })
      .optional(),
  }),
  services: z.array(serviceSchema).min(1),
  credentials: credentialsSchema.optional(),
  nft: z.looseObject({ address: z.string().optional(), owner: z.string().optional(), state: z.number().int().optional() }).optional(),
  datatokens: z.array(z.unknown()).optional(),
});

export type Ddo = z.infer<typeof ddoSchema>;
export type DdoService = z.infer<typeof serviceSchema>;
export type ComputeOptions = z.infer<typeof computeOptionsSchema>;

/** What `/encrypt` ciphertext decrypts to (§5 of the wire contract). */
export const fileObjectSchema = z.looseObject({
  type: z.literal('url'),
  url: z.string().url(),
  method: z.string().default('GET'),
  headers: z.record(z.string(), z.string()).optional(),
  checksum: z.string().optional(),
});
export const encryptedFilesSchema = z.object({
  datatokenAddress: z.string().optional(),
  nftAddress: z.string().optional(),
  files: z.array(fileObjectSchema).min(1),
});
export type FileObject = z.infer<typeof fileObjectSchema>;
export type DecryptedFiles = z.infer<typeof encryptedFilesSchema>;

/** Asset states that may be consumed: 0 active, 5 unlisted. */
export const consumableStates: readonly number[] = [0, 5];
