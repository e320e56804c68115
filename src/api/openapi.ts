import { z } from 'zod';
import { endpoints } from './endpoints';
import {
  computeDeleteSchema,
  computeLogsSchema,
  computeResultSchema,
  computeStartSchema,
  computeStatusSchema,
  computeStopSchema,
  decryptSchema,
  downloadSchema,
  encryptQuerySchema,
  environmentsQuerySchema,
  fileInfoSchema,
  nonceRequestSchema,
  initializeComputeSchema,
  validateContainerSchema,
} from './schemas';

/**
 * The OpenAPI 3.1 description of the Provider API, generated from the very zod schemas that validate
 * requests (src/api/schemas.ts), so the document cannot drift from what the server accepts. Response
 * and error schemas are declared here: the routes produce them, they validate nothing.
 */

/** `400 {"message":"Validation error","errors":{"<field>":["<text>"]},"success":false}` */
export const validationErrorSchema = z.object({
  message: z.literal('Validation error'),
  errors: z.record(z.string(), z.array(z.string())),
  success: z.literal(false),
});

/** `4xx {"error":"<text>"}` or `4xx {"error":{"<resource>":"<code>"}}`; also the body of a 503. */
export const handledErrorSchema = z.object({
  error: z.union([z.string(), z.record(z.string(), z.string())]),
});

/** Every error body the API may answer with (wire contract §0). */
export const errorBodySchema = z.union([validationErrorSchema, handledErrorSchema]);

const resultEntrySchema = z.object({
  filename: z.string(),
  filesize: z.number().int(),
  type: z.enum(['output', 'algorithmLog', 'configrationLog', 'publishLog']),
});

export const jobSchema = z.object({
  agreementId: z.string(),
  jobId: z.string().regex(/^[0-9a-f]{32}$/),
  owner: z.string(),
  status: z.number().int().describe('1 Warming up · 10 Job started · 20 Configuring volumes · 30 Provisioning success · 31/32 provisioning failed · 40 Running algorithm · 41 Failed to run algorithm · 42 Disk quota exceeded · 50 Filtering results · 60 Publishing results · 61/62 failed outputs · 70 Job finished'),
  statusText: z.string(),
  dateCreated: z.string().describe('epoch seconds as a string'),
  dateFinished: z.string().nullable(),
  stopreq: z.number().int().describe('0 none · 1 stopped by the owner · 2 exceeded maxJobDuration'),
  removed: z.number().int(),
  algoDID: z.string(),
  inputDID: z.array(z.string()),
  results: z.union([z.array(resultEntrySchema), z.literal('')]).describe("'' until publishing ends"),
  environment: z.string(),
  expireTimestamp: z.number().nullable(),
  terminationDetails: z.object({ exitCode: z.number().int().nullable(), oomKilled: z.boolean(), reason: z.string().optional() }).nullable(),
});

const environmentSchema = z.object({
  id: z.string(),
  cpuNumber: z.number(),
  cpuType: z.string(),
  gpuNumber: z.number(),
  gpuType: z.string(),
  ramGB: z.number(),
  diskGB: z.number(),
  priceMin: z.number(),
  desc: z.string(),
  currentJobs: z.number().int(),
  maxJobs: z.number().int(),
  consumerAddress: z.string(),
  storageExpiry: z.number(),
  maxJobDuration: z.number(),
  lastSeen: z.number(),
  feeToken: z.string(),
  free: z.boolean(),
});

const rootSchema = z.object({
  software: z.string(),
  version: z.string(),
  chainIds: z.array(z.number().int()),
  providerAddress: z.string(),
  providerAddresses: z.record(z.string(), z.string()),
  serviceEndpoints: z.record(z.string(), z.tuple([z.string(), z.string()])),
});

type JsonSchema = Record<string, unknown>;

/** A zod request schema as JSON Schema of what a client may send (before our transforms run). */
function inputSchema(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      // `jsonText(...)` (a preprocess) also takes the object as JSON text, which query strings need.
      const def = ctx.zodSchema._zod.def as { type: string; in?: { _zod: { def: { type: string } } } };
      if (def.type !== 'pipe' || def.in?._zod.def.type !== 'transform') return;
      const object = { ...ctx.jsonSchema };
      for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
      ctx.jsonSchema.anyOf = [object, { type: 'string', contentMediaType: 'application/json', description: 'the same value as JSON text' }];
    },
  }) as JsonSchema;
  delete json.$schema;
  return json;
}

