// Flat ESLint config. Three jobs beyond style: keep imports flowing with the data
// (docs/architecture.md: api → temporal → (workflows ⇢ activities) → {chain, assets, compute, storage} → domain),
// keep src/ (what the provider image ships) free of tools/, test/ and bench/, and keep workflow code deterministic.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importPlugin from 'eslint-plugin-import';

const layer = (name) => `./src/${name}`;
// For each layer, the layers it must never import (everything "upstream" of it).
const upstream = {
  domain: ['config', 'api', 'temporal', 'workflows', 'activities', 'chain', 'assets', 'compute', 'storage', 'plugins', 'entrypoints'],
  config: ['api', 'temporal', 'workflows', 'activities', 'chain', 'assets', 'compute', 'storage', 'plugins', 'entrypoints'],
  chain: ['api', 'temporal', 'workflows', 'activities', 'entrypoints'],
  assets: ['api', 'temporal', 'workflows', 'activities', 'entrypoints'],
  compute: ['api', 'temporal', 'workflows', 'activities', 'entrypoints'],
  storage: ['api', 'temporal', 'workflows', 'activities', 'entrypoints'],
  activities: ['api', 'temporal', 'workflows', 'entrypoints'],
  workflows: ['api', 'temporal', 'chain', 'assets', 'compute', 'storage', 'config', 'entrypoints'],
  temporal: ['api', 'activities', 'entrypoints'],
  api: ['activities', 'entrypoints'],
  plugins: ['api', 'temporal', 'workflows', 'entrypoints'],
  // the guarded fetcher runs inside the configure step's sandbox too: Node built-ins only, nothing of ours
  net: ['domain', 'config', 'api', 'temporal', 'workflows', 'activities', 'chain', 'assets', 'compute', 'storage', 'plugins', 'entrypoints'],
};
const zones = [
  ...Object.entries(upstream).flatMap(([target, froms]) =>
    froms.map((from) => ({ target: layer(target), from: layer(from), message: `${target} must not import ${from} (see docs: import direction)` })),
  ),
  // src/ is what the provider image ships: it never reaches into the dev tooling, the tests or the benchmarks
  // (tools/, test/ and bench/ may import src/).
  ...['tools', 'test', 'bench'].map((from) => ({
    target: './src',
    from: `./${from}`,
    message: `src must not import ${from}/ (src is what the provider image ships)`,
  })),
];

const nodeBuiltins = [
  'fs',
  'path',
  'os',
  'child_process',
  'crypto',
  'http',
  'https',
  'net',
  'stream',
  'util',
  'events',
  'worker_threads',
  'process',
  'timers',
  'dns',
  'zlib',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '*.config.js', '*.config.mjs', 'tools/demo/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { import: importPlugin },
    settings: { 'import/resolver': { typescript: { project: './tsconfig.json' } } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/only-throw-error': 'error',
      'import/no-cycle': ['error', { maxDepth: 10 }],
      'import/no-restricted-paths': ['error', { zones }],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    // Workflow code is replayed: no I/O, no Node built-ins, no heavy SDKs, activities by type only.
    files: ['src/workflows/**/*.ts', 'src/domain/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.flatMap((m) => [
              { name: m, message: 'no Node built-ins in deterministic code' },
              { name: `node:${m}`, message: 'no Node built-ins in deterministic code' },
            ]),
            { name: 'ethers', message: 'no chain access in deterministic code' },
            { name: 'pino', message: 'use the workflow logger' },
            { name: '@kubernetes/client-node', message: 'backends are reached through activities' },
            { name: '@temporalio/client', message: 'workflows use @temporalio/workflow' },
            { name: '@temporalio/worker', message: 'workflows use @temporalio/workflow' },
            { name: '@temporalio/activity', message: 'workflows use @temporalio/workflow' },
          ],
          patterns: [{ group: ['**/activities', '**/activities/**'], allowTypeImports: true, message: 'import activities by type only (proxyActivities)' }],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' },
        { name: 'setInterval', message: 'use sleep() in a loop' },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts', 'src/entrypoints/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
