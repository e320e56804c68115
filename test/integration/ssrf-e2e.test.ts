import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { ProviderClient } from '../../src/client/provider-client';
import type { JobView } from '../../src/domain/job';
import { trustedAlgorithm } from '../../tools/catalog/catalog-publisher';
import { type Stack, startStack } from '../helpers/stack';
import { describeAsRoot } from '../helpers/privilege';
import { nodeRaw, waitFor } from './helpers';

/**
 * Server-side request forgery, tried as an outside publisher and consumer would, against a whole stack
 * over HTTP. The "host service" stands for anything on the provider's own host (an admin port, a
 * metadata endpoint): it listens on every address and records each request. Nothing it is pointed at
 * through a DDO, a raw algorithm, a redirect or the webhook may ever reach it.
 */

interface Recorder {
  port: number;
  hits: string[];
  close(): void;
}

async function listen(handler: http.RequestListener, host: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as AddressInfo).port };
}

async function hostService(): Promise<Recorder> {
  const hits: string[] = [];
  const { server, port } = await listen((req, res) => {
    hits.push(req.url ?? '');
    res.end('host secret');
  }, '0.0.0.0');
  return {
    port,
    hits,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** The first IPv4 address of this host that is not loopback (what a job's namespace must never reach). */
function hostAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('this host has no IPv4 address besides loopback');
}

/** The consumer's configure.log of a finished job. */
async function configureLog(client: ProviderClient, job: JobView): Promise<string> {
  const index = Array.isArray(job.results) ? job.results.findIndex((r) => r.type === 'configrationLog') : -1;
  expect(index).toBeGreaterThanOrEqual(0);
  return (await client.result(job.jobId, index)).text();
}

const ALGO_CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20' };
const CONTAINER = { entrypoint: 'node $ALGO', image: 'node', tag: '20', checksum: `sha256:${'a'.repeat(64)}` };

describe('no server-side request forgery, over HTTP', () => {
  let host: Recorder;
  /** the publisher's data server: allowed, serves a file and redirects to the host service */
  let data: { server: http.Server; port: number };
  let stack: Stack;
  let client: ProviderClient;
  const hookPath = '/hook';

  beforeAll(async () => {
    host = await hostService();
    data = await listen((req, res) => {
      if (req.url === '/rows.csv') return void res.end('x\n1\n');
      if (req.url === '/to-host') return void res.writeHead(302, { location: `http://127.0.0.1:${host.port}/redirected` }).end();
      if (req.url === '/to-host-name') return void res.writeHead(307, { location: `http://localhost:${host.port}/redirected-name` }).end();
      res.writeHead(404).end();
    }, '127.0.0.1');
    stack = await startStack({
      environments: [
        { id: 'ssrf', maxJobs: 4, ramGB: 0.5, maxJobDuration: 60 },
        {
          id: 'hooked',
          maxJobs: 1,
          ramGB: 0.5,
          maxJobDuration: 60,
          plugins: [{ name: 'webhook', options: { url: `http://127.0.0.1:${host.port}${hookPath}`, secret: 's'.repeat(32) } }],
        },
      ],
      // exactly the publisher's data server; the host service on the same loopback stays refused
      allowHosts: [`127.0.0.1:${data.port}`],
    });
    client = stack.consumer();
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    host?.close();
    data?.server.closeAllConnections();
    data?.server.close();
  });

  afterEach(() => {
    expect(host.hits).toEqual([]);
  });

  const dataset = (urls: string[], extra: { serviceType?: 'compute' | 'access' } = {}): Promise<string> =>
    stack.publish(client, { type: 'dataset', name: 'ssrf', urls, compute: { allowRawAlgorithm: true }, ...extra });
  const refusal = async (p: Promise<unknown>): Promise<{ status?: number; body: unknown }> => {
    const err = (await p.then(
      () => null,
      (e: unknown) => e,
    )) as { status?: number; body?: string } | null;
    expect(err).not.toBeNull();
    return { status: err?.status, body: JSON.parse(err?.body ?? 'null') };
  };

  test.each([
    ['a loopback IP', (p: number) => `http://127.0.0.1:${p}/literal`],
    ['a name that resolves to loopback', (p: number) => `http://localhost:${p}/name`],
    ['an IPv4-mapped IPv6 literal', (p: number) => `http://[::ffff:127.0.0.1]:${p}/mapped`],
    ['a decimal IPv4', (p: number) => `http://2130706433:${p}/decimal`],
    ['an octal IPv4', (p: number) => `http://0177.0.0.1:${p}/octal`],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/'],
  ])('when a dataset file is at %s, then the start is refused with file_url_refused and nothing is fetched', async (_name, url) => {
    const did = await dataset([`http://127.0.0.1:${data.port}/rows.csv`, url(host.port)]);
    const got = await refusal(client.startJob({ environment: 'ssrf', dataset: { documentId: did, serviceId: 'compute' }, algorithm: nodeRaw('1') }));
    expect(got).toEqual({ status: 400, body: { error: { dataset: 'file_url_refused' } } });
  });

  test("when a raw algorithm's meta.url is at the host service, then the start is refused with file_url_refused", async () => {
    const did = await dataset([`http://127.0.0.1:${data.port}/rows.csv`]);
    const got = await refusal(
      client.startJob({
        environment: 'ssrf',
        dataset: { documentId: did, serviceId: 'compute' },
        algorithm: { meta: { url: `http://localhost:${host.port}/algo.js`, container: CONTAINER } },
      }),
    );
    expect(got).toEqual({ status: 400, body: { error: { algorithm: 'file_url_refused' } } });
  });

  test.each([
    ['pinned by the dataset (its file is hashed at start)', true],
    ['trusted as any algorithm ("*")', false],
  ])("when a published algorithm's file is at the host service, %s, then the start is refused with file_url_refused", async (_name, pinned) => {
    const algorithm = await stack.publish(client, {
      type: 'algorithm',
      name: 'algo',
      urls: [`http://localhost:${host.port}/algo.js`],
      container: ALGO_CONTAINER,
    });
    const did = await stack.publish(client, {
      type: 'dataset',
      name: 'ssrf',
      urls: [`http://127.0.0.1:${data.port}/rows.csv`],
      compute: pinned
        ? { publisherTrustedAlgorithms: [trustedAlgorithm(algorithm, ALGO_CONTAINER, ['console.log(1)'])] }
        : { publisherTrustedAlgorithmPublishers: ['*'] },
    });
    const got = await refusal(
      client.startJob({ environment: 'ssrf', dataset: { documentId: did, serviceId: 'compute' }, algorithm: { documentId: algorithm, serviceId: 'algo' } }),
    );
    expect(got).toEqual({ status: 400, body: { error: { algorithm: 'file_url_refused' } } });
  });

  test.each([
    ['to a loopback IP', '/to-host'],
    ['to a name that resolves to loopback', '/to-host-name'],
  ])('when the allowed data server redirects %s, then the job fails with 31 and the redirect is never followed', async (_name, path) => {
    const did = await dataset([`http://127.0.0.1:${data.port}${path}`]);
    const job = await client.startJob({ environment: 'ssrf', dataset: { documentId: did, serviceId: 'compute' }, algorithm: nodeRaw("console.log('ran')") });
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(31);
    const log = await configureLog(client, done);
    expect(log).toContain('dataset 0 file 0: refused: loopback address (allow it in C2D_ALLOWED_PRIVATE_HOSTS)');
    expect(log).not.toContain(String(host.port));
  });

  test('when an access file is at the host service, then download is refused with file_url_refused and fileinfo says invalid', async () => {
    const did = await dataset([`http://127.0.0.1:${host.port}/download`], { serviceType: 'access' });
    const { nonce, signature } = await client.sign(did);
    const query = new URLSearchParams({ documentId: did, serviceId: 'compute', fileIndex: '0', consumerAddress: client.address, nonce, signature });
    const res = await client.request('GET', `/api/services/download?${query.toString()}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { download: 'file_url_refused' } });
    const info = await client.request('POST', '/api/services/fileinfo', { did, serviceId: 'compute' });
    expect(info.status).toBe(200);
    expect(await info.json()).toEqual([{ index: 0, valid: false, contentLength: null, contentType: null }]);
  });

  test('when the webhook points at the host service, then the job still finishes and the notification is refused, not sent', async () => {
    const did = await dataset([`http://127.0.0.1:${data.port}/rows.csv`]);
    const job = await client.startJob({ environment: 'hooked', dataset: { documentId: did, serviceId: 'compute' }, algorithm: nodeRaw("console.log('ran')") });
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(70);
    await waitFor('the refused webhook in the worker log', () => stack.output().includes('the webhook URL is refused: loopback address'), 30_000);
  });
});

describeAsRoot("the configure step's network namespace")('the configure step cannot reach the host, even where the guard allows an address', () => {
  let host: Recorder;
  let stack: Stack;
  let address: string;

  beforeAll(async () => {
    host = await hostService();
    address = hostAddress();
    // an operator allowed this host's own (non-loopback) address: the guard lets it through, the job's namespace does not
    stack = await startStack({ environments: [{ id: 'ns', maxJobs: 1, ramGB: 0.5, maxJobDuration: 60 }], allowHosts: [`${address}:${host.port}`] });
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    host?.close();
  });

  test('when a dataset file is on a host address, then the configure step (in its egress-only namespace) fails with 31 and the host sees nothing', async () => {
    const client = stack.consumer();
    const did = await stack.publish(client, {
      type: 'dataset',
      name: 'ns',
      urls: [`http://${address}:${host.port}/from-namespace`],
      compute: { allowRawAlgorithm: true },
    });
    const job = await client.startJob({ environment: 'ns', dataset: { documentId: did, serviceId: 'compute' }, algorithm: nodeRaw("console.log('ran')") });
    const done = await client.waitForJob(job.jobId, { timeoutMs: 60_000 });
    expect(done.status).toBe(31);
    const log = await configureLog(client, done);
    expect(log).toContain('dataset 0 file 0: connection failed (ECONNREFUSED)');
    expect(host.hits).toEqual([]);
  });
});
