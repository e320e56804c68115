import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jobPaths, stepPaths } from '../../src/compute/process/layout';
import { processWorkspace } from '../../src/compute/process/workspace';
import { type PluginCall, PluginRefusal } from '../../src/plugins';
import { outputFilter, outputFilterOptions } from '../../src/plugins/output-filter';
import { silent } from '../workflows/fakes';

/** The output filter on a real process-backend workspace (files on disk, as the algorithm left them). */

const ROW = 'alice,123-45-6789,Springfield';
const input = ['name,ssn,city', ROW, 'bob,987-65-4321,Shelbyville', 'x,1', ''].join('\n');

let dataDir: string;
let jp: ReturnType<typeof jobPaths>;

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-filter-'));
  jp = jobPaths(dataDir, crypto.randomBytes(16).toString('hex'));
  for (const dir of [path.join(jp.inputs, 'abc123'), jp.outputs, jp.logs]) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(jp.inputs, 'abc123', '0'), input);
  fs.writeFileSync(stepPaths(jp, 'algorithm').log, 'started\n');
});

afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

const output = (name: string, text: string): void => fs.writeFileSync(path.join(jp.outputs, name), text);
const read = (name: string): string => fs.readFileSync(path.join(jp.outputs, name), 'utf8');

function run(options: Record<string, unknown>): Promise<void> {
  return outputFilter.run({
    options: outputFilterOptions.parse(options),
    call: {} as PluginCall,
    logger: silent,
    workspace: () => processWorkspace(jp),
    signal: new AbortController().signal,
    timeoutSeconds: 60,
  });
}

describe('output filter', () => {
  test('when an output line copies an input row, then it refuses without quoting the row and leaves the outputs for the workflow to withhold', async () => {
    output('summary.csv', `name,ssn,city\ncount,2\n  ${ROW}  \n`);
    const err: unknown = await run({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginRefusal);
    expect((err as Error).message).toBe('1 output line copies an input row verbatim; no output was published');
    expect(read('summary.csv')).toContain(ROW);
  });

  test('when outputs share only the header and trivial rows with the inputs, then they pass', async () => {
    output('summary.csv', 'name,ssn,city\nx,1\ncount,2\n');
    await expect(run({})).resolves.toBeUndefined();
  });

  test('when the algorithm log prints an input row, then the job is refused and the log is replaced before publishing', async () => {
    output('ok.txt', 'fine\n');
    fs.appendFileSync(stepPaths(jp, 'algorithm').log, `${ROW}\n`);
    await expect(run({})).rejects.toThrow('1 output line copies an input row verbatim');
    expect(fs.readFileSync(stepPaths(jp, 'algorithm').log, 'utf8')).toBe('[the algorithm log was withheld by the output filter]\n');
  });

  test('when in redact mode, then copied rows and pattern matches are replaced in place, oversized files withheld, line ends kept', async () => {
    output('rows.csv', `header\r\n${ROW}\r\nssn 111-22-3333 seen\r\nlast`);
    output('big.bin', 'x'.repeat(2000));
    await expect(run({ mode: 'redact', patterns: ['\\d{3}-\\d{2}-\\d{4}'], maxBytes: 1000 })).resolves.toBeUndefined();
    expect(read('rows.csv')).toBe('header\r\n[redacted]\r\nssn [redacted] seen\r\nlast');
    expect(fs.existsSync(path.join(jp.outputs, 'big.bin'))).toBe(false);
    // idempotent: a retried attempt finds nothing more to do
    await run({ mode: 'redact', patterns: ['\\d{3}-\\d{2}-\\d{4}'], maxBytes: 1000 });
    expect(read('rows.csv')).toBe('header\r\n[redacted]\r\nssn [redacted] seen\r\nlast');
  });

  test('when a line matches a publisher pattern or a file is too big, then refuse mode says so by count', async () => {
    output('a.txt', 'token=SECRET-123\n');
    output('b.txt', 'y'.repeat(50));
    await expect(run({ patterns: ['SECRET-\\d+'], maxBytes: 30, verbatimInputRows: false })).rejects.toThrow(
      '1 output line matches a pattern the publisher refuses; 1 output file is over the size the publisher allows; no output was published',
    );
  });

  test('when the algorithm planted a symlink to a host file in its outputs, then the filter neither lists nor follows it', async () => {
    const outside = path.join(dataDir, 'host-secret');
    fs.writeFileSync(outside, `${ROW}\n`);
    fs.symlinkSync(outside, path.join(jp.outputs, 'link.txt'));
    const ws = processWorkspace(jp);
    expect((await ws.outputs()).map((f) => f.name)).toEqual(['algorithm.log']);
    expect(() => ws.open({ name: 'link.txt', kind: 'output', size: 0 })).toThrow('no such output');
    expect(() => ws.open({ name: '../../host-secret', kind: 'output', size: 0 })).toThrow('no such output');
    await expect(run({})).resolves.toBeUndefined();
  });
});
