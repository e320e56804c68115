import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { openApiDocument } from '../../src/api/openapi';
import { errorBodySchema } from '../../src/api/responses';
import { routes } from '../../src/api/table';
import { signRequest } from '../helpers/api';
import { type ApiHarness, apiHarness, expectNoSecretLeaked } from './harness';

/**
 * Property-based fuzz of the API from its own OpenAPI description: requests built from the documented
 * parameters and bodies, valid-ish or hostile (wrong types, huge strings, odd unicode, JSON in the query
 * string, other methods), against the app with real stores. The server must never answer 5xx or crash,
 * and every 4xx must carry one of the wire contract's error shapes.
 */

type Schema = Record<string, unknown>;
interface Op {
  path: string;
  method: string;
  params: { name: string; schema: Schema }[];
  body?: Schema;
}

const doc = openApiDocument(routes, 'fuzz');
const ops: Op[] = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.entries(item).map(([method, op]) => ({
    path,
    method: method.toUpperCase(),
    params: ((op.parameters ?? []) as { name: string; schema: Schema }[]).map((p) => ({ name: p.name, schema: p.schema })),
    body: (op.requestBody as { content?: Record<string, { schema: Schema }> } | undefined)?.content?.['application/json']?.schema,
  })),
);

const oddStrings = [
  '',
  ' ',
  '\u0000',
  '\uD800',
  '\u202E',
  '𝒳𝒴',
  'ﷺ',
  'é',
  '../../etc/passwd',
  '__proto__',
  'constructor',
  'did:op:',
  '0x',
  '%00',
  'null',
  '{}',
  '[]',
  '1e309',
  '-1',
  'NaN',
];

const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...oddStrings),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constant('x'.repeat(200_000)),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant({ __proto__: { polluted: true } }),
  fc.array(fc.string(), { maxLength: 3 }),
);

/** The fixtures that let a request get past validation into the routes' logic. */
interface Known {
  addresses: string[];
  dids: string[];
  jobIds: string[];
}

