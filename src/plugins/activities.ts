import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { ComputeBackend, JobWorkspace } from '../compute/backend';
import type { Environment } from '../domain/environment';
import { C2DError } from '../domain/errors';
import type { Logger } from '../domain/logger';
import { type FetchPolicy, STRICT_POLICY } from '../net/guarded-fetch';
import { PluginRefusal } from './plugin';
import type { AnyPlugin, PluginRegistry } from './registry';
import { PLUGIN_FAILED, PLUGIN_REFUSED, pluginActivityName, type PluginCall } from './types';

export interface PluginActivityDeps {
  environments: readonly Environment[];
  backendFor(environmentId: string): ComputeBackend | undefined;
  logger: Logger;
  /** C2D_ALLOWED_PRIVATE_HOSTS for plugins that fetch (the webhook); default: public addresses only */
  fetchPolicy?: FetchPolicy;
}

export type PluginActivity = (call: PluginCall) => Promise<void>;

const HEARTBEAT_MS = 1000;

/** A failure the workflow may show: our own words only, never the plugin error's text (it may quote data). */
const failure = (type: string, message: string, nonRetryable: boolean): ApplicationFailure => ApplicationFailure.create({ type, message, nonRetryable });

/**
 * One activity per plugin (`plugin.<name>`), for the job worker or a plugin worker. Each call reads
 * the plugin's options from this worker's settings (by environment and position: history holds only
 * those), runs the plugin, and converts what it throws: PluginRefusal → non-retryable with its
 * message; anything else → retryable with a generic message (the detail goes to this worker's log).
 */
export function createPluginActivities(registry: PluginRegistry, deps: PluginActivityDeps): Record<string, PluginActivity> {
  const activity =
    (plugin: AnyPlugin): PluginActivity =>
    async (call) => {
      const ctx = Context.current();
      const log = deps.logger.child({ jobId: call.jobId, plugin: plugin.name, stage: call.stage });
      const env = deps.environments.find((e) => e.id === call.environmentId);
      const setting = env?.plugins[call.index];
      if (!setting || setting.name !== plugin.name)
        throw failure(PLUGIN_FAILED, `plugin ${plugin.name} is not enabled on environment ${call.environmentId} of this worker`, true);
      let options: unknown = setting.options;
      if (plugin.options) {
        const parsed = plugin.options.safeParse(setting.options);
        if (!parsed.success) throw failure(PLUGIN_FAILED, `plugin ${plugin.name} has invalid options in the settings`, true);
        options = parsed.data;
      }
      const workspace = (): JobWorkspace => {
        const ws = deps.backendFor(call.environmentId)?.workspace?.(call.jobId);
        if (!ws) throw new C2DError('internal', 'no_workspace', `the backend of environment ${call.environmentId} offers plugins no workspace access`);
        return ws;
      };
      const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_MS);
      try {
        await plugin.run({
          options,
          call,
          logger: log,
          workspace,
          signal: ctx.cancellationSignal,
          timeoutSeconds: Math.round(ctx.info.startToCloseTimeoutMs / 1000),
          fetchPolicy: deps.fetchPolicy ?? STRICT_POLICY,
        });
        log.info({ attempt: ctx.info.attempt }, 'plugin done');
      } catch (err) {
        if (err instanceof CancelledFailure || ctx.cancellationSignal.aborted) throw err;
        // by name too: a plugin module needs nothing from this project to refuse
        if (err instanceof PluginRefusal || (err instanceof Error && err.name === 'PluginRefusal')) {
          log.warn({ reason: err.message }, 'plugin refused the job');
          throw failure(PLUGIN_REFUSED, err.message, true);
        }
        const name = err instanceof Error ? err.name : typeof err;
        log.warn({ attempt: ctx.info.attempt, error: name, message: err instanceof Error ? err.message : String(err) }, 'plugin failed');
        throw failure(PLUGIN_FAILED, `plugin ${plugin.name} failed (${name})`, false);
      } finally {
        clearInterval(timer);
      }
    };
  return Object.fromEntries(registry.all().map((p) => [pluginActivityName(p.name), activity(p)]));
}
