import type { PluginStage } from '../domain/environment';

/**
 * What the job workflow knows of publisher plugins: plain data, no Node, no options (those stay in the
 * worker's settings), so the workflow may import it and everything here may land in history.
 */
export type { PluginStage };

/** How hard Temporal tries one plugin call: per-attempt timeout and retry policy. */
export interface PluginPolicy {
  timeoutSeconds: number;
  /** 0: until scheduleToCloseSeconds runs out */
  maxAttempts: number;
  retryIntervalMs: number;
  maxRetryIntervalSeconds: number;
  scheduleToCloseSeconds?: number;
}

/** One plugin of a job, decided when the job is authorized (environment settings, dataset filter). */
export interface PluginStep {
  name: string;
  stage: PluginStage;
  /** position in the environment's `plugins` list: the activity reads its options from there */
  index: number;
  /** the activity type the workflow calls */
  activity: string;
  /** another worker's task queue; absent: the job's own */
  taskQueue?: string;
  policy: PluginPolicy;
}

/** The input of a plugin activity: ids and the job's state, never file locations or keys. */
export interface PluginCall {
  jobId: string;
  environmentId: string;
  owner: string;
  plugin: string;
  index: number;
  stage: PluginStage;
  datasetDids: string[];
  algorithmDid: string;
  /** the job's status as the plugin runs; at afterPublish the final one */
  status: number;
  statusText: string;
  stopreq: number;
  /** epoch seconds, as in the job object */
  dateCreated: string;
  dateFinished: string | null;
  /** files stored for the consumer (afterPublish), else 0 */
  results: number;
}

/** A plugin's activity type: one per plugin, whatever stage it runs at. */
export const pluginActivityName = (name: string): string => `plugin.${name}`;

/** Failure type of a plugin that refused the job (non-retryable; its message is shown to the consumer). */
export const PLUGIN_REFUSED = 'plugin_refused';
/** Failure type of a plugin that broke (its message is generic: the error's own text may hold data). */
export const PLUGIN_FAILED = 'plugin_failed';

/** Attempts and timeouts of a plugin that says nothing else. */
export const defaultPluginPolicy: PluginPolicy = { timeoutSeconds: 60, maxAttempts: 3, retryIntervalMs: 1000, maxRetryIntervalSeconds: 30 };
