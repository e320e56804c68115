import fs from 'node:fs';
import { testState } from './state';

export default function globalTeardown(): void {
  const state = testState();
  try {
    process.kill(state.temporalPid, 'SIGTERM');
  } catch {
    // already gone
  }
  fs.rmSync(state.dir, { recursive: true, force: true });
  fs.rmSync(process.env.C2D_TEST_STATE ?? '', { force: true });
}