/** Values a schema admits, leaning on known fixtures so some requests reach deep into the routes. */
function fromSchema(schema: Schema, known: Known, depth = 0): fc.Arbitrary<unknown> {
  if (Array.isArray(schema.anyOf)) return fc.oneof(...(schema.anyOf as Schema[]).map((s) => fromSchema(s, known, depth)));
  if (Array.isArray(schema.type)) return fc.oneof(...(schema.type as string[]).map((type) => fromSchema({ ...schema, type }, known, depth)));
  switch (schema.type) {
    case 'string': {
      if (schema.contentMediaType === 'application/json') return fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v));
      const pattern = typeof schema.pattern === 'string' ? fc.stringMatching(new RegExp(schema.pattern)) : fc.string({ maxLength: 20 });
      return fc.oneof(
        pattern,
        fc.constantFrom(...known.addresses, ...known.dids, ...known.jobIds, 'free', 'compute', 'algo', '0', '1', '99999999999999999999'),
      );
    }
    case 'integer':
    case 'number':
      return fc.oneof(fc.integer({ min: -1, max: 1_000_000 }), fc.constant(Number.MAX_SAFE_INTEGER));
    case 'boolean':
      return fc.boolean();
    case 'array':
      return depth > 3 ? fc.constant([]) : fc.array(fromSchema((schema.items ?? {}) as Schema, known, depth + 1), { maxLength: 3 });
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      if (depth > 3 || Object.keys(props).length === 0) return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
      const fields = Object.fromEntries(
        Object.entries(props).map(([k, s]) => [k, fc.oneof({ weight: 4, arbitrary: fromSchema(s, known, depth + 1) }, { weight: 1, arbitrary: hostile })]),
      );
      return fc.record(fields, { requiredKeys: ((schema.required ?? []) as string[]).filter((k) => k in fields) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Percent-encodes anything, lone surrogates included (encodeURIComponent would throw on them). */
const encode = (s: string): string => {
  try {
    return encodeURIComponent(s);
  } catch {
    return percentEncodeBytes(s);
  }
};
const percentEncodeBytes = (s: string): string =>
  [...Buffer.from(s, 'utf8')]
    .map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`))
    .join('');
const asText = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined'));

interface FuzzRequest {
  method: string;
  path: string;
  query: string;
  body?: string;
  contentType?: string;
}

function requests(known: Known): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(...ops.map((op) => requestsFor(op, known)));
}

function requestsFor(op: Op, known: Known): fc.Arbitrary<FuzzRequest> {
  const queryValues = fc.array(
    fc.oneof(
      {
        weight: op.params.length > 0 ? 5 : 0,
        arbitrary: fc
          .constantFrom(...(op.params.length > 0 ? op.params : [{ name: 'x', schema: {} }]))
          .chain((p) => fc.tuple(fc.constant(p.name), fc.oneof({ weight: 3, arbitrary: fromSchema(p.schema, known) }, { weight: 1, arbitrary: hostile }))),
      },
      // fields of the body sent in the query string instead (Ocean's rule allows it), objects as JSON text
      {
        weight: op.body ? 3 : 0,
        arbitrary: fromSchema(op.body ?? {}, known).chain((b) =>
          fc.constantFrom(...Object.entries(typeof b === 'object' && b !== null && Object.keys(b).length > 0 ? b : { x: b })),
        ),
      },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('__proto__', 'constructor', 'x', 'jobId[]', ''), hostile) },
    ),
    { maxLength: op.params.length + 3 },
  );
  // every documented parameter at once, each admitted by its schema: these get past validation to the signature check
  const fullQuery = fc.tuple(...op.params.map((p) => fromSchema(p.schema, known).map((v) => [p.name, v] as [string, unknown])));
  const rawQuery = fc.constantFrom('', '%', '%zz', '%E0%A4%A', 'a&&b==c', 'jobId=1&jobId=2', 'consumerAddress[]=0x1');
  const body = fc.oneof(
    {
      weight: 4,
      arbitrary: op.body ? fromSchema(op.body, known).map((b) => ({ body: JSON.stringify(b) ?? 'null', contentType: 'application/json' })) : fc.constant({}),
    },
    { weight: 1, arbitrary: hostile.map((v) => ({ body: JSON.stringify(v) ?? 'null', contentType: 'application/json' })) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('{', '{"a":', '\u0000', '[1,2', 'null', '"x"', '1'.repeat(5000)).map((b) => ({ body: b, contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        body: fc.string({ unit: 'binary', maxLength: 200 }),
        contentType: fc.constantFrom('text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded'),
      }),
    },
    { weight: 1, arbitrary: fc.constant({}) },
  );
  return fc
    .record({
      method: fc.oneof(
        { weight: 6, arbitrary: fc.constant(op.method) },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE') },
      ),
      path: fc.oneof(
        { weight: 8, arbitrary: fc.constant(op.path) },
        { weight: 1, arbitrary: fc.constant(`/${op.path}`) },
        { weight: 1, arbitrary: fc.constantFrom(`${op.path}/`, `${op.path}/x`, `${op.path}%2F..`, `${op.path};x`) },
      ),
      query: fc.oneof(
        { weight: 4, arbitrary: queryValues.map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(asText(v))}`).join('&')) },
        { weight: op.params.length > 0 ? 2 : 0, arbitrary: fullQuery.map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${encode(asText(v))}`).join('&')) },
        { weight: 1, arbitrary: rawQuery },
      ),
      body,
    })
    .map(({ method, path, query, body: b }) => ({ method, path, query, ...b }));
}

function send(port: number, r: FuzzRequest & { headers?: Record<string, string> }): Promise<{ status: number; body: string; contentType: string }> {
  return new Promise((resolve, reject) => {
    const body = r.body !== undefined && r.method !== 'HEAD' ? Buffer.from(r.body, 'utf8') : undefined;
    const headers: Record<string, string> = { ...r.headers };
    if (body) Object.assign(headers, { 'content-type': r.contentType ?? 'application/json', 'content-length': String(body.length) });
    const req = http.request({ host: '127.0.0.1', port, method: r.method, path: r.query ? `${r.path}?${r.query}` : r.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), contentType: String(res.headers['content-type'] ?? '') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    // computeLogs follows a live log: a request the fuzzer leaves open would hang, so cut slow answers short
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end(body);
  });
}

/** Node's HTTP parser answers an oversized URL itself, before the app sees the request. */
const NODE_HEADERS_TOO_LARGE = 431;

function checkResponse(r: FuzzRequest, res: { status: number; body: string; contentType: string }): void {
  if (res.status === NODE_HEADERS_TOO_LARGE && res.body === '') return;
  if (res.status >= 500) throw new Error(`5xx for ${r.method} ${r.path}?${r.query.slice(0, 300)}: ${res.status} ${res.body.slice(0, 300)}`);
  if (res.status < 400 || r.method === 'HEAD') return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    throw new Error(`non-JSON ${res.status} for ${r.method} ${r.path}: ${res.contentType} ${res.body.slice(0, 200)}`);
  }
  if (!errorBodySchema.safeParse(parsed).success)
    throw new Error(`${res.status} body outside the contract's error shapes for ${r.method} ${r.path}: ${res.body.slice(0, 300)}`);
}

/** A failure names the request in short: a 200 kB counterexample would drown the report. */
function compactReporter<T>(run: fc.RunDetails<T>): void {
  if (run.failed)
    throw new Error(`fuzz failed after ${run.numRuns} runs (seed ${run.seed}, path ${run.counterexamplePath}): ${String(run.errorInstance).slice(0, 1500)}`);
}
const compact = { reporter: compactReporter };

