/** Ocean's compute job status codes. The numbers are the wire contract; the texts are for humans. */
export const JobStatus = {
  WarmingUp: 1,
  /** C2D v2 only (a job that gave queueMaxWaitTime): it waited that long for capacity and never started */
  QueueExpired: 2,
  JobStarted: 10,
  ConfiguringVolumes: 20,
  ProvisioningSuccess: 30,
  DataProvisioningFailed: 31,
  AlgorithmProvisioningFailed: 32,
  RunningAlgorithm: 40,
  AlgorithmFailed: 41,
  DiskQuotaExceeded: 42,
  FilteringResults: 50,
  PublishingResults: 60,
  ResultsFetchFailed: 61,
  ResultsUploadFailed: 62,
  JobFinished: 70,
  /** C2D v2 paid jobs: the job has ended and its Escrow payment is being claimed; its final status follows */
  Settling: 71,
} as const;
export type JobStatusCode = (typeof JobStatus)[keyof typeof JobStatus];

export const statusText: Record<JobStatusCode, string> = {
  1: 'Warming up',
  2: 'Queue wait expired',
  10: 'Job started',
  20: 'Configuring volumes',
  30: 'Provisioning success',
  31: 'Data provisioning failed',
  32: 'Algorithm provisioning failed',
  40: 'Running algorithm',
  41: 'Failed to run algorithm',
  42: 'Disk quota exceeded',
  50: 'Filtering results',
  60: 'Publishing results',
  61: 'Failed to get outputs',
  62: 'Failed to upload results',
  70: 'Job finished',
  71: 'Settling the payment',
};

/** Final statuses: the job will not change any more (except `removed`). */
export const finalStatuses: readonly JobStatusCode[] = [2, 31, 32, 41, 42, 61, 62, 70];

/** Why a job was stopped: 0 not stopped, 1 by its owner, 2 for exceeding the environment's maxJobDuration. */
export const StopReq = { None: 0, ByOwner: 1, Deadline: 2 } as const;
export type StopReqCode = (typeof StopReq)[keyof typeof StopReq];
