import { z } from 'zod';
import { jobViewSchema, resultEntrySchema, terminationDetailsSchema } from '../domain/job-view';

/** Response shapes shared by several routes, and Ocean's error shapes (wire contract §0), as zod schemas. */

/** `400 {"message":"Validation error","errors":{"<field>":["<text>"]},"success":false}` */
export const validationErrorSchema = z
  .object({
    message: z.literal('Validation error'),
    errors: z.record(z.string(), z.array(z.string())),
    success: z.literal(false),
  })
  .meta({ id: 'ValidationError' });

/** `4xx {"error":"<text>"}` or `4xx {"error":{"<resource>":"<code>"}}`; also the body of a 503. */
export const handledErrorSchema = z.object({ error: z.union([z.string(), z.record(z.string(), z.string())]) }).meta({ id: 'HandledError' });

/** Every error body the API may answer with. */
export const errorBodySchema = z.union([validationErrorSchema, handledErrorSchema]);

/** A job started through ocean-node's compute API, in its vocabulary (src/api/ocean-node.ts). */
export const oceanNodeJobSchema = jobViewSchema
  .extend({
    status: z
      .number()
      .int()
      .describe(
        "ocean-node's codes: 0 started · 1 queued · 2 expired in queue · 10/11 image pull · 20 · 30–33 · 40–42 · 50 · 60–62 · 70 finished · 71 settling",
      ),
    results: z.array(resultEntrySchema),
    /** ocean-node's key is `OOMKilled`; ours stays beside it */
    terminationDetails: terminationDetailsSchema.extend({ OOMKilled: z.boolean() }).nullable(),
  })
  .meta({ id: 'OceanNodeJob' });

/** Ocean's compute routes answer with a list of jobs, even for one; each in the vocabulary of the client generation that started it. */
export const jobListSchema = z.array(z.union([jobViewSchema, oceanNodeJobSchema]));

export const textSchema = z.string();
export const bytesSchema = z.string().meta({ contentMediaType: 'application/octet-stream' });

/** Error answers with their shapes: a route lists the ones it may give beyond the shared ones, or redescribes one. */
export const handledError = (description: string) => ({ description, schema: handledErrorSchema });