describe('API fuzz from the OpenAPI description', () => {
  let h: ApiHarness;
  let server: http.Server;
  let port: number;
  let known: Known;

  beforeAll(async () => {
    h = await apiHarness();
    const jobId = await h.startJob();
    const results = await h.results.save(
      jobId,
      h.consumer.address.toLowerCase(),
      [{ filename: 'out.txt', type: 'output', open: () => Readable.from(['abc']) }],
      Date.now() + 3_600_000,
    );
    h.jobs.set(jobId, { status: 70, results });
    known = {
      addresses: [h.consumer.address, h.other.address, h.provider.address],
      dids: [h.datasetDid, h.rawDatasetDid, h.algorithmDid],
      jobIds: [jobId, '0'.repeat(32)],
    };
    server = h.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    expectNoSecretLeaked(h);
    h.cleanup();
  });

  it('when thousands of valid-ish and hostile requests arrive, then none gets a 5xx and every 4xx has a contract error shape', async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(requests(known), async (r) => {
        const res = await send(port, r);
        checkResponse(r, res);
        seen.add(res.status);
      }),
      { numRuns: 2500, ...compact },
    );
    // The generator reaches past validation too: successes, refused signatures and unknown jobs all occur. Random
    // draws may still miss one, so keep drawing (checked the same way) until each has come.
    const expected = [200, 400, 401, 404];
    for (let round = 0; round < 20 && !expected.every((s) => seen.has(s)); round++) {
      for (const r of fc.sample(requests(known), 250)) {
        const res = await send(port, r);
        checkResponse(r, res);
        seen.add(res.status);
      }
    }
    expect([...seen]).toEqual(expect.arrayContaining(expected));
    const health = await send(port, { method: 'GET', path: '/healthz', query: '' });
    expect(health.status).toBe(200);
  }, 300_000);

  it('when a correctly signed start has one field replaced by something hostile, then it is refused cleanly or accepted, never a 5xx', async () => {
    const fields = ['consumerAddress', 'signature', 'nonce', 'environment', 'dataset', 'algorithm', 'additionalDatasets', 'output'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...fields),
        fc.oneof(hostile, fromSchema(doc.paths['/api/services/compute']!.post!.requestBody as Schema, known)),
        fc.boolean(),
        async (field, value, inQuery) => {
          const body: Record<string, unknown> = { ...(await h.startBody(h.consumer)), [field]: value };
          const r: FuzzRequest = inQuery
            ? {
                method: 'POST',
                path: '/api/services/compute',
                query: Object.entries(body)
                  .map(([k, v]) => `${encode(k)}=${encode(asText(v))}`)
                  .join('&'),
              }
            : { method: 'POST', path: '/api/services/compute', query: '', body: JSON.stringify(body), contentType: 'application/json' };
          checkResponse(r, await send(port, r));
        },
      ),
      { numRuns: 400, ...compact },
    );
  }, 300_000);

  it('when correctly signed downloads ask for odd indexes, byte ranges and jobs, then they get the file, a part, or a contract error', async () => {
    const ranges = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          'bytes=0-0',
          'bytes=1-',
          'bytes=-1',
          'bytes=5-',
          'bytes=3-3',
          'bytes=99999999999999999999-',
          'bytes=5-1',
          'bytes=0-99999999999999999999',
          'bytes=a-b',
          'bytes=0-0,1-1',
          'items=0-1',
          'bytes=-0',
          '',
        ),
      },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
    );
    // weighted towards the job that has a file, so every kind of answer shows up
    const jobIds = fc.oneof(
      { weight: 3, arbitrary: fc.constant(known.jobIds[0]!) },
      { weight: 1, arbitrary: fc.constantFrom(...known.jobIds.slice(1), 'f'.repeat(32)) },
    );
    const indexes = fc.oneof({ weight: 3, arbitrary: fc.constant('0') }, { weight: 1, arbitrary: fc.constantFrom('1', '3', '007', '99999999999999999999999') });
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('computeResult', 'computeLogs'), jobIds, indexes, ranges, async (route, jobId, index, range) => {
        const nonce = await h.nextNonce(h.consumer);
        const parts = route === 'computeResult' ? [h.consumer.address, jobId, index] : [h.consumer.address, jobId];
        const signature = await signRequest(h.consumer, parts, nonce);
        const query = new URLSearchParams({
          consumerAddress: h.consumer.address,
          jobId,
          nonce,
          signature,
          ...(route === 'computeResult' ? { index } : {}),
        }).toString();
        const r = { method: 'GET', path: `/api/services/${route}`, query, headers: range ? { range } : ({} as Record<string, string>) };
        const res = await send(port, r);
        checkResponse(r, res);
        seen.add(res.status);
      }),
      { numRuns: 400, ...compact },
    );
    expect([...seen]).toEqual(expect.arrayContaining([200, 206, 404, 416]));
  }, 300_000);
});
