import fs from 'node:fs';
import path from 'node:path';
import { regularFile } from '../files';
import type { PublishedFile, StepName } from '../backend';
import type { ResultType } from '../../domain/job';
import { type JobPaths, stepPaths } from './layout';

/** The step logs as results, in the order consumers see them. */
const LOGS: { step: StepName; filename: string; type: ResultType }[] = [
  { step: 'algorithm', filename: 'algorithm.log', type: 'algorithmLog' },
  { step: 'configure', filename: 'configure.log', type: 'configrationLog' },
  { step: 'publish', filename: 'publish.log', type: 'publishLog' },
];


function reportedFiles(reportFile: string): string[] {
  try {
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { files?: { filename?: unknown }[] };
    return (report.files ?? []).map((f) => f.filename).filter((n): n is string => typeof n === 'string' && n === path.basename(n) && n !== '..');
  } catch {
    return [];
  }
}

export function listPublishedFiles(job: JobPaths): PublishedFile[] {
  const out: PublishedFile[] = [];
  for (const filename of reportedFiles(stepPaths(job, 'publish').report)) {
    const file = path.join(job.publish, filename);
    const st = regularFile(file);
    if (st) out.push({ filename, type: 'output', size: st.size, open: () => fs.createReadStream(file) });
  }
  for (const log of LOGS) {
    const file = stepPaths(job, log.step).log;
    const st = regularFile(file);
    if (st) out.push({ filename: log.filename, type: log.type, size: st.size, open: () => fs.createReadStream(file) });
  }
  return out;
}
