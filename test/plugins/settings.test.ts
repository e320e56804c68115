import crypto from 'node:crypto';
import { type Environment, type EnvironmentInput, environmentSchema } from '../../src/domain/environment';
import { builtinPlugins, checkPluginSettings, planPlugins, PluginRegistry } from '../../src/plugins';
import { signBody } from '../../src/plugins/webhook';

const env = (plugins: EnvironmentInput['plugins']): Environment => environmentSchema.parse({ id: 'e', plugins });
const registry = new PluginRegistry(builtinPlugins);

describe('plugin settings', () => {
  test('when the settings name an unknown plugin, a wrong stage or bad options, then the worker refuses to start and says which entry', () => {
    const check =
      (plugins: EnvironmentInput['plugins']): (() => void) =>
      () =>
        checkPluginSettings([env(plugins)], registry);
    expect(check([{ name: 'nope' }])).toThrow('environment e, plugins[0] (nope): no such plugin; built-ins are outputFilter, webhook');
    expect(check([{ name: 'outputFilter', stage: 'afterPublish' }])).toThrow('cannot run at afterPublish; it runs at afterAlgorithm, beforePublish');
    expect(check([{ name: 'webhook', options: { url: 'ftp://x' } }])).toThrow('plugins[0] (webhook): options:');
    expect(check([{ name: 'outputFilter', options: { patterns: ['('] } }])).toThrow('not a valid regular expression');
    expect(check([{ name: 'custom', taskQueue: 'elsewhere' }])).toThrow('set `stage`');
    expect(
      check([
        { name: 'custom', taskQueue: 'elsewhere', stage: 'afterAlgorithm' },
        { name: 'webhook', options: { url: 'https://h.example/x', secret: 's'.repeat(16) } },
      ]),
    ).not.toThrow();
  });

  test('when a job is planned, then it gets names, stages, positions and policies only — never options', () => {
    const e = env([
      { name: 'outputFilter', options: { patterns: ['secret-pattern'] } },
      { name: 'webhook', datasets: ['did:op:a'], options: { url: 'https://h.example/hook?token=t0k3n', secret: 'k'.repeat(16) } },
      { name: 'custom', stage: 'beforeProvision', taskQueue: 'q', maxAttempts: 5 },
    ]);
    const plan = planPlugins(e, ['did:op:a'], registry);
    expect(plan).toEqual([
      {
        name: 'outputFilter',
        stage: 'afterAlgorithm',
        index: 0,
        activity: 'plugin.outputFilter',
        policy: { timeoutSeconds: 600, maxAttempts: 3, retryIntervalMs: 1000, maxRetryIntervalSeconds: 30 },
      },
      {
        name: 'webhook',
        stage: 'afterPublish',
        index: 1,
        activity: 'plugin.webhook',
        policy: { timeoutSeconds: 30, maxAttempts: 0, retryIntervalMs: 1000, maxRetryIntervalSeconds: 600, scheduleToCloseSeconds: 86400 },
      },
      {
        name: 'custom',
        stage: 'beforeProvision',
        index: 2,
        activity: 'plugin.custom',
        taskQueue: 'q',
        policy: { timeoutSeconds: 60, maxAttempts: 5, retryIntervalMs: 1000, maxRetryIntervalSeconds: 30 },
      },
    ]);
    expect(JSON.stringify(plan)).not.toMatch(/secret-pattern|t0k3n|kkkk/);
    expect(planPlugins(e, ['did:op:b'], registry).map((p) => p.name)).toEqual(['outputFilter', 'custom']);
  });

  test('when a webhook body is signed, then the signature is sha256=<hex HMAC-SHA256 of the exact body>', () => {
    const body = '{"jobId":"x"}';
    expect(signBody(body, 'k'.repeat(16))).toBe(`sha256=${crypto.createHmac('sha256', 'k'.repeat(16)).update(body).digest('hex')}`);
  });
});
