import crypto from 'node:crypto';
import { z } from 'zod';
import type { JobWorkspace, WorkspaceFile } from '../compute/backend';
import { type Line, MAX_LINE_BYTES, readLines } from './lines';
import { PatternMatcher, PatternTimeout } from './pattern-worker';
import { definePlugin, PluginRefusal } from './plugin';

const regex = z.string().refine((s) => {
  try {
    new RegExp(s, 'u');
    return true;
  } catch {
    return false;
  }
}, 'not a valid regular expression');

export const outputFilterOptions = z.object({
  /** refuse: the job fails (62) and no output is published; redact: offending lines are replaced, files over maxBytes withheld, the job goes on */
  mode: z.enum(['refuse', 'redact']).default('refuse'),
  /** bytes one output file may have */
  maxBytes: z.number().int().positive().optional(),
  /** regular expressions (JavaScript, `u` flag); a line with a match offends */
  patterns: z.array(regex).default([]),
  /** an output line equal to an input row (after trimming blanks) offends */
  verbatimInputRows: z.boolean().default(true),
  /** input rows shorter than this (trimmed) are too trivial to count (`0`, `true`, a date) */
  minRowLength: z.number().int().positive().default(8),
  /** the first line of each input is a header, not a row */
  ignoreHeader: z.boolean().default(true),
  /** distinct input rows remembered at most (about 40 bytes each); more: the job is refused, the check could not be made */
  maxInputRows: z.number().int().positive().default(5_000_000),
  /** the algorithm's log is checked like an output */
  checkLog: z.boolean().default(true),
  /** what a redacted line or match becomes */
  replacement: z.string().default('[redacted]'),
  /** bytes of one line the filter reads at most; a longer line offends (it could not be checked whole) */
  maxLineBytes: z.number().int().positive().default(MAX_LINE_BYTES),
  /** ms the patterns may take on one batch of lines (up to 1 MiB), in their own thread; past it the job is refused: the outputs could not be checked */
  patternTimeoutMs: z.number().int().positive().default(5_000),
});
export type OutputFilterOptions = z.infer<typeof outputFilterOptions>;

const rowKey = (text: string): string => crypto.createHash('sha256').update(text).digest('base64').slice(0, 22);

/** Hashes of the inputs' non-trivial rows (hashes, so the worker holds no copy of the data). */
async function inputRows(ws: JobWorkspace, o: OutputFilterOptions): Promise<Set<string>> {
  const rows = new Set<string>();
  for (const file of await ws.inputs()) {
    let first = true;
    for await (const line of readLines(ws.open(file))) {
      const text = line.text.trim();
      if (first && o.ignoreHeader) {
        first = false;
        continue;
      }
      first = false;
      if (text.length < o.minRowLength) continue;
      rows.add(rowKey(text));
      if (rows.size > o.maxInputRows) throw new PluginRefusal(`the inputs have more than ${o.maxInputRows} rows, too many to check the outputs against`);
    }
  }
  return rows;
}

interface Findings {
  copiedRows: number;
  patternLines: number;
  oversized: number;
  longLines: number;
  names: number;
}

/** Lines sent to the pattern thread at once: few enough bytes that a slow batch is a slow pattern. */
const BATCH_LINES = 1024;
const BATCH_BYTES = 1024 * 1024;

const LOG_WITHHELD = Buffer.from('[the algorithm log was withheld by the output filter]\n');

function describe(f: Findings): string {
  const parts: string[] = [];
  const n = (count: number, one: string, many: string): string => `${count} ${count === 1 ? one : many}`;
  if (f.copiedRows > 0) parts.push(`${n(f.copiedRows, 'output line copies', 'output lines copy')} an input row verbatim`);
  if (f.patternLines > 0) parts.push(`${n(f.patternLines, 'output line matches', 'output lines match')} a pattern the publisher refuses`);
  if (f.oversized > 0) parts.push(`${n(f.oversized, 'output file is', 'output files are')} over the size the publisher allows`);
  if (f.longLines > 0) parts.push(`${n(f.longLines, 'output line is', 'output lines are')} too long to check`);
  if (f.names > 0) parts.push(`${n(f.names, 'output file name offends', 'output file names offend')} like a line would`);
  return parts.join('; ');
}

/**
 * Built-in plugin 1, Ocean's "Filtering results" (status 50): checks every output (and the algorithm
 * log) for lines copied verbatim from an input row, lines matching the publisher's patterns, and
 * files over a size; refuses the results or redacts them in place before publishing collects them.
 * Messages and logs name counts, files and line numbers, never the content.
 */
