import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { untraversable } from '../../src/compute/process/host';

describe('untraversable', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-host-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  test('when a directory on the way is 0700, then it is named', () => {
    fs.chmodSync(root, 0o700);
    fs.mkdirSync(path.join(root, 'a'), { mode: 0o755 });
    expect(untraversable(path.join(root, 'a', 'b'), 65534, 65534)).toBe(root);
  });

  test('when every directory is o+x, then nothing blocks', () => {
    fs.chmodSync(root, 0o711);
    fs.mkdirSync(path.join(root, 'a'), { mode: 0o711 });
    expect(untraversable(path.join(root, 'a'), 65534, 65534)).toBeNull();
  });

  test('when the uid owns a 0700 directory, then it may traverse it', () => {
    fs.chmodSync(root, 0o711);
    fs.mkdirSync(path.join(root, 'own'), { mode: 0o700 });
    // as root: a directory given to the sandbox uid; as an ordinary user (who cannot chown): one's own
    const [uid, gid] = process.getuid?.() === 0 ? [65534, 65534] : [process.getuid?.() ?? 0, process.getgid?.() ?? 0];
    if (uid === 65534) fs.chownSync(path.join(root, 'own'), uid, gid);
    expect(untraversable(path.join(root, 'own'), uid, gid)).toBeNull();
    expect(untraversable(path.join(root, 'own'), uid + 1, gid + 1)).toBe(path.join(root, 'own'));
  });
});
