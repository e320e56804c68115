import fs from 'node:fs';
import path from 'node:path';
import { SANDBOXED_MODULES, SANDBOXED_PROGRAMS } from '../../src/compute/process/reach';

const src = path.resolve(__dirname, '../../src');
const sandboxed = [...SANDBOXED_PROGRAMS.map((p) => `entrypoints/${p}`), ...SANDBOXED_MODULES].map((p) => p.replace(/\.js$/, '.ts'));
/** what the programs may load of ours: the modules the sandbox binds next to them */
const ours = SANDBOXED_MODULES.map((m) => `../${m.replace(/\.js$/, '')}`);

describe('sandboxed step programs', () => {
  // The sandbox binds (or the worker copies, see reach.ts) these files alone: no other module of ours, no node_modules.
  test.each(sandboxed)('when %s is compiled, then it loads only Node built-ins (and the sandboxed modules)', (file) => {
    const source = fs.readFileSync(path.join(src, file), 'utf8');
    const staticImports = [...source.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)].filter((m) => !m[1]).map((m) => m[2]);
    const dynamicImports = [...source.matchAll(/(?:import|require)\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]);
    const loaded = [...staticImports, ...dynamicImports];
    expect(loaded.some((s) => s?.startsWith('node:'))).toBe(true);
    for (const spec of loaded) if (!ours.includes(spec ?? '')) expect(spec).toMatch(/^node:/);
  });

  test('when a sandboxed module is listed, then it exists and imports nothing of ours', () => {
    for (const m of SANDBOXED_MODULES) {
      const source = fs.readFileSync(path.join(src, m.replace(/\.js$/, '.ts')), 'utf8');
      expect(source).not.toMatch(/from '\.\.?\//);
    }
  });
});
