import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { PublishedFile } from '../backend';
import { regularFile } from '../files';
import { STEP_LOGS } from '../steps';
import { type JobPaths, stepPaths } from './layout';
import { readJsonFile } from './state';

/** What the publishing step (src/entrypoints/publish-step.ts) reports: the files it collected into the job's publish dir. */
const publishReportSchema = z.object({ files: z.array(z.object({ filename: z.string() }).loose()).default([]) }).loose();

/** A plain file name, never a path out of the publish dir. */
const plainName = (n: string): boolean => n !== '' && n !== '.' && n !== '..' && n === path.basename(n);

export function listPublishedFiles(job: JobPaths): PublishedFile[] {
  const out: PublishedFile[] = [];
  const report = readJsonFile(stepPaths(job, 'publish').report, publishReportSchema);
  for (const { filename } of report?.files ?? []) {
    if (!plainName(filename)) continue;
    const file = path.join(job.publish, filename);
    const st = regularFile(file);
    if (st) out.push({ filename, type: 'output', size: st.size, open: () => fs.createReadStream(file) });
  }
  for (const log of STEP_LOGS) {
    const file = stepPaths(job, log.step).log;
    const st = regularFile(file);
    if (st) out.push({ filename: log.filename, type: log.type, size: st.size, open: () => fs.createReadStream(file) });
  }
  return out;
}
