import { z } from 'zod';
import { JobStatus, StopReq } from './status';

/**
 * The job object as consumers see it (Ocean's job object plus our fields), as a zod schema: the API's
 * OpenAPI document is generated from it and `JobView` is its type. Workflow code imports the types only
 * (through ./job), so zod never enters the workflow bundle.
 */

export const resultTypeSchema = z.enum(['output', 'algorithmLog', 'configrationLog', 'publishLog']);

export const resultEntrySchema = z.object({
  filename: z.string(),
  filesize: z.number().int(),
  type: resultTypeSchema,
});

/** What an algorithm step ended with, reported to the consumer (ours; the reference says "finished" even after a crash). */
export const terminationDetailsSchema = z.object({
  exitCode: z.number().int().nullable(),
  oomKilled: z.boolean(),
  reason: z.string(),
});

export const jobViewSchema = z
  .object({
    agreementId: z.string(),
    jobId: z.string().regex(/^[0-9a-f]{32}$/),
    owner: z.string().describe('lower-case 0x address'),
    status: z
      .literal(Object.values(JobStatus))
      .describe(
        '1 Warming up · 2 Queue wait expired (C2D v2) · 10 Job started · 20 Configuring volumes · 30 Provisioning success · 31/32 provisioning failed · 40 Running algorithm · 41 Failed to run algorithm · 42 Disk quota exceeded · 50 Filtering results · 60 Publishing results · 61/62 failed outputs · 70 Job finished · 71 Settling the payment (C2D v2 paid jobs)',
      ),
    statusText: z.string(),
    dateCreated: z.string().describe('epoch seconds as a string'),
    dateFinished: z.string().nullable(),
    stopreq: z.literal(Object.values(StopReq)).describe('0 none · 1 stopped by the owner · 2 exceeded maxJobDuration'),
    removed: z.literal([0, 1]),
    algoDID: z.string(),
    inputDID: z.array(z.string()),
    results: z.union([z.array(resultEntrySchema), z.literal('')]).describe("'' until publishing ends"),
    environment: z.string(),
    expireTimestamp: z.number().nullable().describe('epoch seconds after which results are gone'),
    terminationDetails: terminationDetailsSchema.nullable(),
    payment: z
      .object({
        chainId: z.number().int(),
        token: z.string(),
        lockTx: z.string().nullable(),
        claimTx: z.string().nullable(),
        cancelTx: z.string().nullable(),
        cost: z.string().nullable().describe('token units (wei) claimed, once settled'),
      })
      .optional()
      .describe('C2D v2 paid jobs: the Escrow lock and its claim'),
    pullingImage: z.literal(true).optional().describe("present while the algorithm's image is pulled (ocean-node's status 10)"),
    imagePullFailed: z.literal(true).optional().describe("the algorithm's image could not be pulled: status 32 (ocean-node's 11)"),
    api: z.literal('v2').optional().describe("'v2': started through ocean-node's compute API (ocean.js ≥ 4), whose routes answer in ocean-node's vocabulary"),
  })
  .meta({ id: 'Job' });
