import { z } from 'zod';
import { errorBodySchema, handledError } from './responses';
import type { Responses, Route } from './route';

/**
 * The OpenAPI 3.1 document of the Provider API, generated from the route table (src/api/table.ts): paths,
 * operations, parameters, bodies and answers all come from the zod schemas the routes validate with and
 * answer in, so the document cannot drift from the server. Schemas with a `.meta({ id })` become shared
 * components.
 */

type JsonSchema = Record<string, unknown>;

/** `jsonText(...)` (a preprocess, src/api/schemas.ts) also takes the object as JSON text, which query strings need. */
const jsonTextAlternative = (ctx: { zodSchema: z.core.$ZodTypes; jsonSchema: z.core.JSONSchema.BaseSchema }): void => {
  const def = ctx.zodSchema._zod.def as { type: string; in?: { _zod: { def: { type: string } } } };
  if (def.type !== 'pipe' || def.in?._zod.def.type !== 'transform') return;
  const object = { ...ctx.jsonSchema };
  for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
  ctx.jsonSchema.anyOf = [object, { type: 'string', contentMediaType: 'application/json', description: 'the same value as JSON text' }];
};

/** Moves `$defs` into the components and points their `$ref`s there. */
function hoistDefs(value: unknown, components: Record<string, JsonSchema>): unknown {
  if (Array.isArray(value)) return value.map((v) => hoistDefs(v, components));
  if (typeof value !== 'object' || value === null) return value;
  const out: JsonSchema = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === '$schema') continue;
    if (key === '$defs') {
      for (const [name, def] of Object.entries(v as Record<string, unknown>)) components[name] = hoistDefs(def, components) as JsonSchema;
      continue;
    }
    out[key] = key === '$ref' && typeof v === 'string' ? v.replace('#/$defs/', '#/components/schemas/') : hoistDefs(v, components);
  }
  return out;
}

/** The error answers every route may give, by what the route does; a route's own `responses` redescribe them. */
function sharedErrors(route: Route): Responses {
  const readsBody = route.body !== 'none';
  const errors: Responses = {};
  if (route.input || readsBody)
    errors[400] = { description: 'Validation error, or a refused permission (`{"error":{"<resource>":"<code>"}}`)', schema: errorBodySchema };
  if (route.auth === 'signature') errors[401] = handledError('Invalid signature or nonce');
  if (route.input) errors[404] = handledError('No such job, result or route (for this consumer)');
  if (readsBody) errors[413] = handledError('Request body over 1 MB');
  errors[503] = handledError('The orchestrator is unavailable, or an unexpected failure');
  return errors;
}

const paramsNote = "Parameters may also be sent in the query string (Ocean's rule: the query string if it has any parameter, else the JSON body).";

export type OpenApiDocument = Record<string, unknown> & { paths: Record<string, Record<string, JsonSchema>> };

/** The document for `GET /api/openapi.json`. */
export function openApiDocument(routes: readonly Route[], version: string): OpenApiDocument {
  const components: Record<string, JsonSchema> = {};
  const convert = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema =>
    hoistDefs(z.toJSONSchema(schema, { io, unrepresentable: 'any', ...(io === 'input' ? { override: jsonTextAlternative } : {}) }), components) as JsonSchema;

  const paths: OpenApiDocument['paths'] = {};
  const variants: { path: string; method: string; operation: JsonSchema }[] = [];
  for (const route of routes) {
    const operation: JsonSchema = { operationId: route.name, summary: route.summary, tags: route.tags };
    if (route.description) operation.description = route.description;
    const input = route.input ? convert(route.input.schema, 'input') : undefined;
    const properties = (input?.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((input?.required ?? []) as string[]);
    // Ocean's rule reads GET parameters from the query string and the others from the body (or the query string)
    const inBody = route.input?.from === 'params' && route.method !== 'get';
    if (input && !inBody) {
      const where = route.input?.from === 'path' ? 'path' : 'query';
      operation.parameters = Object.entries(properties).map(([name, schema]) => ({ name, in: where, required: required.has(name), schema }));
    }
    if (input && inBody) {
      operation.description = [route.description, paramsNote].filter(Boolean).join(' ');
      operation.requestBody = { required: true, content: { 'application/json': { schema: input } } };
    }
    if (route.body === 'raw')
      operation.requestBody = {
        required: true,
        content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
      };
    const responses = { ...sharedErrors(route), ...route.responses };
    operation.responses = Object.fromEntries(
      Object.entries(responses).map(([status, r]) => [
        status,
        { description: r.description, ...(r.schema ? { content: { [r.type ?? 'application/json']: { schema: convert(r.schema, 'output') } } } : {}) },
      ]),
    );
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    const at = (paths[path] ??= {});
    if (route.variant) variants.push({ path, method: route.method, operation });
    else at[route.method] = operation;
  }
  // one operation per method and path: another generation's form of it is an extension of that operation
  for (const v of variants) {
    const main = paths[v.path]?.[v.method];
    if (main) main['x-ocean-node'] = v.operation;
    else (paths[v.path] ??= {})[v.method] = v.operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Compute-to-Data Provider',
      version,
      description: "Ocean Protocol's Provider REST contract for compute jobs. Every path also answers with a doubled leading slash (`//api/...`).",
    },
    paths,
    components: { schemas: components },
  };
}
