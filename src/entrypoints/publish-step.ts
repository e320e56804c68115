/**
 * The publishing step, run inside its sandbox: copies the top-level regular files of /data/outputs
 * (never symlinks, dirs, devices or hard-linked files the algorithm may have planted) to the job's
 * publish dir and reports what it collected, within a budget of bytes and files.
 * Usage: node publish-step.js <outputs> <publish dir> <report.json> [--max-bytes=N] [--max-files=N] [--withhold]
 * --withhold: publish no output and name none (a plugin refused them, or the algorithm passed the limit).
 * --flags-on-stdin instead of the flags: started ahead of its turn (while the algorithm runs), it waits for
 * them on its stdin, one line; end of file without a line: it is not wanted and ends at once, saying nothing.
 * Node built-ins only (no node_modules here).
 */
import fs from 'node:fs';
import path from 'node:path';

/** The exit code when the budget ran out (PUBLISH_OVER_LIMIT_EXIT in src/compute/steps.ts): nothing is published then. */
const OVER_LIMIT_EXIT = 3;

interface Budget {
  maxBytes: number;
  maxFiles: number;
  withhold: boolean;
}

function parseFlags(flags: string[]): Budget | string {
  const budget: Budget = { maxBytes: Number.MAX_SAFE_INTEGER, maxFiles: Number.MAX_SAFE_INTEGER, withhold: false };
  for (const flag of flags) {
    const m = /^--(max-bytes|max-files)=(\d+)$/.exec(flag);
    if (m?.[1] === 'max-bytes') budget.maxBytes = Number(m[2]);
    else if (m?.[1] === 'max-files') budget.maxFiles = Number(m[2]);
    else if (flag === '--withhold') budget.withhold = true;
    else return `unknown argument ${flag}`;
  }
  return budget;
}

/** As lstat's st_blocks and st_size: the larger, so a sparse file costs what its copy will and a preallocated one what it holds. */
const cost = (st: fs.Stats): number => Math.max(st.size, st.blocks * 512);

/** A name as the log shows it: quoted, so a name cannot forge a line of its own. */
const shown = (name: string): string => JSON.stringify(name);

function main(flags: string[]): number {
  const [outputs, publish, reportFile] = process.argv.slice(2);
  const budget = parseFlags(flags);
  if (!outputs || !publish || !reportFile || typeof budget === 'string') {
    console.error(
      `usage: publish-step <outputs> <publish dir> <report.json> [--max-bytes=N] [--max-files=N] [--withhold]${typeof budget === 'string' ? `: ${budget}` : ''}`,
    );
    return 1;
  }
  if (budget.withhold) {
    fs.writeFileSync(reportFile, JSON.stringify({ files: [], withheld: true }));
    console.log('outputs withheld: none published');
    return 0;
  }
  const files: { filename: string; size: number }[] = [];
  // only counts: a name that is not published is not shown either (the output filter never saw it)
  const skipped = { notRegular: 0, hardLinked: 0 };
  let used = 0;
  let overLimit = '';
  for (const name of fs.readdirSync(outputs).sort()) {
    const src = path.join(outputs, name);
    const st = fs.lstatSync(src);
    if (!st.isFile()) {
      skipped.notRegular++;
      continue;
    }
    // a file with several names would be copied once per name: the budget counts what is published
    if (st.nlink > 1) {
      skipped.hardLinked++;
      continue;
    }
    if (files.length + 1 > budget.maxFiles) {
      overLimit = `more than ${budget.maxFiles} output files`;
      break;
    }
    if (used + cost(st) > budget.maxBytes) {
      overLimit = `more than ${budget.maxBytes} bytes of outputs`;
      break;
    }
    used += cost(st);
    fs.copyFileSync(src, path.join(publish, name));
    files.push({ filename: name, size: st.size });
    console.log(`collected ${shown(name)} (${st.size} bytes)`);
  }
  if (skipped.notRegular > 0) console.log(`skipped ${skipped.notRegular} output(s) that are not regular files`);
  if (skipped.hardLinked > 0) console.log(`skipped ${skipped.hardLinked} hard-linked output(s): a file with several names is not published`);
  if (overLimit) {
    // all or nothing: what was copied goes again, so the job's results hold no partial set
    for (const f of files) fs.rmSync(path.join(publish, f.filename), { force: true });
    fs.writeFileSync(reportFile, JSON.stringify({ files: [], overLimit }));
    console.log(`output limit reached (${overLimit}): no output published`);
    return OVER_LIMIT_EXIT;
  }
  fs.writeFileSync(reportFile, JSON.stringify({ files }));
  console.log(`published ${files.length} file(s)`);
  return 0;
}

const args = process.argv.slice(5);
if (args.length === 1 && args[0] === '--flags-on-stdin') {
  const chunks: Buffer[] = [];
  process.stdin.on('data', (c: Buffer) => chunks.push(c));
  process.stdin.on('end', () => {
    const line = Buffer.concat(chunks).toString().trim();
    process.exitCode = line === '' ? 1 : main(line.split(/\s+/));
  });
} else process.exitCode = main(args);
