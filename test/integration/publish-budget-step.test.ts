import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PROGRAM = path.resolve('dist/src/entrypoints/publish-step.js');

/** The publish-step program itself (as the sandbox runs it, from dist/): its budget, whatever the step before it let through. */
describe('publish-step within its budget', () => {
  let dir: string;
  let outputs: string;
  let publish: string;
  let report: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-publish-'));
    outputs = path.join(dir, 'outputs');
    publish = path.join(dir, 'publish');
    report = path.join(dir, 'report.json');
    fs.mkdirSync(outputs);
    fs.mkdirSync(publish);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (...flags: string[]) => {
    const r = spawnSync(process.execPath, [PROGRAM, outputs, publish, report, ...flags], { encoding: 'utf8' });
    return { code: r.status, log: r.stdout + r.stderr, report: JSON.parse(fs.readFileSync(report, 'utf8')), published: fs.readdirSync(publish) };
  };

  it('when sparse outputs would pass the byte budget once copied, then it exits 3 and publishes none of them', () => {
    for (const name of ['a', 'b', 'c']) {
      fs.writeFileSync(path.join(outputs, name), '');
      fs.truncateSync(path.join(outputs, name), 400_000);
    }
    const r = run('--max-bytes=1000000', '--max-files=10');
    expect(r).toMatchObject({ code: 3, published: [], report: { files: [], overLimit: 'more than 1000000 bytes of outputs' } });
    expect(r.log).toContain('output limit reached');
  });

  it('when there are more files than the file budget, then it exits 3 and publishes none of them', () => {
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(outputs, `f${i}`), 'x');
    expect(run('--max-bytes=1000000', '--max-files=4')).toMatchObject({ code: 3, published: [], report: { files: [] } });
  });

  it('when outputs are withheld, then nothing is copied and no name reaches its log', () => {
    fs.writeFileSync(path.join(outputs, 'alice-salary-100'), 'x');
    const r = run('--max-bytes=1000000', '--max-files=4', '--withhold');
    expect(r).toMatchObject({ code: 0, published: [], report: { files: [], withheld: true } });
    expect(r.log).not.toContain('alice');
  });

  it('when a file has a second name, then neither name is copied nor shown', () => {
    fs.writeFileSync(path.join(outputs, 'secret-name'), 'x');
    fs.linkSync(path.join(outputs, 'secret-name'), path.join(outputs, 'other-name'));
    fs.writeFileSync(path.join(outputs, 'ok'), 'y');
    const r = run('--max-bytes=1000000', '--max-files=4');
    expect(r).toMatchObject({ code: 0, published: ['ok'], report: { files: [{ filename: 'ok', size: 1 }] } });
    expect(r.log).not.toMatch(/secret-name|other-name/);
  });
});
