import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { environmentSchema } from '../../src/domain/environment';
import { createPluginActivities, definePlugin, type PluginCall, PluginRegistry } from '../../src/plugins';
import { silent } from '../workflows/fakes';

const DATA = 'alice,123-45-6789';
const refusesByName = definePlugin({
  name: 'strict',
  defaultStage: 'afterAlgorithm',
  run: () => Promise.reject(Object.assign(new Error('outputs break rule 3'), { name: 'PluginRefusal' })),
});
const breaks = definePlugin({ name: 'fragile', defaultStage: 'afterAlgorithm', run: () => Promise.reject(new TypeError(`cannot read ${DATA}`)) });
const environments = [environmentSchema.parse({ id: 'e', plugins: [{ name: 'strict' }, { name: 'fragile' }] })];
const activities = createPluginActivities(new PluginRegistry([refusesByName, breaks]), { environments, backendFor: () => undefined, logger: silent });

const call = (plugin: string, index: number): PluginCall => ({
  jobId: 'a'.repeat(32),
  environmentId: 'e',
  owner: '0x1',
  plugin,
  index,
  stage: 'afterAlgorithm',
  datasetDids: [],
  algorithmDid: 'raw',
  status: 50,
  statusText: 'Filtering results',
  stopreq: 0,
  dateCreated: '0',
  dateFinished: null,
  results: 0,
});

async function failureOf(name: string, index: number): Promise<ApplicationFailure> {
  const err: unknown = await new MockActivityEnvironment().run(activities[`plugin.${name}`]!, call(name, index)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('plugin activities', () => {
  test('when a module plugin throws an error named PluginRefusal, then it becomes a non-retryable refusal with its message', async () => {
    const f = await failureOf('strict', 0);
    expect(f).toMatchObject({ type: 'plugin_refused', nonRetryable: true, message: 'outputs break rule 3' });
  });

  test('when a plugin breaks, then the failure is retryable and generic: the error text (which may quote data) stays out', async () => {
    const f = await failureOf('fragile', 1);
    expect(f).toMatchObject({ type: 'plugin_failed', nonRetryable: false, message: 'plugin fragile failed (TypeError)' });
    expect(JSON.stringify({ message: f.message, details: f.details, cause: f.cause?.message })).not.toContain(DATA);
  });

  test('when the call names a plugin position that is not that plugin, then it fails for good', async () => {
    const f = await failureOf('fragile', 0);
    expect(f).toMatchObject({ type: 'plugin_failed', nonRetryable: true });
  });
});
