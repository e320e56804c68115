import { outputFilter } from './output-filter';
import type { AnyPlugin } from './registry';
import { webhook } from './webhook';

export { createPluginActivities, type PluginActivity, type PluginActivityDeps } from './activities';
export { definePlugin, type PluginContext, PluginRefusal, type PublisherPlugin } from './plugin';
export { type AnyPlugin, checkPluginSettings, loadPluginModules, planPlugins, PluginRegistry } from './registry';
export * from './types';
export { outputFilter, webhook };

/** The plugins every worker has. */
export const builtinPlugins: readonly AnyPlugin[] = [outputFilter, webhook];
