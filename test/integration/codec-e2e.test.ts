import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ChildProcess, execFile } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { ProviderClient } from '../../src/client/provider-client';
import { freePort, startDevServer, temporalBinary } from '../../tools/temporal-server';
import { uiCodecEndpoint } from '../../tools/temporal';
import { loadConfig } from '../../src/config';
import { testState } from '../helpers/state';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { resultText } from './helpers';

const KEY_ID = 'e2e-key-1';
const KEY = crypto.randomBytes(32).toString('base64');
const TOKEN = crypto.randomBytes(24).toString('hex');
const UI_ORIGIN = 'http://127.0.0.1:8233';

interface JsonPayload {
  metadata: Record<string, string>;
  data: string;
}

const b64 = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('base64');
const utf8 = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

/** The job's input: the first payload of the workflow's start event (its user metadata, the summary, is another payload). */
function inputPayloadOf(history: {
  events?: { workflowExecutionStartedEventAttributes?: unknown }[] | null;
}): { metadata: Record<string, Uint8Array>; data: Uint8Array } | undefined {
  return payloadsOf(history.events?.[0]?.workflowExecutionStartedEventAttributes)[0];
}

/**
 * Every payload of a history (anything with metadata and data), except search attributes (indexed by
 * the server in clear by design, so the UI and the API can filter on them), patch markers and the
 * bookkeeping `data` of local-activity markers (both written by the SDK's core without the codec: a patch
 * id such as `verify-orders`; a local activity's sequence number, id, type and times). A local
 * activity's input and result in its marker do go through the codec and are checked.
 */
function payloadsOf(history: unknown): { metadata: Record<string, Uint8Array>; data: Uint8Array }[] {
  const found: { metadata: Record<string, Uint8Array>; data: Uint8Array }[] = [];
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    const marker = o.markerRecordedEventAttributes as { markerName?: string; details?: Record<string, unknown> } | undefined;
    if (marker?.markerName === 'core_patch') return;
    if (marker?.markerName === 'core_local_activity') {
      for (const [k, child] of Object.entries(marker.details ?? {})) if (k !== 'data') walk(child);
      return;
    }
    if (o.metadata && typeof o.metadata === 'object' && o.data instanceof Uint8Array) {
      found.push(o as { metadata: Record<string, Uint8Array>; data: Uint8Array });
      return;
    }
    for (const [k, child] of Object.entries(o)) if (k !== 'searchAttributes') walk(child);
  };
  walk(history);
  return found;
}

/**
 * The history as text with payload bytes as UTF-8 (a plain walk: JSON.stringify of the proto messages
 * would write bytes as base64, where no plaintext could ever be found). `clear: false` leaves out what is
 * in clear by design: search attributes and patch markers.
 */
function historyText(history: unknown, opts: { clear: boolean }): string {
  const plain = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (Array.isArray(v)) return v.map(plain);
    if (!v || typeof v !== 'object') return v;
    const markerName = (v as { markerName?: unknown }).markerName;
    if (!opts.clear && markerName === 'core_patch') return undefined;
    // a local activity's marker: core's bookkeeping `data` (seq, id, type, times) is in clear; its result is not
    if (!opts.clear && markerName === 'core_local_activity') {
      const { data: _bookkeeping, ...details } = (v as { details?: Record<string, unknown> }).details ?? {};
      return Object.fromEntries(Object.entries({ ...v, details }).map(([k, c]) => [k, plain(c)]));
    }
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => opts.clear || k !== 'searchAttributes')
        .map(([k, c]) => [k, plain(c)]),
    );
  };
  return JSON.stringify(plain(history));
}

