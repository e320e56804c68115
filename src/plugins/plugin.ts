import type { z } from 'zod';
import type { JobWorkspace } from '../compute/backend';
import type { Logger } from '../domain/logger';
import type { FetchPolicy } from '../net/guarded-fetch';
import type { PluginCall, PluginPolicy, PluginStage } from './types';

/** What a plugin's `run` gets: its options from the settings, the job, and the job's workspace. */
export interface PluginContext<O> {
  options: O;
  call: PluginCall;
  /** bound to jobId, plugin and stage; never log data or secrets */
  logger: Logger;
  /** the job's inputs and outputs (throws on a backend without workspace access, and after cleanup, i.e. at afterPublish) */
  workspace: () => JobWorkspace;
  /** aborted when the activity is cancelled */
  signal: AbortSignal;
  /** seconds one attempt may take, as the workflow set it */
  timeoutSeconds: number;
  /** what a plugin's own requests may reach besides public addresses (C2D_ALLOWED_PRIVATE_HOSTS); use src/net/guarded-fetch.ts; absent: public only */
  fetchPolicy?: FetchPolicy;
}

/**
 * A publisher plugin: one activity (type `plugin.<name>`) the job workflow calls at a stage. Settings
 * enable it per environment (and per dataset); see README "Publisher plugins".
 */
export interface PublisherPlugin<O = unknown> {
  name: string;
  /** where it runs when the settings do not say */
  defaultStage: PluginStage;
  /** stages it makes sense at (default: all); the worker refuses settings that put it elsewhere */
  stages?: readonly PluginStage[];
  /** checks and defaults the settings' `options` when the worker starts, and again on every call */
  options?: z.ZodType<O>;
  /** overrides of the default timeout and retry policy (settings override these in turn) */
  policy?: Partial<PluginPolicy>;
  /** Does the work. Throw PluginRefusal to refuse the job; any other error is retried, then fails the job with a generic message. */
  run(ctx: PluginContext<O>): Promise<void>;
}

/**
 * Thrown by a plugin to refuse the job (e.g. results that break the publisher's rules). Not retried.
 * The message reaches the consumer and the workflow history: say which rule was broken, never the data that broke it.
 */
export class PluginRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginRefusal';
  }
}

/** Types a plugin module's export: `export default definePlugin({ ... })`. */
export const definePlugin = <O>(plugin: PublisherPlugin<O>): PublisherPlugin<O> => plugin;
