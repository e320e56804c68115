import fs from 'node:fs';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, type ReplayResult, Worker } from '@temporalio/worker';
import { workflowsPath } from '../../src/entrypoints/worker';
import { historiesDir, historyFile, type RecordedHistory, recordedHistories } from './recorded-histories';

/**
 * Every recorded history (one per workflow path, `npm run record:histories`) is replayed against today's
 * workflow code: a change that makes other decisions on a recorded path fails here. Before the first
 * release: re-record after changing a workflow. After it: see docs/workflow-versioning.md.
 */
const RECORD = 'run `npm run record:histories` and commit test/fixtures/histories/';

let results: Map<string, ReplayResult>;

beforeAll(async () => {
  const present = recordedHistories.filter((name) => fs.existsSync(historyFile(name)));
  const histories = present.map((name) => ({ workflowId: name, history: historyFromJSON(JSON.parse(fs.readFileSync(historyFile(name), 'utf8'))) }));
  // one bundle and one replay worker for all of them
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: workflowsPath() });
  results = new Map();
  for await (const result of Worker.runReplayHistories({ workflowBundle }, histories)) results.set(result.workflowId, result);
}, 120_000);

describe('replay of the recorded histories', () => {
  test('when the fixtures are listed, then there is exactly one per recorded path', () => {
    const files = fs.readdirSync(historiesDir).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(recordedHistories.map((name) => `${name}.json`).sort());
  });

  test.each(recordedHistories.map((name) => [name]))(
    'when the history of %s is replayed, then the workflow makes the same decisions',
    (name: RecordedHistory) => {
      if (!fs.existsSync(historyFile(name))) throw new Error(`no recorded history for ${name}: ${RECORD}`);
      const result = results.get(name);
      expect(result).toBeDefined();
      expect(result?.error).toBeUndefined();
    },
  );
});