function outputSchema(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'output' }) as JsonSchema;
  delete json.$schema;
  return json;
}

/** Each property of an object schema becomes one query parameter. */
function queryParameters(schema: JsonSchema): JsonSchema[] {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  return Object.entries(properties).map(([name, s]) => ({ name, in: 'query', required: required.has(name), schema: s }));
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });

const errorResponses = {
  '400': { description: 'Validation error, or a refused permission (`{"error":{"<resource>":"<code>"}}`)', content: json({ anyOf: [ref('ValidationError'), ref('HandledError')] }) },
  '401': { description: 'Invalid signature or nonce', content: json(ref('HandledError')) },
  '404': { description: 'No such job, result or route (for this consumer)', content: json(ref('HandledError')) },
  '503': { description: 'The orchestrator is unavailable, or an unexpected failure', content: json(ref('HandledError')) },
};

interface Operation {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  operationId: string;
  summary: string;
  /** validated from the query string */
  query?: z.ZodType;
  /** validated from the JSON body (or, by Ocean's rule, from the query string when it has parameters) */
  body?: z.ZodType;
  responses: Record<string, unknown>;
  tags: string[];
}

const jobList = { '200': { description: 'The job(s)', content: json({ type: 'array', items: ref('Job') }) } };

const paramsNote = 'Parameters may also be sent in the query string (Ocean\'s rule: the query string if it has any parameter, else the JSON body).';

const operations: Operation[] = [
  { method: 'get', path: '/', operationId: 'root', summary: 'Who this provider is and where its endpoints are', tags: ['info'], responses: { '200': { description: 'The root document', content: json(ref('Root')) } } },
  { method: 'get', path: endpoints.nonce[1], operationId: 'nonce', summary: 'The last nonce accepted from an address', query: nonceRequestSchema, tags: ['info'], responses: { '200': { description: 'The nonce', content: json({ type: 'object', properties: { nonce: { type: ['number', 'string'] } }, required: ['nonce'] }) } } },
  {
    method: 'get',
    path: endpoints.computeEnvironments[1],
    operationId: 'computeEnvironments',
    summary: 'Compute environments, keyed by chain id',
    query: environmentsQuerySchema,
    tags: ['compute'],
    responses: { '200': { description: 'Environments by chain id', content: json({ type: 'object', additionalProperties: { type: 'array', items: ref('Environment') } }) } },
  },
  {
    method: 'post',
    path: endpoints.encrypt[1],
    operationId: 'encrypt',
    summary: "Encrypts bytes (a DDO's files object) with this provider's key",
    query: encryptQuerySchema,
    tags: ['info'],
    responses: { '201': { description: 'The ciphertext as 0x hex', content: { 'text/plain': { schema: { type: 'string', pattern: '^0x[0-9a-f]+$' } } } } },
  },
  { method: 'post', path: endpoints.computeStart[1], operationId: 'computeStart', summary: 'Starts a job (signed: consumerAddress + dataset.documentId + nonce)', body: computeStartSchema, tags: ['compute'], responses: jobList },
  { method: 'get', path: endpoints.computeStatus[1], operationId: 'computeStatus', summary: "The caller's jobs, or one of them", query: computeStatusSchema, tags: ['compute'], responses: jobList },
  { method: 'put', path: endpoints.computeStop[1], operationId: 'computeStop', summary: 'Stops a job (signed: consumerAddress + jobId + documentId + nonce)', body: computeStopSchema, tags: ['compute'], responses: jobList },
  { method: 'delete', path: endpoints.computeDelete[1], operationId: 'computeDelete', summary: "Deletes a job's results (signed like stop; the nonce may be omitted)", body: computeDeleteSchema, tags: ['compute'], responses: jobList },
  {
    method: 'get',
    path: endpoints.computeResult[1],
    operationId: 'computeResult',
    summary: 'Downloads one result file (signed: consumerAddress + jobId + index + nonce); honours Range',
    query: computeResultSchema,
    tags: ['compute'],
    responses: {
      '200': { description: 'The file', content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } },
      '206': { description: 'The requested byte range', content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } },
      '416': { description: 'Range not satisfiable', content: json(ref('HandledError')) },
    },
  },
  {
    method: 'get',
    path: endpoints.download[1],
    operationId: 'download',
    summary: 'Streams one file of an `access` service (signed: documentId + nonce); needs the asset\'s credentials, and for on-chain assets an order made out to the caller. `compute` services are never downloadable',
    query: downloadSchema,
    tags: ['compute'],
    responses: {
      '200': { description: 'The file (its location is never shown)', content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } },
      '400': { description: 'Not downloadable (a compute service), not allowed by the credentials, or no valid order', content: json(ref('HandledError')) },
      '404': { description: 'No such asset, service or file index', content: json(ref('HandledError')) },
    },
  },
  {
    method: 'post',
    path: endpoints.fileinfo[1],
    operationId: 'fileinfo',
    summary: "What a service's files look like from here (never where they are)",
    body: fileInfoSchema,
    tags: ['publisher'],
    responses: {
      '200': {
        description: 'One entry per file',
        content: json({ type: 'array', items: { type: 'object', properties: { index: { type: 'integer' }, valid: { type: 'boolean' }, contentLength: { type: ['string', 'null'] }, contentType: { type: ['string', 'null'] } }, required: ['index', 'valid'] } }),
      },
    },
  },
  {
    method: 'post',
    path: endpoints.initializeCompute[1],
    operationId: 'initializeCompute',
    summary: 'Which datatoken orders the job still needs, with provider fees signed for the environment',
    body: initializeComputeSchema,
    tags: ['compute'],
    responses: { '200': { description: '{datasets:[R], algorithm?:R}; R = {datatoken, providerFee} | {validOrder} | {datatoken, providerFee, validOrder}', content: json({ type: 'object' }) } },
  },
  {
    method: 'post',
    path: endpoints.decrypt[1],
    operationId: 'decrypt',
    summary: 'The plaintext of a DDO a data NFT published encrypted for this provider, for authorized decrypters (signed: (transactionId or dataNftAddress) + decrypterAddress + chainId + nonce)',
    body: decryptSchema,
    tags: ['publisher'],
    responses: {
      '201': { description: "The DDO as published (its sha256 is the metaDataHash published with it)", content: { 'text/plain': { schema: { type: 'string' } } } },
      '403': { description: 'The decrypter is neither this provider nor in C2D_AUTHORIZED_DECRYPTERS', content: json(ref('HandledError')) },
    },
  },
  { method: 'post', path: endpoints.validateContainer[1], operationId: 'validateContainer', summary: 'Checks a container section against the rules for algorithms', body: validateContainerSchema, tags: ['publisher'], responses: { '200': { description: 'Valid', content: json({ type: 'object', properties: { valid: { const: true } } }) } } },
  {
    method: 'get',
    path: endpoints.computeLogs[1],
    operationId: 'computeLogs',
    summary: "The algorithm's log, streamed live while it runs (signed: consumerAddress + jobId + nonce)",
    query: computeLogsSchema,
    tags: ['compute'],
    responses: { '200': { description: 'Plain text', content: { 'text/plain': { schema: { type: 'string' } } } } },
  },
];

