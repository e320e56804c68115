import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import type { ProviderClient } from '../../src/client/provider-client';
import type { DockerEnvironmentInput } from '../../src/domain/environment';
import { startTestEngine, type TestEngine } from '../helpers/docker';
import { type Stack, serveFiles, startStack } from '../helpers/stack';
import { testState } from '../helpers/state';
import { eventually } from '../helpers/temporal';
import { workflowIdForJob } from '../../src/domain/job';
import { resultText, waitFor } from '../integration/helpers';

const REGISTRY = { host: '127.0.0.1', port: 5000 };

/**
 * The loopback registry behind a proxy that holds every manifest request for `delayMs` before passing it
 * on: a slow registry, as the engine sees it (127.0.0.0/8 is an insecure registry to Docker by default).
 * It serves the registry's repositories under any first path segment (`<host>/<any>/c2d-python-numpy`):
 * the engine skips a pull by digest it has done before, so each test pulls a repository it never pulled.
 */
async function slowRegistry(): Promise<{ host: string; delayMs: number; close: () => void }> {
  const state = { delayMs: 0 };
  const held = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const forward = (): void => {
      const upstreamPath = (req.url ?? '/').replace(/^\/v2\/[^/]+\/(?=.+\/(manifests|blobs)\/)/, '/v2/');
      const up = http.request({ ...REGISTRY, method: req.method, path: upstreamPath, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (!/\/manifests\//.test(req.url ?? '')) return forward();
    const timer = setTimeout(() => {
      held.delete(timer);
      forward();
    }, state.delayMs);
    held.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    host,
    close: () => {
      for (const t of held) clearTimeout(t);
      server.closeAllConnections();
      server.close();
    },
  });
}

/** A slow image pull on the docker backend: it never counts toward maxJobDuration, and never leaves a job stuck. */
describe('image pulls on the docker backend', () => {
  let engine: TestEngine;
  let stack: Stack;
  let registry: Awaited<ReturnType<typeof slowRegistry>>;
  let data: Awaited<ReturnType<typeof serveFiles>>;
  let client: ProviderClient;
  let dataset: string;
  let temporal: Client;

  const env = (
    id: string,
    extra: Partial<DockerEnvironmentInput> = {},
    docker: Partial<NonNullable<DockerEnvironmentInput['docker']>> = {},
  ): DockerEnvironmentInput => ({
    id,
    backend: 'docker',
    maxJobs: 2,
    ramGB: 0.25,
    algorithmNetwork: false,
    ...extra,
    docker: {
      socketPath: engine.socketPath,
      images: { configure: engine.images.configure, publish: engine.images.publish },
      allowedImages: ['127.0.0.1:*'],
      pullPolicy: 'always',
      ...docker,
    },
  });

  beforeAll(async () => {
    temporal = new Client({ connection: await Connection.connect({ address: testState().temporalAddress }) });
    engine = startTestEngine();
    registry = await slowRegistry();
    data = await serveFiles({ 'numbers.csv': '1\n2\n' });
    stack = await startStack({
      environments: [env('slow-pull', { maxJobDuration: 3 }, { pullTimeout: 120 }), env('bounded-pull', { maxJobDuration: 60 }, { pullTimeout: 2 })],
    });
    client = stack.consumer();
    dataset = await stack.publish(client, { type: 'dataset', name: 'numbers', urls: [data.url('numbers.csv')], compute: { allowRawAlgorithm: true } });
  }, 600_000);

  afterAll(async () => {
    await temporal?.connection.close();
    await stack?.stop();
    data?.close();
    registry?.close();
    engine?.stop();
  });

  /** the Python image by digest, pulled through the slow registry under a repository the engine has never pulled */
  let pulls = 0;
  let image = '';
  const start = async (environment: string, rawcode: string): Promise<string> => {
    image = engine.images.pythonNumpy.replace(/^127\.0\.0\.1:5000\//, `${registry.host}/p${++pulls}/`);
    const [ref, checksum] = image.split('@') as [string, string];
    const algorithm = { meta: { rawcode, container: { entrypoint: 'python3 $ALGO', image: ref, tag: '', checksum } } };
    return (await client.startJob({ environment, dataset: { documentId: dataset, serviceId: 'compute' }, algorithm })).jobId;
  };
  const run = async (environment: string, rawcode: string) => client.waitForJob(await start(environment, rawcode), { timeoutMs: 120_000 });
  const pullSeconds = (log: string): number => Number(/pulled image .* in ([0-9.]+) s\n/.exec(log)?.[1] ?? NaN);

  it('when the pull takes longer than maxJobDuration, then the algorithm still runs to the end: the job reaches 70', async () => {
    registry.delayMs = 6000; // twice the environment's maxJobDuration of 3 s
    const done = await run('slow-pull', 'import time\ntime.sleep(1.5)\nprint("ran after a slow pull")');
    expect({ status: done.status, stopreq: done.stopreq }).toEqual({ status: 70, stopreq: 0 });
    const log = await resultText(client, done, 'algorithm.log');
    expect(pullSeconds(log)).toBeGreaterThanOrEqual(6);
    expect(log).toMatch(/^pulling image 127\.0\.0\.1:\d+\/p\d+\/c2d-python-numpy@sha256:[0-9a-f]{64}\n(.*\n)*pulled image .*\nran after a slow pull\n$/);
  });

  it("when an image is pulled, then its progress is the job's summary in the Web UI (current details), a few signals in history, the last one its time", async () => {
    registry.delayMs = 4000;
    const jobId = await start('slow-pull', 'print("pulled and ran")');
    const workflow = temporal.workflow.getHandle(workflowIdForJob(jobId));
    const details = async (): Promise<string> => (await workflow.query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails ?? '';
    // while the registry holds the manifest, the summary names the image being pulled
    expect(await eventually(async () => (await details()).startsWith('pulling image') && details(), 20_000, 'the pull in the summary')).toBe(
      `pulling image ${image}`,
    );
    const done = await client.waitForJob(jobId, { timeoutMs: 120_000 });
    expect(done.status).toBe(70);
    const log = await resultText(client, done, 'algorithm.log');
    const lines = (await workflow.fetchHistory()).events!.flatMap((e) =>
      e.workflowExecutionSignaledEventAttributes?.signalName === 'imagePullProgress'
        ? [JSON.parse(Buffer.from(e.workflowExecutionSignaledEventAttributes.input!.payloads![0]!.data!).toString()) as string]
        : [],
    );
    expect(lines[0]).toBe(`pulling image ${image}`);
    // the engine's progress on that image (layers in place of those seen: test/unit/pull-progress), then the time the pull took, as in the job's log
    expect(lines.slice(1, -1).filter((l) => !l.startsWith(`pulling image ${image}: `))).toEqual([]);
    expect(lines.at(-1)).toBe(/pulled image .* in [0-9.]+ s/.exec(log)?.[0]);
    // throttled: one signal every 2 s at most, plus the last
    expect(lines.length).toBeLessThanOrEqual(Math.ceil(pullSeconds(log) / 2) + 2);
    expect(await details()).toBe(lines.at(-1));
  });

  it('when the algorithm itself runs past maxJobDuration after a slow pull, then the deadline, counted from its start, ends it', async () => {
    registry.delayMs = 6000;
    const t0 = Date.now();
    const done = await run('slow-pull', 'import time\nprint("started", flush=True)\nwhile True: time.sleep(0.2)');
    const took = (Date.now() - t0) / 1000;
    expect({ status: done.status, stopreq: done.stopreq, reason: done.terminationDetails?.reason }).toEqual({
      status: 70,
      stopreq: 2,
      reason: 'exceeded maxJobDuration',
    });
    const log = await resultText(client, done, 'algorithm.log');
    expect(log).toContain('started');
    // the pull (≥ 6 s) and then the algorithm's whole 3 s
    expect(took).toBeGreaterThanOrEqual(pullSeconds(log) + 3);
  });

  it('when the registry never answers, then the pull ends at the environment pullTimeout: 32 naming the image, nothing left behind', async () => {
    registry.delayMs = 3_600_000;
    const t0 = Date.now();
    const done = await run('bounded-pull', 'print("never")');
    expect(done.status).toBe(32);
    expect(done.imagePullFailed).toBe(true); // ocean-node's clients read 11
    expect(done.terminationDetails?.reason).toContain(image);
    expect(done.terminationDetails?.reason).toContain('not pulled within 2 s');
    expect(Date.now() - t0).toBeLessThan(30_000);
    const log = await resultText(client, done, 'algorithm.log');
    expect(log).toContain(`could not pull image ${image}`);
    expect(log).not.toContain('never');
    await waitFor('the job containers to be removed', async () => (await engine.jobContainers()).filter((n) => n.includes(done.jobId)).length === 0);
  });
});
