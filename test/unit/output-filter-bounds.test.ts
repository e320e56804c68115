import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { jobPaths, stepPaths } from '../../src/compute/process/layout';
import { processWorkspace } from '../../src/compute/process/workspace';
import { type PluginCall, PluginRefusal } from '../../src/plugins';
import { readLines } from '../../src/plugins/lines';
import { outputFilter, outputFilterOptions } from '../../src/plugins/output-filter';
import { silent } from '../workflows/fakes';

/** The output filter's own bounds: names, line length, and patterns that backtrack, on a real process-backend workspace. */

const ROW = 'alice,123-45-6789,Springfield';
let dataDir: string;
let jp: ReturnType<typeof jobPaths>;

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-filter-'));
  jp = jobPaths(dataDir, crypto.randomBytes(16).toString('hex'));
  for (const dir of [path.join(jp.inputs, 'abc123'), jp.outputs, jp.logs]) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(jp.inputs, 'abc123', '0'), `name,ssn,city\n${ROW}\n`);
  fs.writeFileSync(stepPaths(jp, 'algorithm').log, 'started\n');
});
afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

const output = (name: string, text: string): void => fs.writeFileSync(path.join(jp.outputs, name), text);
const outputs = (): string[] => fs.readdirSync(jp.outputs).sort();

function run(options: Record<string, unknown>, entries: { msg: string; fields: object }[] = []): Promise<void> {
  const logger = { ...silent, warn: (fields: object, msg: string) => entries.push({ fields, msg }), child: () => logger };
  return outputFilter.run({
    options: outputFilterOptions.parse(options),
    call: {} as PluginCall,
    logger,
    workspace: () => processWorkspace(jp),
    signal: new AbortController().signal,
    timeoutSeconds: 60,
  });
}

describe('output filter bounds', () => {
  test('when an output file is named after an input row, then refuse mode refuses and no log line carries the name', async () => {
    output(ROW, 'harmless\n');
    const entries: { msg: string; fields: object }[] = [];
    await expect(run({}, entries)).rejects.toThrow(new PluginRefusal('1 output file name offends like a line would; no output was published'));
    expect(JSON.stringify(entries)).not.toContain('alice');
  });

  test('when an output file name matches a pattern, then redact mode withholds that file and keeps the others', async () => {
    output('ssn-111-22-3333.txt', 'harmless\n');
    output('ok.txt', 'fine\n');
    await run({ mode: 'redact', patterns: ['\\d{3}-\\d{2}-\\d{4}'] });
    expect(outputs()).toEqual(['ok.txt']);
  });

  test('when an output is one huge line, then the filter holds at most maxLineBytes of it and says the line was too long to check', async () => {
    output('blob.txt', 'z'.repeat(4 * 1024 * 1024));
    await expect(run({ maxLineBytes: 64 * 1024, verbatimInputRows: false })).rejects.toThrow('1 output line is too long to check');
    await run({ mode: 'redact', maxLineBytes: 64 * 1024, verbatimInputRows: false });
    expect(fs.readFileSync(path.join(jp.outputs, 'blob.txt'), 'utf8')).toBe('[redacted]\n');
  });

  test('when a line is longer than the bound, then readLines yields its start cut and goes on with the next line', async () => {
    const lines = [];
    for await (const l of readLines(
      Readable.from([Buffer.from('ab'), Buffer.from('cdefgh\r\nok\n'), Buffer.from('tail-that-is-long'), Buffer.from('er\nend')]),
      4,
    ))
      lines.push(l);
    expect(lines).toEqual([
      { text: 'abcd', eol: '\r\n', cut: true },
      { text: 'ok', eol: '\n' },
      { text: 'tail', eol: '', cut: true },
      { text: 'end', eol: '' },
    ]);
  });

  test('when a publisher pattern backtracks catastrophically, then it is stopped at its time limit, the job is refused and the event loop kept running', async () => {
    output('evil.txt', `${'a'.repeat(40)}b\n`);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    try {
      await expect(run({ patterns: ['^(a+)+$'], patternTimeoutMs: 500, verbatimInputRows: false })).rejects.toThrow(
        /a pattern took longer than 500 ms on one batch of lines: the outputs could not be checked; no output was published/,
      );
    } finally {
      clearInterval(timer);
    }
    // the loop ran its timers meanwhile: the pattern ran in a thread of its own
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(fs.readFileSync(stepPaths(jp, 'algorithm').log, 'utf8')).toBe('[the algorithm log was withheld by the output filter]\n');
  });
});
