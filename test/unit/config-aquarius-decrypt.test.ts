import { loadConfig } from '../../src/config';
import { scratchDirs } from '../helpers/scratch';

const tmp = scratchDirs('c2d-config-');

describe('Aquarius and decrypt settings', () => {
  it('when neither is set, then there is no Aquarius and no extra decrypter (only the provider itself may decrypt)', () => {
    const c = loadConfig({ C2D_DATA_DIR: tmp() });
    expect(c.aquariusUrl).toBeUndefined();
    expect(c.authorizedDecrypters).toEqual([]);
    expect(loadConfig({ C2D_DATA_DIR: tmp(), C2D_AUTHORIZED_DECRYPTERS: '' }).authorizedDecrypters).toEqual([]);
  });

  it('when set, then the Aquarius URL is kept and the decrypters are trimmed and lower-cased', () => {
    const a = `0x${'AB'.repeat(20)}`;
    const b = `0x${'cd'.repeat(20)}`;
    const c = loadConfig({ C2D_DATA_DIR: tmp(), C2D_AQUARIUS_URL: 'https://aquarius.example.org', C2D_AUTHORIZED_DECRYPTERS: ` ${a} ,${b},` });
    expect(c.aquariusUrl).toBe('https://aquarius.example.org');
    expect(c.authorizedDecrypters).toEqual([a.toLowerCase(), b]);
  });

  it('when malformed, then the error names the variable', () => {
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_AQUARIUS_URL: 'ftp://x' })).toThrow(/C2D_AQUARIUS_URL/);
    expect(() => loadConfig({ C2D_DATA_DIR: tmp(), C2D_AUTHORIZED_DECRYPTERS: '0x12,aquarius' })).toThrow(/C2D_AUTHORIZED_DECRYPTERS/);
  });
});