export const outputFilter = definePlugin<OutputFilterOptions>({
  name: 'outputFilter',
  defaultStage: 'afterAlgorithm',
  stages: ['afterAlgorithm', 'beforePublish'],
  options: outputFilterOptions,
  policy: { timeoutSeconds: 600 },
  async run({ options: o, workspace, logger }) {
    const ws = workspace();
    const rows = o.verbatimInputRows ? await inputRows(ws, o) : new Set<string>();
    const total: Findings = { copiedRows: 0, patternLines: 0, oversized: 0, longLines: 0, names: 0 };
    const offendingLog: WorkspaceFile[] = [];
    const copied = (text: string): boolean => {
      const trimmed = text.trim();
      return rows.size > 0 && trimmed.length >= o.minRowLength && rows.has(rowKey(trimmed));
    };
    const matcher = o.patterns.length > 0 ? await PatternMatcher.start(o.patterns, o.replacement, o.patternTimeoutMs) : null;
    try {
      const outputs = await ws.outputs();
      for (const [index, file] of outputs.entries()) {
        if (file.kind === 'log' && !o.checkLog) continue;
        // A name carries data as well as a line does: checked like one, and never logged when it offends.
        if (file.kind === 'output') {
          const [byPattern] = matcher ? await matcher.match([file.name]) : [null];
          if (copied(file.name) || byPattern != null) {
            total.names++;
            logger.warn({ output: index }, 'an output file name offends');
            if (o.mode === 'redact') await ws.replaceOutput(file, null);
            continue;
          }
        }
        if (o.maxBytes !== undefined && file.size > o.maxBytes) {
          total.oversized++;
          logger.warn({ file: file.name, size: file.size, maxBytes: o.maxBytes }, 'output over the size limit');
          if (o.mode === 'redact') await ws.replaceOutput(file, file.kind === 'log' ? LOG_WITHHELD : null);
          else if (file.kind === 'log') offendingLog.push(file);
          continue;
        }
        const redacted: Buffer[] = [];
        const found = { copiedRows: 0, patternLines: 0, longLines: 0, lines: [] as number[] };
        let n = 0;
        let batch: Line[] = [];
        let batchBytes = 0;
        const check = async (): Promise<void> => {
          const matched = matcher ? await matcher.match(batch.map((l) => l.text)) : [];
          for (const [i, line] of batch.entries()) {
            n++;
            let text = line.text;
            if (line.cut) {
              found.longLines++;
              found.lines.push(n);
              text = o.replacement;
            } else if (copied(text)) {
              found.copiedRows++;
              found.lines.push(n);
              text = o.replacement;
            } else if (matched[i] != null) {
              found.patternLines++;
              found.lines.push(n);
              text = matched[i];
            }
            if (o.mode === 'redact') redacted.push(Buffer.from(text + (line.eol || (line.cut ? '\n' : ''))));
          }
          batch = [];
          batchBytes = 0;
        };
        for await (const line of readLines(ws.open(file), o.maxLineBytes)) {
          batch.push(line);
          batchBytes += line.text.length;
          if (batch.length >= BATCH_LINES || batchBytes >= BATCH_BYTES) await check();
        }
        await check();
        if (found.lines.length === 0) continue;
        total.copiedRows += found.copiedRows;
        total.patternLines += found.patternLines;
        total.longLines += found.longLines;
        logger.warn(
          {
            file: file.name,
            kind: file.kind,
            lines: found.lines.slice(0, 20),
            copiedRows: found.copiedRows,
            patternLines: found.patternLines,
            longLines: found.longLines,
          },
          'output lines offend',
        );
        if (o.mode === 'redact') await ws.replaceOutput(file, Buffer.concat(redacted));
        else if (file.kind === 'log') offendingLog.push(file);
      }
    } catch (err) {
      if (err instanceof PatternTimeout) {
        // the log is published even when outputs are not: unchecked, it goes too
        const log = o.checkLog ? (await ws.outputs()).find((f) => f.kind === 'log') : undefined;
        if (log) await ws.replaceOutput(log, LOG_WITHHELD);
        throw new PluginRefusal(`${err.message}: the outputs could not be checked; no output was published`);
      }
      throw err;
    } finally {
      await matcher?.close();
    }

    const summary = describe(total);
    if (!summary) return;
    if (o.mode === 'redact') {
      logger.info({ ...total }, 'outputs redacted');
      return;
    }
    // The outputs stay as they are (the workflow publishes none of them); a log that offends is replaced, as it is published anyway.
    for (const file of offendingLog) await ws.replaceOutput(file, LOG_WITHHELD);
    throw new PluginRefusal(`${summary}; no output was published`);
  },
});