const opsPaths = {
  '/api/aquarius/assets/ddo/{did}': {
    get: {
      operationId: 'aquariusDdo',
      tags: ['info'],
      summary: "Aquarius' DDO lookup, for the assets this provider knows itself (catalog, chain); files stay encrypted",
      parameters: [{ name: 'did', in: 'path', required: true, schema: { type: 'string', pattern: '^did:op:[0-9a-zA-Z]+$' } }],
      responses: { '200': { description: 'The DDO', content: json({ type: 'object' }) }, '404': { description: 'No such asset here', content: json(ref('HandledError')) } },
    },
  },
  '/healthz': { get: { operationId: 'healthz', tags: ['ops'], summary: 'The process is up', responses: { '200': { description: 'Up', content: json({ type: 'object', properties: { status: { const: 'ok' } } }) } } } },
  '/readyz': {
    get: {
      operationId: 'readyz',
      tags: ['ops'],
      summary: 'The orchestrator is reachable',
      responses: { '200': { description: 'Ready', content: json({ type: 'object' }) }, '503': { description: 'Not ready, with the reason', content: json(ref('HandledError')) } },
    },
  },
  '/metrics': { get: { operationId: 'metrics', tags: ['ops'], summary: 'Prometheus metrics', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
  '/api/openapi.json': { get: { operationId: 'openapi', tags: ['ops'], summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } } } },
  '/api/docs': { get: { operationId: 'docs', tags: ['ops'], summary: 'An interactive page over this document', responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } } },
};

