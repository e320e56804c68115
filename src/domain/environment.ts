import { z } from 'zod';

/** A compute environment: Ocean's wire fields plus which backend runs it and that backend's options. */
export const environmentSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (max 64)'),
  desc: z.string().default(''),
  cpuNumber: z.number().positive().default(1),
  cpuType: z.string().default(''),
  gpuNumber: z.number().int().nonnegative().default(0),
  gpuType: z.string().default(''),
  ramGB: z.number().positive().default(1),
  diskGB: z.number().positive().default(1),
  /** price per minute in fee-token units; 0 = free */
  priceMin: z.number().nonnegative().default(0),
  maxJobs: z.number().int().positive().default(2),
  /** seconds */
  maxJobDuration: z.number().int().positive().default(3600),
  /** seconds results stay downloadable */
  storageExpiry: z.number().int().positive().default(7 * 24 * 3600),
  feeToken: z.string().optional(),
  backend: z.enum(['process']).default('process'),
  /** options of the process backend */
  process: z
    .object({
      /** the most processes/threads the algorithm may have at once */
      maxProcesses: z.number().int().positive().default(256),
      /** bytes the algorithm may write to /data/outputs (default: diskGB) */
      maxOutputBytes: z.number().int().positive().optional(),
      /** bytes of the algorithm's private /tmp */
      tmpBytes: z.number().int().positive().default(64 * 1024 * 1024),
    })
    .prefault({}),
});
export type Environment = z.infer<typeof environmentSchema>;
export type EnvironmentInput = z.input<typeof environmentSchema>;

export const environmentsFileSchema = z.array(environmentSchema).min(1).superRefine((envs, ctx) => {
  const seen = new Set<string>();
  for (const [i, env] of envs.entries()) {
    if (seen.has(env.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate environment id ${env.id}` });
    seen.add(env.id);
  }
});

export const defaultEnvironments: EnvironmentInput[] = [
  { id: 'process-free', desc: 'Free sandboxed process environment', cpuNumber: 1, ramGB: 1, diskGB: 1, maxJobs: 2, maxJobDuration: 3600 },
];

export const maxOutputBytes = (env: Environment): number => env.process.maxOutputBytes ?? Math.floor(env.diskGB * 1024 ** 3);
