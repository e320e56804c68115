import fs from 'node:fs';
import path from 'node:path';
import { SANDBOXED_PROGRAMS } from '../../src/compute/process/reach';

const entrypoints = path.resolve(__dirname, '../../src/entrypoints');

describe('sandboxed step programs', () => {
  // The sandbox binds (or the worker copies, see reach.ts) these files alone: no other module of ours, no node_modules.
  test.each(SANDBOXED_PROGRAMS.map((p) => p.replace(/\.js$/, '.ts')))('when %s is compiled, then it loads only Node built-ins', (file) => {
    const source = fs.readFileSync(path.join(entrypoints, file), 'utf8');
    const staticImports = [...source.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)].filter((m) => !m[1]).map((m) => m[2]);
    const dynamicImports = [...source.matchAll(/(?:import|require)\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]);
    const loaded = [...staticImports, ...dynamicImports];
    expect(loaded).toContain('node:fs');
    for (const spec of loaded) expect(spec).toMatch(/^node:/);
  });
});
