import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { testState } from '../helpers/state';
import { nodeRaw, resultText, waitFor } from './helpers';

/** Publisher plugins in a whole provider: worker and API processes, real Temporal, real sandbox, the built-ins and a module plugin. */

const ROW = 'alice,123-45-6789,Springfield';
const ROWS = `name,ssn,city\n${ROW}\nbob,987-65-4321,Shelbyville\n`;
const SECRET = crypto.randomBytes(24).toString('hex');

/** Writes a summary that plants a verbatim copy of the first data row, and a line with an SSN-like number. */
const leakyAlgorithm = nodeRaw(
  [
    "const fs = require('fs');",
    "const dir = JSON.parse(process.env.DIDS)[0].replace('did:op:', '');",
    "const rows = fs.readFileSync(`/data/inputs/${dir}/0`, 'utf8').split('\\n');",
    "fs.writeFileSync('/data/outputs/summary.csv', `${rows[0]}\\ncount,${rows.length - 2}\\n${rows[1]}\\n`);",
    "fs.writeFileSync('/data/outputs/note.txt', 'ssn 111-22-3333\\n');",
    "console.log('summarised');",
  ].join(' '),
);

interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('publisher plugins', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let moduleDir: string;
  let receiver: http.Server;
  const deliveries: Delivery[] = [];
  let temporal: { client: Client; connection: Connection };
  let pluginWorker: ChildProcess | undefined;
  const pluginWorkerOutput: string[] = [];
  const pluginQueue = `plugins-${crypto.randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    data = await serveFiles({ 'rows.csv': ROWS });
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        // the receiver is down for the first two attempts
        res.writeHead(deliveries.length <= 2 ? 500 : 204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/c2d-hook`;

    moduleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-plugin-module-'));
    const explode = path.join(moduleDir, 'explode.js');
    // a plugin on its own worker: records what it saw of the workspace (names only) beside its module
    const stamp = path.join(moduleDir, 'stamp.js');
    fs.writeFileSync(
      stamp,
      [
        "const fs = require('fs'); const path = require('path');",
        "module.exports.plugin = { name: 'stamp', defaultStage: 'beforePublish', async run({ call, workspace }) {",
        '  const names = (await workspace().outputs()).map((f) => f.name).sort();',
        "  fs.writeFileSync(path.join(__dirname, 'stamp-' + call.jobId + '.json'), JSON.stringify({ stage: call.stage, status: call.status, names }));",
        '} };',
      ].join('\n'),
    );
    // the README's complete example, as written there
    const readme = fs.readFileSync(path.resolve(__dirname, '../../docs/plugins.md'), 'utf8');
    const example = /`\/opt\/c2d-plugins\/row-limit\.js`[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
    if (!example) throw new Error('docs/plugins.md lost its plugin example');
    const rowLimit = path.join(moduleDir, 'row-limit.js');
    fs.writeFileSync(rowLimit, example);
    fs.writeFileSync(
      explode,
      `module.exports = { name: 'explode', defaultStage: 'afterAlgorithm', async run() { throw new Error('explode choked on ${ROW}'); } };\n`,
    );

    const base = { maxJobs: 4, ramGB: 0.5, maxJobDuration: 120 };
    stack = await startStack({
      // the webhook receiver is on loopback: allowed explicitly (the data server is allowed by serveFiles)
      allowHosts: [new URL(hookUrl).host],
      environments: [
        { id: 'filtered', ...base, plugins: [{ name: 'outputFilter' }] },
        { id: 'redacted', ...base, plugins: [{ name: 'outputFilter', options: { mode: 'redact', patterns: ['\\d{3}-\\d{2}-\\d{4}'] } }] },
        { id: 'hooked', ...base, plugins: [{ name: 'webhook', retryIntervalMs: 300, options: { url: hookUrl, secret: SECRET } }] },
        { id: 'stamped', ...base, plugins: [{ name: 'stamp', module: stamp, stage: 'beforePublish', taskQueue: pluginQueue }] },
        { id: 'limited', ...base, plugins: [{ name: 'rowLimit', module: rowLimit, stage: 'afterAlgorithm', options: { maxRows: 2 } }] },
        { id: 'exploding', ...base, plugins: [{ name: 'explode', module: explode, maxAttempts: 2, retryIntervalMs: 100 }] },
      ],
    });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'people', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    pluginWorker = spawn(process.execPath, [path.resolve(__dirname, '../../dist/src/entrypoints/plugin-worker.js'), pluginQueue], {
      env: { ...process.env, ...stack.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    pluginWorker.stdout?.on('data', (d: Buffer) => pluginWorkerOutput.push(d.toString()));
    pluginWorker.stderr?.on('data', (d: Buffer) => pluginWorkerOutput.push(d.toString()));
    const connection = await Connection.connect({ address: testState().temporalAddress });
    temporal = { connection, client: new Client({ connection }) };
  });

  afterAll(async () => {
    if (pluginWorker && pluginWorker.exitCode === null) {
      pluginWorker.kill('SIGTERM');
      await new Promise((r) => pluginWorker?.once('exit', r));
    }
    await stack?.stop();
    data?.close();
    receiver?.close();
    await temporal?.connection.close();
    if (moduleDir) fs.rmSync(moduleDir, { recursive: true, force: true });
  });

  const start = (environment: string): Promise<JobView> =>
    client.startJob({ environment, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm: leakyAlgorithm });
  const outputs = (job: JobView): string[] => (job.results === '' ? [] : job.results.filter((r) => r.type === 'output').map((r) => r.filename));

  /** C2DStatus values the job's workflow upserted, in order. */
  async function upsertedStatuses(jobId: string): Promise<number[]> {
    const history = await temporal.client.workflow.getHandle(`c2d-${jobId}`).fetchHistory();
    return (history.events ?? []).flatMap((e) => {
      const payload = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.C2DStatus;
      return payload ? [defaultPayloadConverter.fromPayload<number>(payload)] : [];
    });
  }

  it('when the output filter finds a verbatim copy of an input row, then the job ends with 62, says why without the row, and the row is not downloadable', async () => {
    const job = await start('filtered');
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done).toMatchObject({ status: 62, statusText: 'Failed to upload results' });
    expect(done.terminationDetails?.reason).toBe('plugin outputFilter (afterAlgorithm): 1 output line copies an input row verbatim; no output was published');
    expect(outputs(done)).toEqual([]);
    const files = done.results === '' ? [] : done.results.map((r) => r.filename);
    expect(files).toEqual(expect.arrayContaining(['algorithm.log', 'configure.log', 'publish.log']));
    for (const f of files) expect(await resultText(client, done, f)).not.toContain(ROW);
    expect(await resultText(client, done, 'algorithm.log')).toContain('summarised');
    // 50 ("Filtering results") while the filter ran, between the algorithm and publishing
    expect(await upsertedStatuses(job.jobId)).toEqual([20, 30, 40, 50, 60, 62]);
  });

  it('when the output filter redacts, then the copied row and the pattern matches are replaced and the job finishes', async () => {
    const job = await start('redacted');
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(70);
    expect(outputs(done).sort()).toEqual(['note.txt', 'summary.csv']);
    expect(await resultText(client, done, 'summary.csv')).toBe('name,ssn,city\ncount,2\n[redacted]\n');
    expect(await resultText(client, done, 'note.txt')).toBe('ssn [redacted]\n');
  });

  it('when the job finishes, then the webhook gets a correctly signed callback with the final status, retried after the receiver failed twice, with no secret in it', async () => {
    const job = await start('hooked');
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(70);
    await waitFor('the third delivery', () => deliveries.length >= 3, 30_000);
    expect(deliveries).toHaveLength(3);
    for (const d of deliveries) {
      expect(d.headers['x-c2d-signature']).toBe(`sha256=${crypto.createHmac('sha256', SECRET).update(d.body).digest('hex')}`);
      expect(d.headers['x-c2d-event']).toBe('job.finished');
      expect(d.headers['content-type']).toBe('application/json');
      expect(d.body).not.toContain(SECRET);
    }
    const body = JSON.parse(deliveries[2]!.body);
    expect(body).toMatchObject({
      event: 'job.finished',
      jobId: job.jobId,
      owner: done.owner,
      environment: 'hooked',
      status: 70,
      statusText: 'Job finished',
      inputDID: [dataset],
      results: 5,
    });
    expect(stack.output()).not.toContain(SECRET);
  });

  it('when a plugin throws, then its job ends with 62 and a generic message after bounded retries, and a job beside it finishes', async () => {
    // one consumer signs with increasing nonces: start one after the other
    const bad = await start('exploding');
    const good = await start('redacted');
    const [badDone, goodDone] = await Promise.all([client.waitForJob(bad.jobId, { timeoutMs: 60_000 }), client.waitForJob(good.jobId, { timeoutMs: 60_000 })]);
    expect(badDone).toMatchObject({ status: 62, terminationDetails: { reason: 'plugin explode (afterAlgorithm) failed' } });
    expect(outputs(badDone)).toEqual([]);
    expect(goodDone.status).toBe(70);
    const history = JSON.stringify(await temporal.client.workflow.getHandle(`c2d-${bad.jobId}`).fetchHistory());
    expect(history).not.toContain('choked');
    // two attempts, each logged on the provider's side
    expect(
      stack
        .output()
        .split('\n')
        .filter((l) => l.includes(`"jobId":"${bad.jobId}"`) && l.includes('"msg":"plugin failed"')),
    ).toHaveLength(2);
  });

  it('when a plugin runs on its own task queue, then the plugin worker entrypoint runs it with access to the job workspace', async () => {
    const job = await start('stamped');
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(70);
    const stamp = path.join(moduleDir, `stamp-${job.jobId}.json`);
    expect(fs.existsSync(stamp)).toBe(true);
    expect(JSON.parse(fs.readFileSync(stamp, 'utf8'))).toEqual({ stage: 'beforePublish', status: 40, names: ['algorithm.log', 'note.txt', 'summary.csv'] });
    expect(pluginWorker?.exitCode).toBeNull();
    expect(pluginWorkerOutput.join('')).not.toMatch(/error/i);
  });

  it("when the docs' example plugin is enabled, then it refuses results over its row limit", async () => {
    const job = await start('limited');
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done).toMatchObject({ status: 62, terminationDetails: { reason: 'plugin rowLimit (afterAlgorithm): an output has more than 2 rows' } });
    expect(outputs(done)).toEqual([]);
  });
});