describe('payload encryption end to end (worker and API processes, real Temporal)', () => {
  let stack: Stack;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let consumer: ProviderClient;
  let dataset: string;
  let temporal: Client;
  let history: Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;
  let jobId: string;

  beforeAll(async () => {
    data = await serveFiles({ 'rows.csv': 'x\n1\n2\n' });
    stack = await startStack({
      environments: [{ id: 'codec-e2e', maxJobs: 2, ramGB: 0.5, maxJobDuration: 120 }],
      env: { C2D_PAYLOAD_KEYS: `${KEY_ID}:${KEY}`, C2D_CODEC_TOKEN: TOKEN, C2D_CODEC_UI_ORIGINS: UI_ORIGIN },
    });
    consumer = stack.consumer();
    dataset = await stack.publish(consumer, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
    const job = await consumer.startJob({
      environment: 'codec-e2e',
      dataset: { documentId: dataset, serviceId: 'compute' },
      algorithm: {
        meta: {
          rawcode: "require('fs').writeFileSync('/data/outputs/out.txt', 'done')",
          container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'a'.repeat(64)}` },
        },
      },
    });
    jobId = job.jobId;
    const done = await consumer.waitForJob(jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(70);
    // the API reads state, memo and result through the codec: the consumer sees everything in clear
    expect(done).toMatchObject({ owner: consumer.address.toLowerCase(), inputDID: [dataset] });
    expect(await resultText(consumer, done, 'out.txt')).toBe('done');
    // a client without the codec: what the Temporal server (and its UI, without our endpoint) sees
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }), namespace: 'default' });
    history = await temporal.workflow.getHandle(`c2d-${jobId}`).fetchHistory();
  }, 120_000);

  afterAll(async () => {
    await temporal?.connection.close();
    await stack?.stop();
    data?.close();
  });

  it('when a job ran with a key set, then every payload of its history is encrypted under our key id and no plaintext of them is stored', () => {
    const payloads = payloadsOf(history);
    expect(payloads.length).toBeGreaterThan(10); // input, memo, activity inputs and results, signals, the result
    for (const p of payloads) {
      expect(utf8(p.metadata.encoding)).toBe('binary/encrypted');
      expect(utf8(p.metadata['encryption-key-id'])).toBe(KEY_ID);
    }
    // by design the owner stays readable where operators filter: the C2DOwner search attribute
    expect(historyText(history, { clear: true })).toContain(consumer.address.toLowerCase());
    const text = historyText(history, { clear: false });
    for (const plain of [consumer.address.toLowerCase(), dataset, 'json/plain', 'writeFileSync']) expect(text).not.toContain(plain);
  });

  it('when an operator asks the codec endpoint with the token, then the job input decodes to the owner and dataset', async () => {
    const input = inputPayloadOf(history);
    expect(input).toBeDefined();
    const res = await fetch(`${stack.baseUrl}/codec/decode`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', Authorization: `Bearer ${TOKEN}`, Origin: UI_ORIGIN },
      body: JSON.stringify({
        payloads: [{ metadata: Object.fromEntries(Object.entries(input?.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(input?.data) }],
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    const body = (await res.json()) as { payloads: JsonPayload[] };
    const decoded = JSON.parse(Buffer.from(body.payloads[0]?.data ?? '', 'base64').toString('utf8')) as {
      owner: string;
      jobId: string;
      datasets: { did: string }[];
    };
    expect(decoded).toMatchObject({ jobId, owner: consumer.address.toLowerCase(), datasets: [expect.objectContaining({ did: dataset })] });
  });

  it('when an operator runs the Temporal CLI with our codec endpoint and the token, then it shows the job decoded; without the token it cannot', async () => {
    const show = (...extra: string[]): Promise<{ out: string; failed: boolean }> =>
      new Promise((resolve) => {
        const args = [
          'workflow',
          'show',
          '--address',
          testState().temporalAddress,
          '--namespace',
          'default',
          '-w',
          `c2d-${jobId}`,
          '--output',
          'json',
          '--codec-endpoint',
          `${stack.baseUrl}/codec`,
          ...extra,
        ];
        execFile(temporalBinary(), args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
          resolve({ out: `${stdout}${stderr}`, failed: err !== null }),
        );
      });
    // the CLI's JSON keeps payload data in base64: read every data field as text
    const payloadText = (out: string): string =>
      [...out.matchAll(/"data": "([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1] ?? '', 'base64').toString('utf8')).join('\n');
    const decoded = await show('--codec-auth', `Bearer ${TOKEN}`);
    expect(decoded.failed).toBe(false);
    expect(payloadText(decoded.out)).toContain(dataset);
    expect(payloadText(decoded.out)).toContain('writeFileSync');
    const refused = await show();
    expect(refused.out).not.toContain('writeFileSync');
    expect(payloadText(refused.out)).not.toContain('writeFileSync');
  });

  it('when the token is missing, or a page of another origin asks, then nothing is decoded; the UI origin passes the preflight', async () => {
    const input = inputPayloadOf(history);
    const body = JSON.stringify({
      payloads: [{ metadata: Object.fromEntries(Object.entries(input?.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(input?.data) }],
    });
    const anonymous = await fetch(`${stack.baseUrl}/codec/decode`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: UI_ORIGIN },
      body,
    });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toContain(consumer.address.toLowerCase());
    const preflight = (origin: string) =>
      fetch(`${stack.baseUrl}/codec/decode`, {
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace' },
      });
    const evil = await preflight('http://evil.example');
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const ui = await preflight(UI_ORIGIN);
    expect(ui.status).toBe(204);
    expect(ui.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    // the rest of the API keeps its open CORS for dApps
    const open = await fetch(`${stack.baseUrl}/api/services/computeEnvironments`, { headers: { Origin: 'http://evil.example' } });
    expect(open.headers.get('access-control-allow-origin')).toBe('*');
    // the token never reaches the API's own logs
    expect(stack.output()).not.toContain(TOKEN);
  });

  it('when the keys are rotated (new key first, old one kept), then the job from before still reads and new jobs are encrypted under the new key id', async () => {
    // an environment of its own: the capacity workflow c2d-env-<id>@<taskQueue> is shared by every worker of the task queue, and those of the first stack hold only the old key
    const rotated = await startStack({
      environments: [{ id: 'codec-e2e-rotated', maxJobs: 2, ramGB: 0.5, maxJobDuration: 120 }],
      env: { C2D_PAYLOAD_KEYS: `e2e-key-2:${crypto.randomBytes(32).toString('base64')},${KEY_ID}:${KEY}` },
    });
    try {
      const same = new ProviderClient(rotated.baseUrl, consumer.wallet);
      // the finished job's state comes from its history, written under the old key
      expect(await same.job(jobId)).toMatchObject({ jobId, status: 70, owner: consumer.address.toLowerCase(), inputDID: [dataset] });
      const local = await rotated.publish(same, { type: 'dataset', name: 'rows', urls: [data.url('rows.csv')], compute: { allowRawAlgorithm: true } });
      const job = await same.startJob({
        environment: 'codec-e2e-rotated',
        dataset: { documentId: local, serviceId: 'compute' },
        algorithm: {
          meta: {
            rawcode: "require('fs').writeFileSync('/data/outputs/out.txt', 'again')",
            container: { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'a'.repeat(64)}` },
          },
        },
      });
      const done = await same.waitForJob(job.jobId, { timeoutMs: 60_000 });
      expect(done.status).toBe(70);
      const keyIds = new Set(
        payloadsOf(await temporal.workflow.getHandle(`c2d-${job.jobId}`).fetchHistory()).map((p) => utf8(p.metadata['encryption-key-id'])),
      );
      expect([...keyIds]).toEqual(['e2e-key-2']);
    } finally {
      await rotated.stop();
    }
  }, 120_000);
});

