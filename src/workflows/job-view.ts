import { type JobInput, type JobView, RAW_ALGORITHM_DID, type ResultEntry, type TerminationDetails, toEpochSecondsString } from '../domain/job';
import { type JobStatusCode, JobStatus, StopReq, type StopReqCode, statusText } from '../domain/status';

/** What a job workflow keeps about itself; the consumer's view is derived from it. */
export interface JobState {
  status: JobStatusCode;
  stopreq: StopReqCode;
  results: ResultEntry[] | '';
  /** epoch ms (workflow time) */
  dateFinishedMs: number | null;
  /** epoch seconds */
  expireTimestamp: number | null;
  terminationDetails: TerminationDetails | null;
  /** the order that paid, once verified on chain (wire contract §4 step 6); absent: the main dataset's transferTxId */
  agreementId?: string;
  /** C2D v2 paid jobs: the Escrow lock, then its claim */
  payment?: NonNullable<JobView['payment']>;
  /** while the algorithm's image is pulled: its progress is the job's current details (the Web UI's summary), and ocean-node's clients read status 10 */
  pulling?: boolean;
  /** the algorithm's image could not be pulled (the job ends 32; ocean-node's clients read 11) */
  pullFailed?: boolean;
}

export const initialJobState = (): JobState => ({
  status: JobStatus.WarmingUp,
  stopreq: StopReq.None,
  results: '',
  dateFinishedMs: null,
  expireTimestamp: null,
  terminationDetails: null,
});

export const algorithmDidOf = (input: Pick<JobInput, 'algorithm'>): string => (input.algorithm.kind === 'published' ? input.algorithm.did : RAW_ALGORITHM_DID);

/** The agreement is the order of the main dataset (catalog assets have none: ''). */
export const agreementIdOf = (input: Pick<JobInput, 'datasets'>): string => input.datasets[0]?.transferTxId ?? '';

/** The wire shape (ocean-wire-contract.md, job object). `removed` comes from the result store, so the caller fills it in. */
export function jobView(input: JobInput, s: JobState, removed: 0 | 1 = 0): JobView {
  return {
    agreementId: s.agreementId ?? agreementIdOf(input),
    jobId: input.jobId,
    owner: input.owner,
    status: s.status,
    statusText: statusText[s.status],
    dateCreated: toEpochSecondsString(input.createdAt),
    dateFinished: s.dateFinishedMs === null ? null : toEpochSecondsString(s.dateFinishedMs),
    stopreq: s.stopreq,
    removed,
    algoDID: algorithmDidOf(input),
    inputDID: input.datasets.map((d) => d.did),
    results: s.results,
    environment: input.environmentId,
    expireTimestamp: s.expireTimestamp,
    terminationDetails: s.terminationDetails,
    ...(s.payment ? { payment: s.payment } : {}),
    ...(s.pulling ? { pullingImage: true } : {}),
    ...(s.pullFailed ? { imagePullFailed: true } : {}),
    ...(input.api ? { api: input.api } : {}),
  };
}

/** What a running job's view holds beyond its status, its input and its memo at the start: kept in the memo `live` (LiveView). */
export type LiveView = Pick<JobView, 'stopreq' | 'terminationDetails' | 'payment' | 'pullingImage' | 'imagePullFailed'>;

export const liveView = (s: JobState): LiveView => ({
  stopreq: s.stopreq,
  terminationDetails: s.terminationDetails,
  ...(s.payment ? { payment: s.payment } : {}),
  ...(s.pulling ? { pullingImage: true } : {}),
  ...(s.pullFailed ? { imagePullFailed: true } : {}),
});
