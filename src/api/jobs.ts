import { NotFoundError } from '../domain/errors';
import { JOB_ID_PATTERN, type JobView } from '../domain/job';
import type { JobsService } from '../temporal/jobs-service';

export const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * The job if `consumer` owns it, else null. Someone else's job and no job at all look the same, so a
 * consumer cannot even learn that another's job id exists.
 */
export async function findOwnedJob(jobs: JobsService, jobId: string, consumer: string): Promise<JobView | null> {
  const job = JOB_ID_PATTERN.test(jobId) ? await jobs.get(jobId) : null;
  return job && sameAddress(job.owner, consumer) ? job : null;
}

export async function ownedJob(jobs: JobsService, jobId: string, consumer: string): Promise<JobView> {
  const job = await findOwnedJob(jobs, jobId, consumer);
  if (!job) throw new NotFoundError('job_not_found', 'Job not found');
  return job;
}
