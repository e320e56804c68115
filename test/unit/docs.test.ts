import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const read = (f: string): string => fs.readFileSync(path.join(root, f), 'utf8');

describe('the settings documentation', () => {
  const settings = [...read('src/config/index.ts').matchAll(/^\s+(C2D_[A-Z_]+):/gm)].map((m) => m[1]!);

  it('when the config schema has a setting, then the README table and .env.example both document it', () => {
    expect(settings.length).toBeGreaterThan(10);
    const readme = read('README.md');
    const example = read('.env.example');
    expect(settings.filter((s) => !readme.includes(`\`${s}\``))).toEqual([]);
    expect(settings.filter((s) => !example.includes(`${s}=`))).toEqual([]);
  });
});
