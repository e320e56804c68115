import fs from 'node:fs';
import path from 'node:path';

/**
 * The workflow paths whose histories `npm run record:histories` (tools/record-histories.ts) records and
 * test/workflows/replay.test.ts replays: one file each, test/fixtures/histories/<name>.json.
 */
export const recordedHistories = [
  'success',
  'stop-by-owner',
  'cancel-request',
  'stop-while-waiting-for-slot',
  // a job that queued longer than its placement stays fresh: placed again (placeJob) once granted
  'granted-after-queueing',
  'deadline',
  'authorization-refused-dataset',
  'authorization-refused-algorithm',
  'configure-failed',
  'algorithm-failed',
  'publish-failed',
  'plugin-before-provision-refused',
  'plugin-after-algorithm-and-after-publish',
  'plugin-after-algorithm-refused',
  'orders-verified',
  'order-refused',
  // a docker environment: the image pull as its own activity, then the algorithm
  'docker-image-pull',
  // the capacity workflow, with a grant, a waiter that left and a grant after a release
  'environment-slots',
] as const;

export type RecordedHistory = (typeof recordedHistories)[number];

/** The repository's root: the nearest folder with a package.json (this file runs from test/ under jest, from dist/test/ in the recorder). */
function repositoryRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

export const historiesDir = path.join(repositoryRoot(), 'test/fixtures/histories');

export const historyFile = (name: RecordedHistory): string => path.join(historiesDir, `${name}.json`);