describe('the dev server started by npm run temporal / npm run dev', () => {
  let server: ChildProcess | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2d-codec-ui-'));
  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server?.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('when keys and a codec token are set, then its Web UI is configured with the API codec endpoint', async () => {
    const config = loadConfig({
      C2D_DATA_DIR: dir,
      C2D_API_PORT: '18030',
      C2D_PAYLOAD_KEYS: `k:${crypto.randomBytes(32).toString('base64')}`,
      C2D_CODEC_TOKEN: TOKEN,
    });
    const endpoint = uiCodecEndpoint(config);
    expect(endpoint).toBe(`http://127.0.0.1:18030/codec/${TOKEN}`);
    expect(uiCodecEndpoint({ ...config, codec: { ...config.codec, token: undefined } })).toBeUndefined();
    expect(uiCodecEndpoint({ ...config, codec: { ...config.codec, keys: [] } })).toBeUndefined();
    const [port, uiPort] = [await freePort(), await freePort()];
    server = await startDevServer({
      port,
      uiPort,
      dbFile: path.join(dir, 'temporal.db'),
      namespace: 'default',
      logFile: path.join(dir, 'temporal.log'),
      codecEndpoint: endpoint,
    });
    // the UI tells its browser pages where the codec is
    let settings: { Codec?: { Endpoint?: string } } = {};
    for (let i = 0; i < 100 && !settings.Codec?.Endpoint; i++) {
      settings = await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`).then(
        (r) => (r.ok ? (r.json() as Promise<typeof settings>) : {}),
        () => ({}),
      );
      if (!settings.Codec?.Endpoint) await new Promise((r) => setTimeout(r, 100));
    }
    expect(settings.Codec?.Endpoint).toBe(endpoint);
  }, 60_000);
});
