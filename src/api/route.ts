import express, { type Request, type RequestHandler, type Response } from 'express';
import type { z } from 'zod';
import type { AppDeps } from './deps';
import { parseParams, parseWith } from './params';

/**
 * One route of the API, described once: the table (src/api/table.ts) registers it with Express and
 * generates its part of the OpenAPI document from the same zod schemas (src/api/openapi.ts).
 */

/** Where Ocean's endpoints live. */
export const SERVICES = '/api/services';

export type Method = 'get' | 'post' | 'put' | 'delete';
export type Tag = 'info' | 'compute' | 'publisher' | 'ops';
/** `signature`: Ocean's signed request (address, nonce and signature among the parameters); HEAD on its path is refused. */
export type Auth = 'none' | 'signature';
export type ContentType = 'application/json' | 'text/plain' | 'application/octet-stream' | 'text/html';

export interface ResponseSpec {
  description: string;
  /** the body's schema; a string schema for text and bytes */
  schema?: z.ZodType;
  /** default: application/json */
  type?: ContentType;
}
export type Responses = Record<number, ResponseSpec>;

/**
 * Where the input is read from: `params` is Ocean's rule (the query string if it has any parameter,
 * otherwise the JSON body), `query` the query string only, `path` the path parameters.
 */
export interface RouteInput<S extends z.ZodType> {
  from: 'params' | 'query' | 'path';
  schema: S;
}

type JsonBody<T> = T extends { schema: infer S extends z.ZodType } ? z.output<S> : never;

export interface RouteContext<I, R extends Responses> {
  /** the parsed input (a failure never reaches the handler: it is Ocean's 400) */
  input: I;
  req: Request;
  res: Response;
  /** Sends a JSON body of a status the route declares; the compiler holds the body to that status's schema. */
  json: <C extends keyof R & number>(status: C, body: JsonBody<R[C]>) => void;
}

export interface RouteSpec<S extends z.ZodType, R extends Responses> {
  /** the operationId; for a `service` route also its name in the root document */
  name: string;
  method: Method;
  /** Express path (`:param` for path parameters) */
  path: string;
  summary: string;
  description?: string;
  tags: Tag[];
  auth: Auth;
  /** published in the root document's serviceEndpoints, where Ocean's clients look endpoints up by name */
  service?: boolean;
  input?: RouteInput<S>;
  /** how the body is read; default: JSON (a JSON body is read even where no input comes from it, as any route of the API always has) */
  body?: 'json' | 'raw' | 'none';
  /**
   * Another client generation's form of a route on the same method and path (ocean-node's compute API
   * beside the Python Provider's): it handles the requests `when` accepts and passes the others on to the
   * next route of the path. List it before the route it stands beside; OpenAPI shows it inside that one.
   */
  variant?: { of: string; when: (req: Request) => boolean };
  /** the answers of this route; the table adds the error answers every route shares (openapi.ts) */
  responses: R;
  /** Called once per app: what runs per request. `routes` is the whole table (the root document and the OpenAPI routes describe it). */
  handler: (deps: AppDeps, routes: readonly Route[]) => (ctx: RouteContext<z.output<S>, R>) => Promise<void> | void;
}

/** A route with its types erased, as the table holds it. */
export interface Route extends Omit<RouteSpec<z.ZodType, Responses>, 'handler' | 'body'> {
  body: 'json' | 'raw' | 'none';
  /** the Express handlers of this route: body parser, then parse and handle */
  handlers: (deps: AppDeps, routes: readonly Route[]) => RequestHandler[];
}

/** the JSON (or raw) body a request may carry */
export const BODY_LIMIT = '1mb';

/** Declares a route; the types of its input and JSON answers flow from the schemas into the handler. */
export function route<S extends z.ZodType = z.ZodUndefined, R extends Responses = Responses>(spec: RouteSpec<S, R>): Route {
  const { handler, ...described } = spec;
  const body = spec.body ?? 'json';
  const input = spec.input;
  const parse = (req: Request): z.output<S> => {
    if (!input) return undefined as z.output<S>;
    if (input.from === 'params') return parseParams(input.schema, req);
    return parseWith(input.schema, input.from === 'query' ? req.query : req.params);
  };
  return {
    ...described,
    body,
    handlers(deps, routes) {
      const handle = handler(deps, routes);
      const when = spec.variant?.when;
      const run: RequestHandler = async (req, res, next) => {
        if (when && !when(req)) return next();
        await handle({ input: parse(req), req, res, json: (status, value) => void res.status(status).json(value) });
      };
      // raw: the body is opaque bytes (a DDO or a files object), whatever its content type says
      if (body === 'raw') return [express.raw({ type: () => true, limit: BODY_LIMIT }), run];
      return body === 'json' ? [express.json({ limit: BODY_LIMIT }), run] : [run];
    },
  };
}

/** The root document's serviceEndpoints: name → [METHOD, path]. */
export const serviceEndpoints = (routes: readonly Route[]): Record<string, [string, string]> =>
  Object.fromEntries(routes.filter((r) => r.service).map((r) => [r.name, [r.method.toUpperCase(), r.path]]));

/** Paths with a signed route (HEAD on them is refused, as Ocean does). */
export const signedPaths = (routes: readonly Route[]): string[] => [...new Set(routes.filter((r) => r.auth === 'signature').map((r) => r.path))];
