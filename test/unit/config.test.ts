import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { scratchDirs } from '../helpers/scratch';
import { ValidationError } from '../../src/domain/errors';

const tmp = scratchDirs('c2d-config-');

describe('loadConfig', () => {
  it('when nothing is set, then one free process environment and a generated, persisted provider key', () => {
    const dir = tmp();
    const a = loadConfig({ C2D_DATA_DIR: dir });
    expect(a.environments).toHaveLength(1);
    expect(a.environments[0]).toMatchObject({ id: 'process-free', priceMin: 0, backend: 'process' });
    expect(a.api.port).toBe(8030);
    expect(a.providerPrivateKey).toMatch(/^0x[0-9a-f]{64}$/);
    expect(loadConfig({ C2D_DATA_DIR: dir }).providerPrivateKey).toBe(a.providerPrivateKey);
    expect(fs.statSync(path.join(dir, 'provider.key')).mode & 0o077).toBe(0);
  });

  it('when a setting is invalid, then the error names the variable', () => {
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_API_PORT: 'eighty' })).toThrow(/C2D_API_PORT/);
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_PROVIDER_PRIVATE_KEY: '0x12' })).toThrow(ValidationError);
  });

  it('when the environments file is YAML with a duplicate id, then it is refused with the reason', () => {
    const dir = tmp();
    const file = path.join(dir, 'envs.yaml');
    fs.writeFileSync(file, '- id: a\n- id: a\n');
    expect(() => loadConfig({ C2D_DATA_DIR: dir, C2D_ENVIRONMENTS_FILE: file })).toThrow(/duplicate environment id a/);
    fs.writeFileSync(file, '- id: small\n  ramGB: 0.5\n  maxJobs: 1\n');
    expect(loadConfig({ C2D_DATA_DIR: dir, C2D_ENVIRONMENTS_FILE: file }).environments[0]).toMatchObject({
      id: 'small',
      ramGB: 0.5,
      maxJobs: 1,
      storageExpiry: 604800,
    });
  });

  it('when runtimes are configured, then images map to absolute host binaries', () => {
    const c = loadConfig({ C2D_DATA_DIR: tmp(), C2D_RUNTIMES: '{"python":"/usr/bin/python3","r-base":{"command":"/usr/bin/Rscript","names":["Rscript"]}}' });
    expect(c.runtimes.python).toEqual({ command: '/usr/bin/python3', names: ['python3', 'python'] });
    expect(c.runtimes['r-base']).toEqual({ command: '/usr/bin/Rscript', names: ['Rscript'] });
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_RUNTIMES: '{"node":"node"}' })).toThrow(/absolute path/);
  });
});
