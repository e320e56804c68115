import { PullProgress } from '../../src/compute/docker/pull-progress';

const REF = '127.0.0.1:5000/c2d-python-numpy@sha256:' + 'a'.repeat(64);

describe("an image pull's progress as one line", () => {
  test('when Docker reports layers, then the line counts those in place (pulled, or there before) of those seen', () => {
    const p = new PullProgress(REF);
    expect(p.summary()).toBe(`pulling image ${REF}`);
    expect(p.add('Pulling from c2d-python-numpy')).toBe(`pulling image ${REF}: Pulling from c2d-python-numpy`);
    expect(p.add('1a2b3c4d5e6f: Already exists')).toBe(`pulling image ${REF}: 1 of 1 layers`);
    p.add('2b3c4d5e6f7a: Pulling fs layer');
    p.add('3c4d5e6f7a8b: Pulling fs layer');
    expect(p.add('2b3c4d5e6f7a: Downloading')).toBe(`pulling image ${REF}: 1 of 3 layers`);
    expect(p.add('2b3c4d5e6f7a: Pull complete')).toBe(`pulling image ${REF}: 2 of 3 layers`);
    // a layer in place stays in place whatever line comes after
    expect(p.add('2b3c4d5e6f7a: Verifying Checksum')).toBe(`pulling image ${REF}: 2 of 3 layers`);
    expect(p.add('Digest: sha256:' + 'b'.repeat(64))).toBe(`pulling image ${REF}: 2 of 3 layers`);
  });
});
