import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestState {
  temporalAddress: string;
  temporalPid: number;
  /** scratch dir of this run, removed at the end */
  dir: string;
  dbFile: string;
  port: number;
  uiPort: number;
  /** the jobs' firewall table (inet c2d_jobs) was there before the run: the run leaves it, else teardown removes it */
  nftTableBefore?: boolean;
  /** net.ipv4.ip_forward before the run: the process backend's job networks turn it on, the teardown puts it back */
  ipForwardBefore?: string;
}

/** A new state file for this run; global-setup publishes its path in C2D_TEST_STATE (inherited by test workers). */
export const newStateFile = (): string => path.join(os.tmpdir(), `c2d-jest-${process.pid}-${Date.now()}.json`);

/** The run's shared state (Temporal address etc.), written by global-setup. */
export function testState(): TestState {
  const file = process.env.C2D_TEST_STATE;
  if (!file) throw new Error('C2D_TEST_STATE is not set: run the tests through jest (global-setup starts Temporal)');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as TestState;
}
