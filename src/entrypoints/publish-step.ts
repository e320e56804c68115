/**
 * The publishing step, run inside its sandbox: copies the top-level regular files of /data/outputs
 * (never symlinks, dirs or devices the algorithm may have planted) to the job's publish dir and
 * reports what it collected. Usage: node publish-step.js <outputs> <publish dir> <report.json>.
 * Node built-ins only (no node_modules here).
 */
import fs from 'node:fs';
import path from 'node:path';

function main(): number {
  const [outputs, publish, reportFile] = process.argv.slice(2);
  if (!outputs || !publish || !reportFile) {
    console.error('usage: publish-step <outputs> <publish dir> <report.json>');
    return 1;
  }
  const files: { filename: string; size: number }[] = [];
  for (const name of fs.readdirSync(outputs).sort()) {
    const src = path.join(outputs, name);
    const st = fs.lstatSync(src);
    if (!st.isFile()) {
      console.log(`skipped ${name}: not a regular file`);
      continue;
    }
    fs.copyFileSync(src, path.join(publish, name));
    files.push({ filename: name, size: st.size });
    console.log(`collected ${name} (${st.size} bytes)`);
  }
  fs.writeFileSync(reportFile, JSON.stringify({ files }));
  console.log(`published ${files.length} file(s)`);
  return 0;
}

process.exitCode = main();