function pathItem(op: Operation): JsonSchema {
  const item: JsonSchema = {
    operationId: op.operationId,
    summary: op.summary,
    tags: op.tags,
    responses: { ...errorResponses, ...op.responses },
  };
  if (op.query) item.parameters = queryParameters(inputSchema(op.query));
  if (op.body || op.method === 'post') (item.responses as Record<string, unknown>)['413'] = { description: 'Request body over 1 MB', content: json(ref('HandledError')) };
  if (op.body) {
    item.description = paramsNote;
    item.requestBody = { required: true, content: json(inputSchema(op.body)) };
  }
  if (op.operationId === 'encrypt') item.requestBody = { required: true, content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } };
  return item;
}

export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, JsonSchema>> };

/** The document for `GET /api/openapi.json`. */
export function openApiDocument(version: string): OpenApiDocument {
  const paths: Record<string, Record<string, JsonSchema>> = { ...opsPaths };
  for (const op of operations) (paths[op.path] ??= {})[op.method] = pathItem(op);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Compute-to-Data Provider',
      version,
      description: "Ocean Protocol's Provider REST contract for compute jobs. Every path also answers with a doubled leading slash (`//api/...`).",
    },
    paths,
    components: {
      schemas: {
        Job: outputSchema(jobSchema),
        Environment: outputSchema(environmentSchema),
        Root: outputSchema(rootSchema),
        ValidationError: outputSchema(validationErrorSchema),
        HandledError: outputSchema(handledErrorSchema),
      },
    },
  };
}

/**
 * `GET /api/docs`: a self-contained page (no CDN: offline deployments have none) that renders the
 * document as one form per operation and sends it with fetch. Everything it shows goes through
 * textContent, never innerHTML.
 */
export const docsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Provider API</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
details{border:1px solid #ccc;border-radius:4px;margin:.5em 0;padding:.4em .8em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold}
label{display:block;margin:.3em 0}input{width:30em}textarea{width:100%;height:10em;font-family:monospace}
pre{background:#f4f4f4;padding:.6em;overflow:auto;max-height:25em;white-space:pre-wrap}
</style></head><body>
<h1 id="title">Provider API</h1><p id="desc"></p><div id="ops"></div>
<script>
const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; };
function skeleton(schema) {
  if (!schema) return null;
  if (schema.anyOf) return skeleton(schema.anyOf[0]);
  if (schema.default !== undefined) return schema.default;
  if (schema.type === 'object') { const o = {}; for (const k of schema.required || []) o[k] = skeleton(schema.properties[k]); return o; }
  if (schema.type === 'array') return [];
  if (Array.isArray(schema.type)) return '';
  return schema.type === 'number' || schema.type === 'integer' ? 0 : '';
}
function operation(path, method, op) {
  const box = el('details'); const sum = el('summary');
  sum.append(el('span', method.toUpperCase()), el('code', ' ' + path + ' '), el('span', '— ' + (op.summary || '')));
  sum.firstChild.className = 'm'; box.append(sum);
  if (op.description) box.append(el('p', op.description));
  const form = el('form'); const inputs = {};
  for (const p of op.parameters || []) {
    const label = el('label', p.name + (p.required ? ' *' : '') + ' '); const input = el('input');
    input.placeholder = JSON.stringify(p.schema); inputs[p.name] = input; label.append(input); form.append(label);
  }
  const content = op.requestBody && op.requestBody.content; let body = null;
  if (content) {
    body = el('textarea'); const type = Object.keys(content)[0];
    body.value = type === 'application/json' ? JSON.stringify(skeleton(content[type].schema), null, 2) : '';
    body.dataset.type = type; form.append(el('label', 'body (' + type + ')'), body);
  }
  const send = el('button', 'Send'); const out = el('pre'); form.append(send); box.append(form, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault(); out.textContent = '…';
    const q = new URLSearchParams(); for (const [k, i] of Object.entries(inputs)) if (i.value !== '') q.set(k, i.value);
    const init = { method: method.toUpperCase(), headers: {} };
    if (body && body.value !== '') { init.body = body.value; init.headers['content-type'] = body.dataset.type; }
    try {
      const query = q.toString();
      const res = await fetch(path + (query ? '?' + query : ''), init);
      const text = await res.text();
      out.textContent = res.status + ' ' + res.statusText + '\\n\\n' + text.slice(0, 100000);
    } catch (err) { out.textContent = String(err); }
  });
  return box;
}
fetch('/api/openapi.json').then((r) => r.json()).then((doc) => {
  document.getElementById('title').textContent = doc.info.title + ' ' + doc.info.version;
  document.getElementById('desc').textContent = doc.info.description || '';
  const ops = document.getElementById('ops');
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) ops.append(operation(path, method, op));
});
</script></body></html>
`;
