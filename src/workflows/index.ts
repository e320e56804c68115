/** The worker's workflowsPath: every workflow type it runs. */
export { computeJob } from './compute-job';
export { environmentSlots } from './environment-slots';
