import path from 'node:path';

/** The clone's root, whether a tool runs compiled (dist/tools/…) or from source (tools/…, under jest). */
export const repoRoot = path.resolve(__dirname, __filename.endsWith('.ts') ? '..' : '../..');

/** The compiled provider programs (api, worker, step programs): what the provider image ships. */
export const entrypointsDir = path.join(repoRoot, 'dist/src/entrypoints');

/** The compiled tools (dev launcher, dev chain, …). */
export const toolsDir = path.join(repoRoot, 'dist/tools');
