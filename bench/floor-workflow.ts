import { proxyActivities } from '@temporalio/workflow';

/** The bench's no-op activity (bench/run.ts registers it). */
export interface FloorActivities {
  noop(): Promise<void>;
}

const { noop } = proxyActivities<FloorActivities>({ startToCloseTimeout: '30s' });

/** Bare Temporal: as many no-op activities, one after the other, as a compute job runs; nothing else. */
export async function floorWorkflow(activities: number): Promise<void> {
  for (let i = 0; i < activities; i++) await noop();
}
