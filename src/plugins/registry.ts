import path from 'node:path';
import { z } from 'zod';
import type { Environment, PluginSetting } from '../domain/environment';
import { ValidationError } from '../domain/errors';
import type { PublisherPlugin } from './plugin';
import { defaultPluginPolicy, pluginActivityName, type PluginPolicy, type PluginStep } from './types';

export type AnyPlugin = PublisherPlugin<unknown>;

/** The plugins a worker runs, by name. */
export class PluginRegistry {
  private readonly byName = new Map<string, AnyPlugin>();

  constructor(plugins: readonly AnyPlugin[]) {
    for (const p of plugins) {
      if (this.byName.has(p.name)) throw new ValidationError({ plugins: [`two plugins are named ${p.name}`] }, `two plugins are named ${p.name}`);
      this.byName.set(p.name, p);
    }
  }

  get(name: string): AnyPlugin | undefined {
    return this.byName.get(name);
  }

  all(): AnyPlugin[] {
    return [...this.byName.values()];
  }
}

const pluginShape = z.looseObject({ name: z.string(), defaultStage: z.string(), run: z.function() });

/** The plugin a module exports: `export default`, `export const plugin`, or the module itself. */
function pluginOf(mod: unknown): AnyPlugin | null {
  const m = mod as { default?: unknown; plugin?: unknown } | null;
  for (const candidate of [m?.default, m?.plugin, (m?.default as { default?: unknown } | undefined)?.default, m]) {
    if (pluginShape.safeParse(candidate).success) return candidate as AnyPlugin;
  }
  return null;
}

/** Loads the modules the settings name (`module`), relative to `cwd`. */
export async function loadPluginModules(environments: readonly Environment[], cwd = process.cwd()): Promise<AnyPlugin[]> {
  const modules = new Set(environments.flatMap((e) => e.plugins.flatMap((p) => (p.module ? [path.resolve(cwd, p.module)] : []))));
  const loaded: AnyPlugin[] = [];
  for (const file of modules) {
    let mod: unknown;
    try {
      mod = await import(file);
    } catch (err) {
      throw new ValidationError({ plugins: [`cannot load plugin module ${file}: ${(err as Error).message}`] }, `cannot load plugin module ${file}`);
    }
    const plugin = pluginOf(mod);
    if (!plugin) throw new ValidationError({ plugins: [`${file} exports no plugin ({ name, defaultStage, run })`] }, `${file} exports no plugin`);
    if (!loaded.some((p) => p.name === plugin.name)) loaded.push(plugin);
  }
  return loaded;
}

/**
 * Checks every environment's plugin settings against the plugins this worker runs: a plugin served by
 * this worker must exist, sit at a stage it supports and have valid options. Plugins on another task
 * queue are that worker's business (its own check runs when it starts, with `taskQueue` = its queue).
 */
export function checkPluginSettings(environments: readonly Environment[], registry: PluginRegistry, servedQueue?: string): void {
  const problems: string[] = [];
  for (const env of environments) {
    env.plugins.forEach((s, i) => {
      const where = `environment ${env.id}, plugins[${i}] (${s.name})`;
      const local = servedQueue === undefined ? s.taskQueue === undefined : s.taskQueue === servedQueue;
      if (!local) {
        if (servedQueue === undefined && !s.stage)
          problems.push(`${where}: set \`stage\` (the plugin runs on task queue ${s.taskQueue ?? ''}, this worker cannot know its default)`);
        return;
      }
      const plugin = registry.get(s.name);
      if (!plugin) {
        problems.push(
          `${where}: no such plugin; built-ins are ${registry
            .all()
            .map((p) => p.name)
            .join(', ')}, others need \`module\``,
        );
        return;
      }
      const stage = s.stage ?? plugin.defaultStage;
      if (plugin.stages && !plugin.stages.includes(stage)) problems.push(`${where}: cannot run at ${stage}; it runs at ${plugin.stages.join(', ')}`);
      if (plugin.options) {
        const parsed = plugin.options.safeParse(s.options);
        if (!parsed.success) problems.push(`${where}: options: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`);
      }
    });
  }
  if (problems.length > 0) throw new ValidationError({ plugins: problems }, `invalid plugin settings: ${problems.join(' | ')}`);
}

function policyOf(setting: PluginSetting, plugin: AnyPlugin | undefined): PluginPolicy {
  const p: PluginPolicy = { ...defaultPluginPolicy, ...plugin?.policy };
  const policy: PluginPolicy = {
    timeoutSeconds: setting.timeoutSeconds ?? p.timeoutSeconds,
    maxAttempts: setting.maxAttempts ?? p.maxAttempts,
    retryIntervalMs: setting.retryIntervalMs ?? p.retryIntervalMs,
    maxRetryIntervalSeconds: setting.maxRetryIntervalSeconds ?? p.maxRetryIntervalSeconds,
  };
  const scheduleToClose = setting.scheduleToCloseSeconds ?? p.scheduleToCloseSeconds;
  // unlimited attempts need an end: a day
  if (scheduleToClose !== undefined || policy.maxAttempts === 0) policy.scheduleToCloseSeconds = scheduleToClose ?? 24 * 3600;
  return policy;
}

/**
 * The plugins of one job, in settings order: those of its environment whose `datasets` (if any)
 * include one of the job's datasets. Names, stages and policies only: this goes into history.
 */
export function planPlugins(env: Environment, datasetDids: readonly string[], registry: PluginRegistry | undefined): PluginStep[] {
  const steps: PluginStep[] = [];
  env.plugins.forEach((s, index) => {
    if (s.datasets && !s.datasets.some((d) => datasetDids.includes(d))) return;
    const plugin = registry?.get(s.name);
    const stage = s.stage ?? plugin?.defaultStage;
    // a plugin served elsewhere must say its stage: this worker cannot know its default
    if (!stage)
      throw new ValidationError({ plugins: [`environment ${env.id}, plugins[${index}] (${s.name}): set \`stage\` (the plugin runs on another worker)`] });
    steps.push({
      name: s.name,
      stage,
      index,
      activity: pluginActivityName(s.name),
      ...(s.taskQueue ? { taskQueue: s.taskQueue } : {}),
      policy: policyOf(s, plugin),
    });
  });
  return steps;
}
