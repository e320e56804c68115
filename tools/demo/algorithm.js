// Sample algorithm: summary statistics of a CSV dataset. Reads the job's inputs as Ocean lays them out
// (/data/inputs/<did>/0, DIDS in the environment), writes /data/outputs/summary.json.
const fs = require('fs');
const path = require('path');

const dids = JSON.parse(process.env.DIDS || '[]');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const summary = {};
  for (const did of dids) {
    const file = path.join(process.env.INPUTS || '/data/inputs', did.replace(/^did:op:/, ''), '0');
    const [header, ...rows] = fs.readFileSync(file, 'utf8').trim().split('\n');
    const columns = header.split(',');
    console.log(`dataset ${did.slice(0, 20)}…: ${rows.length} rows, columns ${columns.join(', ')}`);
    const stats = {};
    for (const [i, name] of columns.entries()) {
      const values = rows.map((r) => Number(r.split(',')[i])).filter((v) => Number.isFinite(v));
      if (values.length === 0) continue;
      await sleep(300); // pretend this is heavy, so the live log shows progress
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      stats[name] = { count: values.length, mean: Number(mean.toFixed(3)), min: Math.min(...values), max: Math.max(...values) };
      console.log(`  column ${name}: mean ${stats[name].mean}`);
    }
    summary[did] = { rows: rows.length, stats };
  }
  fs.writeFileSync(path.join(process.env.OUTPUTS || '/data/outputs', 'summary.json'), JSON.stringify(summary, null, 2));
  console.log('summary written');
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
