import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const read = (f: string): string => fs.readFileSync(path.join(root, f), 'utf8');

describe('the settings documentation', () => {
  const settings = [...read('src/config/index.ts').matchAll(/^\s+(C2D_[A-Z0-9_]+):/gm)].map((m) => m[1]!);

  it('when the config schema has a setting, then docs/settings.md and .env.example both document it', () => {
    expect(settings.length).toBeGreaterThan(10);
    const page = read('docs/settings.md');
    const example = read('.env.example');
    expect(settings.filter((s) => !page.includes(`\`${s}\``))).toEqual([]);
    expect(settings.filter((s) => !example.includes(`${s}=`))).toEqual([]);
  });
});
